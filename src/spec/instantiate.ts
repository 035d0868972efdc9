/**
 * Instantiation: after expansion, each instance's spec becomes its own through its
 * provider's `templates` and `instantiate` hooks, with its target's variables
 * (e.g. a File template rendered for `File/nginx@web-1`). What comes out is what
 * the plan shows and the spec hash covers.
 *
 * Templates render in the render pool (worker threads), never on the event loop,
 * a few instances at a time, each render bounded in time and output, and the
 * whole stack bounded by its `StackBudget`: once a budget is spent no more
 * renders start, the instances left are not instantiated, and the budget's one
 * diagnostic says why.
 */
import { error, type Diagnostic } from '../diag/diagnostic.js';
import { ProviderError, SpecFieldError, type InstanceFacts, type TemplateRequest, type TemplateSource } from '../providers/provider.js';
import type { ProviderRegistry } from '../providers/registry.js';
import type { RenderPool } from './render-pool.js';
import { baseAddress, type Address, type Resource } from './resource.js';
import type { StackBudget } from './stack-budget.js';
import { describeTemplateFailure, MAX_RENDER_BYTES, RENDER_TIME_LIMIT_MS, TemplateError } from './template.js';
import type { Variables } from './variables.js';

/** Instances without templates between two turns of the event loop. */
const BATCH = 256;
/**
 * Failures reported per document; the rest are counted in one more diagnostic,
 * and not attempted: a template that fails on every host (or hits its time
 * limit) costs ten renders, not one per host of the fleet.
 */
const MAX_FAILURES_SHOWN = 10;

const NO_VARS: Variables = Object.freeze({});

export interface InstantiateOptions {
  readonly pool: RenderPool;
  readonly budget: StackBudget;
  /** Milliseconds one render may take (default `RENDER_TIME_LIMIT_MS`). */
  readonly renderTimeLimitMs?: number | undefined;
}

export interface Instantiated {
  /** The instances, each with its own spec (the same object when its provider had nothing to do). */
  readonly instances: Resource[];
  /** Instances whose spec could not be made: they must not become resources of the stack. */
  readonly failed: ReadonlySet<Address>;
  readonly diagnostics: Diagnostic[];
}

/** Ids for template sources, unique in the process: the workers key parsed templates by them. */
const templateIds = new WeakMap<TemplateSource, string>();
let nextTemplateId = 1;
function templateId(source: TemplateSource): string {
  let id = templateIds.get(source);
  if (id === undefined) {
    id = `t${nextTemplateId++}`;
    templateIds.set(source, id);
  }
  return id;
}

/** The outputs of one instance's templates, and which of them read a secret variable. */
interface Rendered {
  readonly outputs: string[];
  readonly readSecret: boolean[];
}

/** What became of one instance. */
type Outcome =
  | { readonly kind: 'done'; readonly resource: Resource }
  /** Failed with its own diagnostic (counted against the document's ten). */
  | { readonly kind: 'failed'; readonly diagnostic: Diagnostic }
  /** Failed, reported elsewhere (a template syntax error, once; a budget, once) or skipped after ten failures. */
  | { readonly kind: 'dropped' };

/**
 * Runs `templates` and `instantiate` for every instance whose provider has them.
 * Instances on a target without variables (an invalid target: left out of the
 * stack anyway) are kept as they are. Every instance's spec size is charged to
 * the budget's rendered bytes.
 */
