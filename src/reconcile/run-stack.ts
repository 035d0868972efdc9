/**
 * The engine one reconcile pass drives: resolve the source at a pinned commit,
 * load the spec, then plan, check a saved plan's staleness and apply, sharing
 * one set of target connections. The CLI drives the same layers directly
 * (src/cli/commands/apply.ts); this is the controller's way in, and the seam
 * its unit tests replace.
 *
 * Store failures: like `capstan apply`, an apply whose store stops taking
 * results writes them to a recovery file (src/apply/recovery.ts), and the next
 * pass of that stack imports every such file before it reads the store (its
 * first `plan` or `staleness`, with the stack's lock held by the controller).
 */
import { applyPlan, type ApplyResult } from '../apply/apply.js';
import { importRecoveries, type ImportedRecovery, type RecoveryFiles } from '../apply/recovery.js';
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
  /** Where applies save the results the store could not take, and where passes import them from (`RecoveryFiles.forState`). */
  readonly recovery?: RecoveryFiles | undefined;
  /** Told of each recovery file a pass imported (for the log). */
  readonly onRecoveryImported?: ((stack: string, imported: ImportedRecovery) => void) | undefined;
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
      // Once per stack and session: before the session first reads the store.
      const imports = new Map<string, Promise<void>>();
      const recovered = (stack: string): Promise<void> => {
        const recovery = options.recovery;
        if (!recovery) return Promise.resolve();
        let done = imports.get(stack);
        if (!done) {
          done = importRecoveries(store, stack, recovery).then((imported) => {
            for (const r of imported) options.onRecoveryImported?.(stack, r);
          });
          imports.set(stack, done);
        }
        return done;
      };
      return {
        plan: async (input) => {
          await recovered(input.stack);
          return planChanges({
            stack: input.stack,
            desired: input.desired,
            source: input.source,
            registry,
            store,
            targets,
            allowMassDelete: input.allowMassDelete,
            pruneAdopted: input.pruneAdopted ?? false,
            signal,
          });
        },
        staleness: async (plan, currentSpecHash) => {
          await recovered(plan.stack);
          return findStaleness({ plan, currentSpecHash, store, registry, targets, signal });
        },
        apply: async (input) => {
          await recovered(input.plan.stack);
          return applyPlan({
            plan: input.plan,
            registry,
            store,
            targets,
            actor: input.actor,
            parallelism: input.parallelism,
            signal,
            reporter: input.reporter,
            onRunStarted: input.onRunStarted,
            ...(options.recovery ? { recovery: options.recovery } : {}),
          });
        },
        close: () => targets.close(),
      };
    },
  };
}
