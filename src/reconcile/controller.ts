/**
 * The reconcile loop of `capstan serve`: one queue of stack names, one runner.
 *
 * Triggers only queue a name: the poll interval and drift timer (the next look a
 * pass's result asks for), webhooks, sync requests, approvals. The runner
 * around each pass adds what controller-runtime's does: a pass id on every log
 * line, a timeout (the pass's AbortSignal stops its apply cleanly), recovery
 * from any thrown error, exponential backoff with jitter after errors, no retry
 * after a `TerminalError`, and a metric per outcome.
 *
 * One writer per stack, across replicas: a replica reconciles a stack only
 * while it holds the stack's lock in the store (`Store.lock`), and keeps it
 * until it stops. The others retry every `leaseRetryMs`, so when the holder
 * dies (its lock is released by PostgreSQL with its session, or broken by
 * SQLite once its pid is gone) another takes the stack over within seconds.
 * A sync or approval asked of any replica reaches the owner through the
 * store's sync counter, which owners watch every `watchIntervalMs`.
 *
 * The stack list can change at runtime (`setStacks`, behind `POST
 * /api/stacks/reload` and SIGHUP): a pass in flight finishes on the config it
 * started with; the next one reads the new config.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { StackLockedError, type Actor, type ControllerStore, type StackLock, type StackStatusRecord, type Store } from '../state/store.js';
import { backoffDelay, DEFAULT_BACKOFF, jittered, type BackoffPolicy } from './backoff.js';
import type { Clock, Timer } from './clock.js';
import type { StackConfig } from './config.js';
import type { EventBus } from './events.js';
import { ReconcileQueue } from './queue.js';
import { PassTimeoutError, TerminalError, type PassOutcome } from './result.js';
import type { StackEngine } from './run-stack.js';
import { StackReconciler, type ReconcileObserver } from './stack-reconciler.js';

export type RunnerOutcome = PassOutcome | 'error' | 'terminal';

export interface ControllerObserver extends ReconcileObserver {
  passFinished(stack: string, outcome: RunnerOutcome, seconds: number): void;
  stackState(stack: StackConfig, status: StackStatusRecord | undefined, failures: number): void;
}

export interface ControllerOptions {
  readonly stacks: readonly StackConfig[];
  readonly store: Store;
  readonly controllerStore: ControllerStore;
  readonly engine: StackEngine;
  readonly events: EventBus;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly actor: Actor;
  readonly replicaId: string;
  readonly concurrency: number;
  readonly passTimeoutMs: number;
  readonly backoff?: BackoffPolicy | undefined;
  readonly leaseRetryMs?: number | undefined;
  readonly watchIntervalMs?: number | undefined;
  readonly observer?: ControllerObserver | undefined;
  readonly random?: (() => number) | undefined;
}

export interface LastPass {
  readonly passId: string;
  readonly outcome: RunnerOutcome;
  readonly error: string | null;
  readonly finishedAt: string;
  readonly durationMs: number;
}

/** What `setStacks` changed, by stack name, in the order of the new list (removed: of the old one). */
export interface StacksDiff {
  readonly added: readonly string[];
  readonly updated: readonly string[];
  readonly removed: readonly string[];
  readonly unchanged: readonly string[];
}

export interface StackRuntime {
  readonly owned: boolean;
  readonly reconciling: boolean;
  readonly failures: number;
  readonly lastPass: LastPass | null;
  readonly nextPassInMs: number | null;
}

export class Controller {
  readonly #options: ControllerOptions;
  readonly #stacks: Map<string, StackConfig>;
  readonly #queue: ReconcileQueue;
  readonly #reconciler: StackReconciler;
  readonly #locks = new Map<string, StackLock>();
  readonly #inflight = new Map<string, AbortController>();
  readonly #failures = new Map<string, number>();
  readonly #lastPass = new Map<string, LastPass>();
  #watchTimer: Timer | undefined;
  #stopping = false;
  #started = false;