export async function instantiateResources(
  instances: readonly Resource[],
  targets: readonly Resource[],
  registry: ProviderRegistry,
  varsByTarget: Readonly<Record<Address, Variables>>,
  options: InstantiateOptions,
): Promise<Instantiated> {
  const { pool, budget } = options;
  const renderTimeLimitMs = options.renderTimeLimitMs ?? RENDER_TIME_LIMIT_MS;
  const outcomes: (Outcome | undefined)[] = new Array<Outcome | undefined>(instances.length);
  const diagnostics: Diagnostic[] = [];
  const failuresOf = new Map<Address, number>();
  const brokenSources = new Set<TemplateSource>();
  const nameOf = new Map(targets.map((t) => [t.address, t.name]));

  const renderAll = async (r: Resource, requests: readonly TemplateRequest[], facts: InstanceFacts): Promise<Rendered | Outcome> => {
    const base = baseAddress(r.kind, r.name);
    const rendered: Rendered = { outputs: [], readSecret: [] };
    for (const request of requests) {
      if (brokenSources.has(request.source) || budget.exceeded) return { kind: 'dropped' };
      const timeLimitMs = Math.min(renderTimeLimitMs, budget.left('renderTime'));
      const maxOutputBytes = Math.min(MAX_RENDER_BYTES, budget.left('renderedBytes'));
      if (timeLimitMs <= 0 || maxOutputBytes <= 0) {
        budget.exhaust(timeLimitMs <= 0 ? 'renderTime' : 'renderedBytes');
        return { kind: 'dropped' };
      }
      const at = r.positionOf(['spec', ...request.specPath]);
      const outcome = await pool.render({
        templateId: templateId(request.source),
        name: request.source.name,
        text: request.source.text,
        vars: request.vars,
        maxOutputBytes,
        timeLimitMs,
      });
      budget.charge('renderTime', `${base} (${request.source.name})`, outcome.ms, at);
      if (outcome.ok) {
        rendered.outputs.push(outcome.output);
        rendered.readSecret.push(outcome.readSecret);
        continue;
      }
      const f = outcome.failure;
      // A render cut short by what was left of a budget is the budget's failure, not the template's.
      if (f.limit === 'time' && timeLimitMs < renderTimeLimitMs) budget.exhaust('renderTime');
      if (f.limit === 'output' && maxOutputBytes < MAX_RENDER_BYTES) budget.exhaust('renderedBytes');
      if (budget.exceeded) return { kind: 'dropped' };
      const err = new TemplateError(f.file, f.line, f.col, f.reason, f.undefinedVariable);
      if (f.phase === 'parse') {
        // The template itself is wrong: once for the document, whatever the host.
        if (!brokenSources.has(request.source)) {
          brokenSources.add(request.source);
          diagnostics.push(error(err.message, { address: base, source: at }));
        }
        return { kind: 'dropped' };
      }
      const message = describeTemplateFailure(err, { targetName: facts.target?.name, vars: request.vars });
      return { kind: 'failed', diagnostic: error(message, { address: r.address, source: at }) };
    }
    return rendered;
  };

  const instantiateOne = async (i: number): Promise<Outcome> => {
    const r = instances[i]!;
    const provider = registry.resource(r.kind);
    const vars = r.target === undefined ? NO_VARS : varsByTarget[r.target];
    if (!provider?.instantiate || vars === undefined) return { kind: 'done', resource: r };
    const base = baseAddress(r.kind, r.name);
    if ((failuresOf.get(base) ?? 0) >= MAX_FAILURES_SHOWN || budget.exceeded) return { kind: 'dropped' };
    const targetName = r.target === undefined ? undefined : nameOf.get(r.target);
    const facts: InstanceFacts = {
      address: r.address,
      target: r.target === undefined || targetName === undefined ? undefined : { address: r.target, name: targetName },
      vars,
    };
    try {
      const requests = provider.templates?.(r.spec, facts) ?? [];
      const rendered = requests.length === 0 ? { outputs: [], readSecret: [] } : await renderAll(r, requests, facts);
      if ('kind' in rendered) return rendered;
      const spec: unknown = provider.instantiate(r.spec, facts, rendered.outputs, rendered.readSecret);
      return { kind: 'done', resource: spec === r.spec ? r : { ...r, spec } };
    } catch (e) {
      const message =
        e instanceof ProviderError ? e.message : `${r.kind} could not be instantiated: ${e instanceof Error ? e.message : String(e)}`;
      const source = e instanceof SpecFieldError ? r.positionOf(['spec', ...e.specPath]) : r.source;
      return { kind: 'failed', diagnostic: error(message, { address: r.address, source }) };
    }
  };

  // One render in flight per worker: the pool stays busy, nothing of the fleet is queued, and
  // the budget is overshot by at most one render per worker.
  const window = Math.max(1, pool.size);
  let next = 0;
  let sinceYield = 0;
  const lane = async (): Promise<void> => {
    while (next < instances.length) {
      const i = next++;
      const outcome = await instantiateOne(i);
      outcomes[i] = outcome;
      if (outcome.kind === 'failed') {
        const base = baseAddress(instances[i]!.kind, instances[i]!.name);
        failuresOf.set(base, (failuresOf.get(base) ?? 0) + 1);
      } else if (outcome.kind === 'done') {
        budget.charge('renderedBytes', baseAddress(outcome.resource.kind, outcome.resource.name), specSize(outcome.resource.spec), outcome.resource.source);
      }
      // Instances without templates complete synchronously: let the event loop breathe.
      if (++sinceYield % BATCH === 0) await new Promise((resolve) => setImmediate(resolve));
    }
  };
  await Promise.all(Array.from({ length: Math.min(window, instances.length) }, lane));

  // Reported in instance order, so the output is the same on every run: per document the
  // first ten failures, and every instance after the tenth counted in one more diagnostic.
  const out: Resource[] = [];
  const failed = new Set<Address>();
  const shown = new Map<Address, number>();
  const hidden = new Map<Address, { count: number; first: Resource }>();
  instances.forEach((r, i) => {
    const outcome = outcomes[i]!;
    const base = baseAddress(r.kind, r.name);
    const before = shown.get(base) ?? 0;
    if (before >= MAX_FAILURES_SHOWN) {
      failed.add(r.address);
      out.push(r);
      const h = hidden.get(base) ?? { count: 0, first: r };
      h.count++;
      hidden.set(base, h);
      return;
    }
    if (outcome.kind === 'done') {
      out.push(outcome.resource);
      return;
    }
    failed.add(r.address);
    out.push(r);
    if (outcome.kind === 'failed') {
      shown.set(base, before + 1);
      diagnostics.push(outcome.diagnostic);
    }
  });
  for (const [base, { count, first }] of hidden) {
    diagnostics.push(
      error(`${base} was not instantiated on ${count} more instance${count === 1 ? '' : 's'}`, {
        address: base,
        source: first.source,
        detail: `it failed on the first ${MAX_FAILURES_SHOWN}; fix those and load again`,
      }),
    );
  }
  if (budget.exceeded) {
    // Over budget the stack is unusable: none of its instances is a resource of it.
    for (const r of out) failed.add(r.address);
    diagnostics.push(budget.diagnostic()!);
  }
  return { instances: out, failed, diagnostics };
}

const sizes = new WeakMap<object, number>();

/**
 * Roughly the JSON size of a spec: characters of its strings and keys, a few per
 * other value. Cheap (no string is built), and shared objects are measured once.
 */
export function specSize(value: unknown, depth = 0): number {
  if (typeof value === 'string') return value.length + 2;
  if (value === null || typeof value !== 'object') return 8;
  const known = sizes.get(value);
  if (known !== undefined) return known;
  if (depth > 64) return 8;
  let size = 2;
  if (Array.isArray(value)) {
    for (const v of value) size += specSize(v, depth + 1) + 1;
  } else if (ArrayBuffer.isView(value)) {
    size += value.byteLength;
  } else {
    for (const [k, v] of Object.entries(value)) size += k.length + 3 + specSize(v, depth + 1) + 1;
  }
  sizes.set(value, size);
  return size;
}
