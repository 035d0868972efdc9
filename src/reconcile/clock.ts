/** Time as the reconcile loop sees it: real in production, driven by hand in tests. */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  now(): number;
  /** Calls `fn` once after `ms` milliseconds, unless cancelled. */
  setTimer(fn: () => void, ms: number): Timer;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    const handle = setTimeout(fn, Math.max(0, ms));
    // A pending reconcile never keeps the process alive on its own.
    handle.unref();
    return { cancel: () => clearTimeout(handle) };
  },
};
