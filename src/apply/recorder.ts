import type { ResourceResult, Store } from '../state/store.js';

/** How often a failed write of results is tried again before the store counts as lost. */
export interface RecordRetry {
  /** Attempts in all, the first included. Default 4. */
  readonly attempts: number;
  /** Wait before the second attempt; each further wait is four times longer. Default 100 ms (100, 400, 1600). */
  readonly firstDelayMs: number;
}

export const DEFAULT_RECORD_RETRY: RecordRetry = { attempts: 4, firstDelayMs: 100 };

/** Why the store stopped taking results, and every result it never took, in the order they finished. */
export interface RecordFailure {
  readonly error: unknown;
  readonly unrecorded: readonly ResourceResult[];
}

/**
 * Records results as they finish. Results that finish while a write is in
 * flight are grouped into the next write (group commit), so a slow disk never
 * serialises the apply, and each caller's promise resolves only once its result
 * is durable. A write starts GATHER_MS after the first result of its batch, so
 * results that finish close together share one commit even with a store that
 * writes synchronously (SQLite: one fsync per commit; a 2,000-file first apply
 * went from 1,255 commits to 555 and used a third less CPU).
 *
 * A write that fails is tried again, a bounded number of times with backoff
 * (a connection the database dropped is replaced by the pool meanwhile). When
 * the last attempt fails, the store counts as lost for the rest of the run:
 * `onLost` is called once (the apply stops starting changes), that batch and
 * every later result are kept in memory, never written, and `failure()` gives
 * them to the caller, who saves them elsewhere. From then on `record` resolves
 * at once: the result is safe in memory, and a change that finished must not
 * be reported as failed because its bookkeeping could not be written.
 */
/** How long a write waits for more results to share its commit (one fsync per commit). */
const GATHER_MS = 3;

export class ResultRecorder {
  private pending: { result: ResourceResult; done: () => void }[] = [];
  private writing: Promise<void> | undefined;
  private lost: { error: unknown; unrecorded: ResourceResult[] } | undefined;

  constructor(
    private readonly store: Store,
    private readonly runId: number,
    private readonly options: { retry?: RecordRetry; onLost?: (error: unknown) => void } = {},
  ) {}

  record(result: ResourceResult): Promise<void> {
    if (this.lost) {
      this.lost.unrecorded.push(result);
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.pending.push({ result, done: resolve });
      if (!this.writing) this.writing = this.flush();
    });
  }

  async drain(): Promise<void> {
    while (this.writing) await this.writing;
  }

  /** Undefined while the store takes every result. */
  failure(): RecordFailure | undefined {
    return this.lost;
  }

  private async flush(): Promise<void> {
    while (this.pending.length > 0) {
      // A store may write synchronously (SQLite): without this pause the first result would
      // be written alone, then the next, each its own fsync'd commit.
      await new Promise((resolve) => setTimeout(resolve, GATHER_MS));
      const batch = this.pending;
      this.pending = [];
      const results = batch.map((b) => b.result);
      const error = await this.write(results);
      if (error !== undefined) {
        this.lost = { error, unrecorded: [...results, ...this.pending.map((p) => p.result)] };
        for (const p of this.pending) p.done();
        this.pending = [];
        this.options.onLost?.(error);
      }
      for (const b of batch) b.done();
      if (this.lost) break;
    }
    this.writing = undefined;
  }

  /** Undefined once written; the last error when every attempt failed. */
  private async write(results: readonly ResourceResult[]): Promise<unknown> {
    const retry = this.options.retry ?? DEFAULT_RECORD_RETRY;
    let last: unknown;
    for (let attempt = 0; attempt < Math.max(1, retry.attempts); attempt++) {
      if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, retry.firstDelayMs * 4 ** (attempt - 1)));
      try {
        await this.store.recordResults(this.runId, results);
        return undefined;
      } catch (err) {
        last = err ?? new Error('the state store failed');
      }
    }
    return last;
  }
}
