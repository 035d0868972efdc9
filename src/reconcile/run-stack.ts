/**
 * The engine one reconcile pass drives: resolve the source at a pinned commit,
 * load the spec, then plan, check a saved plan's staleness and apply, sharing
 * one set of target connections. The CLI drives the same layers directly
 * (src/cli/commands/apply.ts); this is the controller's way in, and the seam
 * its unit tests replace.
 */
import { applyPlan, type ApplyResult } from '../apply/apply.js';
import type { ApplyReporter } from '../apply/reporter.js';
import { findStaleness } from '../apply/staleness.js';
import type { Plan, PlanSource } from '../plan/plan.js';
import { planChanges, type DesiredState } from '../plan/planner.js';
import type { ProviderRegistry } from '../providers/registry.js';
import { TargetPool } from '../providers/target-pool.js';
import { isAncestorCommit, resolveSource, type SourceInfo } from '../source/source.js';
import { Keyring } from '../secrets/keyring.js';
import { loadStack, type LoadOptions } from '../spec/load.js';
import type { Actor, RunRecord, Store } from '../state/store.js';

export interface StackSource {
  readonly repo: string;
  /** Branch, tag or commit. */
  readonly ref: string;
  readonly path: string;
}

export interface PlanInput {
  readonly stack: string;
  readonly desired: DesiredState;
  readonly source: PlanSource;
  readonly allowMassDelete: boolean;
  readonly pruneAdopted?: boolean;
}

export interface ApplyInput {
  readonly plan: Plan;
  readonly actor: Actor;
  readonly parallelism: number;
  readonly reporter: ApplyReporter;
  readonly onRunStarted: (run: RunRecord) => void;
}

/** One pass's work on the live state; `close` releases the target connections. */
export interface EngineSession {
  plan(input: PlanInput): Promise<Plan>;
  /** Reasons a saved plan may not be applied any more; empty when it may. */
  staleness(plan: Plan, currentSpecHash: string): Promise<string[]>;
  apply(input: ApplyInput): Promise<ApplyResult>;
  close(): Promise<void>;
}

export interface StackEngine {
  /** Fetches and pins: throws `SourceError`, never returns an empty result. */
  resolve(source: StackSource): Promise<SourceInfo>;
  /**
   * Whether commit `ancestor` is `descendant` or in its history, in the
   * repository as the last `resolve` fetched it (both full SHAs). Throws when
   * it cannot tell.
   */
  isAncestor(query: { repo: string; ancestor: string; descendant: string }): Promise<boolean>;
  /** Loads and validates the spec; problems are diagnostics, not exceptions. */
  load(dir: string): Promise<DesiredState>;
  session(signal: AbortSignal): EngineSession;
}

export interface EngineOptions {
  readonly registry: ProviderRegistry;
  readonly store: Store;
  /** Git cache root (default: the user's cache directory). */
  readonly cacheDir?: string | undefined;
  readonly gitTimeoutMs?: number | undefined;
  /** Bounds for every load (the serve config's `limits:`). */
  readonly loadOptions?: LoadOptions | undefined;
  /** The controller's age identities (config `identity:`): decrypt secrets, key their digests. */
  readonly keyring?: Keyring | undefined;
}

export function stackEngine(options: EngineOptions): StackEngine {
  const { registry, store } = options;
  const keyring = options.keyring ?? Keyring.none();
  return {
    resolve: (source) =>
      resolveSource({ repo: source.repo, ref: source.ref, path: source.path, cacheDir: options.cacheDir, gitTimeoutMs: options.gitTimeoutMs }),
    isAncestor: (query) => isAncestorCommit({ ...query, cacheDir: options.cacheDir }),
    load: (dir) => loadStack(dir, registry, { ...options.loadOptions, keyring }),
    session(signal) {
      const targets = new TargetPool(registry, { signal, digester: keyring.digester });
      return {
        plan: (input) =>
          planChanges({
            stack: input.stack,
            desired: input.desired,
            source: input.source,
            registry,
            store,
            targets,
            allowMassDelete: input.allowMassDelete,
            pruneAdopted: input.pruneAdopted ?? false,
            signal,
          }),
        staleness: (plan, currentSpecHash) => findStaleness({ plan, currentSpecHash, store, registry, targets, signal }),
        apply: (input) =>
          applyPlan({
            plan: input.plan,
            registry,
            store,
            targets,
            actor: input.actor,
            parallelism: input.parallelism,
            signal,
            reporter: input.reporter,
            onRunStarted: input.onRunStarted,
          }),
        close: () => targets.close(),
      };
    },
  };
}
