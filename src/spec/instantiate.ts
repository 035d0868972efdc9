/**
 * Instantiation: after expansion, each instance's spec becomes its own through its
 * provider's `instantiate` hook, with its target's variables (e.g. a File template
 * rendered for `File/nginx@web-1`). What comes out is what the plan shows and the
 * spec hash covers.
 */
import { error, type Diagnostic } from '../diag/diagnostic.js';
import { ProviderError, SpecFieldError, type InstanceFacts } from '../providers/provider.js';
import type { ProviderRegistry } from '../providers/registry.js';
import { baseAddress, type Address, type Resource } from './resource.js';
import type { Variables } from './variables.js';

/** Instances between two turns of the event loop. */
const BATCH = 256;
/**
 * Failures reported per document; the rest are counted in one more diagnostic,
 * and not attempted: a template that fails on every host (or hits its time
 * limit) costs ten renders, not one per host of the fleet.
 */
const MAX_FAILURES_SHOWN = 10;

const NO_VARS: Variables = Object.freeze({});

export interface Instantiated {
  /** The instances, each with its own spec (the same object when its provider had nothing to do). */
  readonly instances: Resource[];
  /** Instances whose spec could not be made: they must not become resources of the stack. */
  readonly failed: ReadonlySet<Address>;
  readonly diagnostics: Diagnostic[];
}

/**
 * Runs `instantiate` for every instance whose provider has it. Instances on a
 * target without variables (an invalid target: left out of the stack anyway)
 * are kept as they are.
 */
export async function instantiateResources(
  instances: readonly Resource[],
  targets: readonly Resource[],
  registry: ProviderRegistry,
  varsByTarget: Readonly<Record<Address, Variables>>,
): Promise<Instantiated> {
  const out: Resource[] = [];
  const failed = new Set<Address>();
  const diagnostics: Diagnostic[] = [];
  const failuresOf = new Map<Address, { shown: number; hidden: number; first: Resource }>();
  const nameOf = new Map(targets.map((t) => [t.address, t.name]));

  for (let i = 0; i < instances.length; i++) {
    if (i > 0 && i % BATCH === 0) await new Promise((resolve) => setImmediate(resolve));
    const r = instances[i]!;
    const provider = registry.resource(r.kind);
    const vars = r.target === undefined ? NO_VARS : varsByTarget[r.target];
    if (!provider?.instantiate || vars === undefined) {
      out.push(r);
      continue;
    }
    const base = baseAddress(r.kind, r.name);
    const earlier = failuresOf.get(base);
    if (earlier && earlier.shown >= MAX_FAILURES_SHOWN) {
      earlier.hidden++;
      failed.add(r.address);
      out.push(r);
      continue;
    }
    const targetName = r.target === undefined ? undefined : nameOf.get(r.target);
    const facts: InstanceFacts = {
      address: r.address,
      target: r.target === undefined || targetName === undefined ? undefined : { address: r.target, name: targetName },
      vars,
    };
    try {
      const spec: unknown = provider.instantiate(r.spec, facts);
      out.push(spec === r.spec ? r : { ...r, spec });
    } catch (e) {
      failed.add(r.address);
      out.push(r);
      const tally = earlier ?? { shown: 0, hidden: 0, first: r };
      failuresOf.set(base, tally);
      tally.shown++;
      const message =
        e instanceof ProviderError ? e.message : `${r.kind} could not be instantiated: ${e instanceof Error ? e.message : String(e)}`;
      const source = e instanceof SpecFieldError ? r.positionOf(['spec', ...e.specPath]) : r.source;
      diagnostics.push(error(message, { address: r.address, source }));
    }
  }
  for (const [base, { hidden, first }] of failuresOf) {
    if (hidden === 0) continue;
    diagnostics.push(
      error(`${base} was not instantiated on ${hidden} more instance${hidden === 1 ? '' : 's'}`, {
        address: base,
        source: first.source,
        detail: `it failed on the first ${MAX_FAILURES_SHOWN}; fix those and load again`,
      }),
    );
  }
  return { instances: out, failed, diagnostics };
}
