/**
 * The work queue of the reconcile loop, after controller-runtime's: an item is
 * a stack name, never an event, so however many triggers arrive (poll,
 * webhook, drift timer, sync request) a stack is queued at most once.
 *
 * - At most one pass per stack at a time. A stack asked for while its pass runs
 *   is marked dirty and gets exactly one follow-up pass after it.
 * - At most `concurrency` stacks are reconciled at once.
 * - `after(key, ms)` keeps the earliest of the pending deadlines; `schedule`
 *   replaces it (a pass's result decides when the next look is).
 */
import type { Clock, Timer } from './clock.js';

export interface QueueOptions {
  readonly concurrency: number;
  readonly clock: Clock;
}

export class ReconcileQueue {
  readonly #handler: (key: string) => Promise<void>;
  readonly #options: QueueOptions;
  /** Waiting to start, in order. */
  readonly #ready: string[] = [];
  readonly #queued = new Set<string>();
  readonly #processing = new Set<string>();
  readonly #dirty = new Set<string>();
  readonly #timers = new Map<string, { at: number; timer: Timer }>();
  readonly #idle: (() => void)[] = [];
  #stopped = false;

  /** `handler` must not throw; a rejection is swallowed so the loop goes on. */
  constructor(handler: (key: string) => Promise<void>, options: QueueOptions) {
    this.#handler = handler;
    this.#options = options;
  }

  /** Asks for a pass of `key` as soon as possible. */
  add(key: string): void {
    if (this.#stopped) return;
    if (this.#processing.has(key)) {
      this.#dirty.add(key);
      return;
    }
    if (this.#queued.has(key)) return;
    this.#queued.add(key);
    this.#ready.push(key);
    this.#pump();
  }

  /** Asks for a pass in `ms`, unless one is already due sooner. */
  after(key: string, ms: number): void {
    const existing = this.#timers.get(key);
    if (existing && existing.at <= this.#options.clock.now() + ms) return;
    this.schedule(key, ms);
  }

  /** Sets the next timed pass of `key` to `ms` from now, replacing any pending one. */
  schedule(key: string, ms: number): void {
    if (this.#stopped) return;
    this.#timers.get(key)?.timer.cancel();
    const timer = this.#options.clock.setTimer(() => {
      this.#timers.delete(key);
      this.add(key);
    }, ms);
    this.#timers.set(key, { at: this.#options.clock.now() + ms, timer });
  }

  /** Milliseconds until the next timed pass of `key`, if one is pending. */
  nextIn(key: string): number | undefined {
    const t = this.#timers.get(key);
    return t && Math.max(0, t.at - this.#options.clock.now());
  }

  isBusy(key: string): boolean {
    return this.#processing.has(key) || this.#queued.has(key);
  }

  get processing(): readonly string[] {
    return [...this.#processing];
  }

  /**
   * Drops `key`: its timer, its place in line and any follow-up pass. A pass of
   * it in flight runs to its end; `add` or `schedule` may bring it back.
   */
  forget(key: string): void {
    this.#timers.get(key)?.timer.cancel();
    this.#timers.delete(key);
    this.#dirty.delete(key);
    if (this.#queued.delete(key)) this.#ready.splice(this.#ready.indexOf(key), 1);
  }

  /** Stops taking work and cancels timers; resolves when the passes in flight have ended. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const { timer } of this.#timers.values()) timer.cancel();
    this.#timers.clear();
    this.#ready.length = 0;
    this.#queued.clear();
    this.#dirty.clear();
    if (this.#processing.size === 0) return;
    await new Promise<void>((resolve) => this.#idle.push(resolve));
  }

  #pump(): void {
    while (!this.#stopped && this.#processing.size < this.#options.concurrency && this.#ready.length > 0) {
      const key = this.#ready.shift()!;
      this.#queued.delete(key);
      this.#processing.add(key);
      void this.#run(key);
    }
  }

  async #run(key: string): Promise<void> {
    try {
      await this.#handler(key);
    } catch {
      // The handler reports its own failures; the loop must outlive them.
    } finally {
      this.#processing.delete(key);
      if (this.#dirty.delete(key)) this.add(key);
      if (this.#processing.size === 0) for (const resolve of this.#idle.splice(0)) resolve();
      this.#pump();
    }
  }
}
