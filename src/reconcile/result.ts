/**
 * What a reconcile pass returns, after controller-runtime's `(Result, error)`:
 *
 * - a `PassResult`: the pass did what the stack needed; look again after
 *   `requeueAfter` (the poll interval, or sooner when a drift check is due);
 * - a thrown `TerminalError`: the desired state cannot be reconciled as it is
 *   (the spec at this commit is invalid); no retry until a new commit or a
 *   sync request, only the usual poll;
 * - any other thrown error: retried with exponential backoff.
 */
export type PassOutcome =
  /** Nothing to do: the commit did not move and no live check was due. */
  | 'unchanged'
  | 'in-sync'
  | 'applied'
  | 'healed'
  | 'awaiting-approval'
  | 'planned'
  | 'drifted'
  /** A policy denies the plan: nothing was applied (the stack's status says why). */
  | 'denied'
  /** Another replica holds the stack. */
  | 'not-owner'
  /** An operator paused the stack: nothing was read or changed. */
  | 'paused';

export interface PassResult {
  readonly outcome: PassOutcome;
  readonly requeueAfter?: number | undefined;
}

export class TerminalError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'TerminalError';
  }
}

/** An apply that ran but did not succeed: retried with backoff like any error. */
export class ApplyFailedError extends Error {
  constructor(
    message: string,
    readonly runId: number,
  ) {
    super(message);
    this.name = 'ApplyFailedError';
  }
}

export class PassTimeoutError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`the pass took longer than ${Math.round(timeoutMs / 1000)}s and was stopped`);
    this.name = 'PassTimeoutError';
  }
}