  constructor(options: ControllerOptions) {
    this.#options = options;
    this.#stacks = new Map(options.stacks.map((s) => [s.name, s]));
    this.#queue = new ReconcileQueue((name) => this.#runPass(name), { concurrency: options.concurrency, clock: options.clock });
    this.#reconciler = new StackReconciler({
      store: options.store,
      controllerStore: options.controllerStore,
      engine: options.engine,
      events: options.events,
      clock: options.clock,
      actor: options.actor,
      replicaId: options.replicaId,
      observer: options.observer,
      random: options.random,
    });
  }

  get stacks(): readonly StackConfig[] {
    return [...this.#stacks.values()];
  }

  stack(name: string): StackConfig | undefined {
    return this.#stacks.get(name);
  }

  get stopping(): boolean {
    return this.#stopping;
  }

  /** Queues every stack and starts watching the store for sync requests. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    for (const name of this.#stacks.keys()) this.#queue.add(name);
    this.#scheduleWatch();
  }

  /**
   * Replaces the stack list. Added stacks are queued at once; changed ones are
   * queued too and their next pass (a full one) uses the new config, while a
   * pass in flight finishes on the old one. Removed stacks are no longer
   * scheduled: a pass of theirs in flight runs to its end (nothing is aborted),
   * then their lock is released; their history stays in the store.
   * Throws, changing nothing, when two stacks share a name or the controller is stopping.
   */
  async setStacks(configs: readonly StackConfig[]): Promise<StacksDiff> {
    if (this.#stopping) throw new Error('the controller is stopping');
    const seen = new Set<string>();
    for (const c of configs) {
      if (seen.has(c.name)) throw new Error(`stack "${c.name}" is configured twice`);
      seen.add(c.name);
    }
    const previous = new Map(this.#stacks);
    const diff = { added: [] as string[], updated: [] as string[], removed: [] as string[], unchanged: [] as string[] };
    for (const c of configs) {
      const old = previous.get(c.name);
      if (!old) diff.added.push(c.name);
      else if (sameStack(old, c)) diff.unchanged.push(c.name);
      else diff.updated.push(c.name);
    }
    for (const name of previous.keys()) if (!seen.has(name)) diff.removed.push(name);

    this.#stacks.clear();
    // An unchanged stack keeps its config object: a pass in flight sees no change.
    for (const c of configs) this.#stacks.set(c.name, diff.unchanged.includes(c.name) ? previous.get(c.name)! : c);
    const releasing: Promise<void>[] = [];
    for (const name of diff.removed) {
      this.#queue.forget(name);
      this.#failures.delete(name);
      this.#lastPass.delete(name);
      this.#reconciler.forget(name);
      // A pass in flight releases the lock at its end (see #runPass).
      if (!this.#inflight.has(name)) releasing.push(this.#releaseLock(name));
    }
    for (const name of [...diff.added, ...diff.updated]) {
      if (!this.#inflight.has(name)) this.#reconciler.forget(name);
      if (this.#started) this.#queue.add(name);
    }
    await Promise.all(releasing);
    this.#options.logger.info(diff, 'stack list changed');
    return diff;
  }

  /** Queues a pass of the stack; false when there is no such stack or the controller is stopping. */
  trigger(name: string): boolean {
    if (!this.#stacks.has(name) || this.#stopping) return false;
    this.#queue.add(name);
    return true;
  }

  /** A sync: the next pass reads the live state even if the commit did not move. Reaches the owner on any replica. */
  async requestSync(name: string): Promise<boolean> {
    if (!this.#stacks.has(name) || this.#stopping) return false;
    await this.#options.controllerStore.requestSync(name);
    return this.trigger(name);
  }

  /**
   * A push concerns the stack (a webhook): the owner passes at once; a replica
   * that does not own it relays the request through the store.
   */
  async notify(name: string): Promise<boolean> {
    if (!this.#stacks.has(name) || this.#stopping) return false;
    return this.#locks.has(name) ? this.trigger(name) : this.requestSync(name);
  }

  runtime(name: string): StackRuntime {
    return {
      owned: this.#locks.has(name),
      reconciling: this.#inflight.has(name),
      failures: this.#failures.get(name) ?? 0,
      lastPass: this.#lastPass.get(name) ?? null,
      nextPassInMs: this.#queue.nextIn(name) ?? null,
    };
  }

  /**
   * Stops taking work; passes in flight may finish for `graceMs`, then their
   * AbortSignal stops them (in-flight changes finish and the run is recorded
   * as interrupted). Releases this replica's stack locks.
   */
  async stop(graceMs: number): Promise<void> {
    this.#stopping = true;
    this.#watchTimer?.cancel();
    const drained = this.#queue.stop();
    const grace = this.#options.clock.setTimer(() => this.abortInFlight('shutting down: grace period over'), graceMs);
    try {
      await drained;
    } finally {
      grace.cancel();
    }
    const held = [...this.#locks];
    this.#locks.clear();
    for (const [name, lock] of held) {
      await lock.release().catch((err: unknown) => this.#options.logger.warn({ stack: name, err }, 'could not release the stack lock'));
    }
  }

  /** Stops every pass in flight through its AbortSignal. */
  abortInFlight(reason: string): void {
    for (const [name, abort] of this.#inflight) {
      this.#options.logger.warn({ stack: name, reason }, 'stopping the pass in flight');
      abort.abort(new Error(reason));
    }
  }

  async #runPass(name: string): Promise<void> {
    const stack = this.#stacks.get(name);
    if (!stack || this.#stopping) return;
    const { clock, observer } = this.#options;
    const passId = `pass-${randomUUID().slice(0, 8)}`;
    const log = this.#options.logger.child({ stack: name, runId: passId });
    const started = clock.now();
    const abort = new AbortController();
    this.#inflight.set(name, abort);
    let outcome: RunnerOutcome;
    let next: number;
    let errorText: string | null = null;
    try {
      const lock = await this.#ensureOwner(name, log);
      if (!lock) {
        outcome = 'not-owner';
        next = this.#options.leaseRetryMs ?? 5_000;
      } else {
        const result = await this.#withTimeout(this.#reconciler.reconcile(stack, { passId, signal: abort.signal, log, lock }), abort);
        this.#failures.set(name, 0);
        outcome = result.outcome;
        next = result.requeueAfter ?? jittered(stack.intervalMs, 0.1, this.#options.random);
      }
    } catch (err) {
      errorText = err instanceof Error ? err.message : String(err);
      if (err instanceof TerminalError) {
        this.#failures.set(name, 0);
        outcome = 'terminal';
        next = jittered(stack.intervalMs, 0.1, this.#options.random);
        log.warn({ error: errorText }, 'pass ended with a terminal error: waiting for a new commit');
      } else {
        const failures = (this.#failures.get(name) ?? 0) + 1;
        this.#failures.set(name, failures);
        outcome = 'error';
        next = backoffDelay(failures, this.#options.backoff ?? DEFAULT_BACKOFF, this.#options.random);
        log.error({ err, failures, retryInMs: next }, 'pass failed; retrying with backoff');
        await this.#options.controllerStore
          .updateStackStatus(name, { status: 'failed', error: errorText, owner: this.#options.replicaId })
          .catch((e: unknown) => log.error({ err: e }, 'could not record the failure'));
      }
    } finally {
      this.#inflight.delete(name);
    }
    const durationMs = clock.now() - started;
    this.#lastPass.set(name, { passId, outcome, error: errorText, finishedAt: new Date(clock.now()).toISOString(), durationMs });
    if (outcome !== 'unchanged' && outcome !== 'not-owner' && outcome !== 'paused') {
      log.info({ outcome, durationMs, nextInMs: Math.round(next) }, 'pass finished');
      this.#options.events.emit({ type: 'reconcile.finished', stack: name, passId, runId: null, message: `${outcome}${errorText ? `: ${errorText}` : ''}`, data: { outcome, durationMs } });
    }
    try {
      observer?.passFinished(name, outcome, durationMs / 1000);
      if (observer) observer.stackState(stack, await this.#options.controllerStore.getStackStatus(name), this.#failures.get(name) ?? 0);
    } catch (err) {
      log.warn({ err }, 'could not update metrics');
    }
    const current = this.#stacks.get(name);
    if (!current) {
      // Removed while this pass ran: never scheduled again, and its lock goes to whoever still reconciles it.
      await this.#releaseLock(name);
      return;
    }
    if (current !== stack) this.#reconciler.forget(name);
    if (!this.#stopping) this.#queue.schedule(name, next);
  }

  async #releaseLock(name: string): Promise<void> {
    const lock = this.#locks.get(name);
    if (!lock) return;
    this.#locks.delete(name);
    await lock.release().catch((err: unknown) => this.#options.logger.warn({ stack: name, err }, 'could not release the stack lock'));
  }

  async #ensureOwner(name: string, log: Logger): Promise<StackLock | undefined> {
    const held = this.#locks.get(name);
    if (held) return held;
    try {
      const lock = await this.#options.store.lock(name, this.#options.actor);
      this.#locks.set(name, lock);
      // A lock can be lost (a PostgreSQL connection cut): stop writing, and try to win it back like any replica.
      lock.signal?.addEventListener(
        'abort',
        () => {
          if (this.#locks.get(name) !== lock) return;
          this.#locks.delete(name);
          this.#options.logger.warn({ stack: name, reason: String(lock.signal?.reason) }, 'lost the stack lock: stopping the pass in flight');
          this.#inflight.get(name)?.abort(new Error(`lost the lock on stack "${name}"`));
        },
        { once: true },
      );
      this.#reconciler.forget(name);
      log.info({ replica: this.#options.replicaId }, 'this replica now reconciles the stack');
      return lock;
    } catch (err) {
      if (err instanceof StackLockedError) {
        log.debug({ holder: err.holder }, 'another replica holds the stack');
        return undefined;
      }
      throw err;
    }
  }

  async #withTimeout<T>(pass: Promise<T>, abort: AbortController): Promise<T> {
    const ms = this.#options.passTimeoutMs;
    let timedOut = false;
    const timer = this.#options.clock.setTimer(() => {
      timedOut = true;
      abort.abort(new PassTimeoutError(ms));
    }, ms);
    try {
      // The pass stops at the abort (an apply records its run as interrupted): wait for it, so two passes never overlap.
      const result = await pass;
      if (timedOut) throw new PassTimeoutError(ms);
      return result;
    } catch (err) {
      if (timedOut) throw new PassTimeoutError(ms);
      throw err;
    } finally {
      timer.cancel();
    }
  }

  #scheduleWatch(): void {
    if (this.#stopping) return;
    this.#watchTimer = this.#options.clock.setTimer(() => {
      void this.#watch().finally(() => this.#scheduleWatch());
    }, this.#options.watchIntervalMs ?? 2_000);
  }

  /** Queues the owned stacks whose sync counter moved (a sync or approval asked of any replica). */
  async #watch(): Promise<void> {
    try {
      for (const status of await this.#options.controllerStore.listStackStatus()) {
        if (!this.#locks.has(status.stack) || this.#queue.isBusy(status.stack)) continue;
        if (this.#reconciler.syncPending(status)) this.#queue.add(status.stack);
      }
    } catch (err) {
      this.#options.logger.warn({ err }, 'could not read sync requests from the store');
    }
  }
}

function sameStack(a: StackConfig, b: StackConfig): boolean {
  const keys = Object.keys({ ...a, ...b }) as (keyof StackConfig)[];
  return keys.every((k) => {
    if (k === 'webhookSecret') return a.webhookSecret?.reveal() === b.webhookSecret?.reveal();
    if (k === 'labels') return sameLabels(a.labels, b.labels);
    return a[k] === b[k];
  });
}

function sameLabels(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}
