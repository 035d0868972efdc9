/**
 * Delays of the reconcile loop: exponential backoff after errors (capped, with
 * jitter, so many stacks failing together do not retry in step) and the
 * jittered poll interval.
 */
export interface BackoffPolicy {
  /** Delay after the first failure. */
  readonly baseMs: number;
  /** No delay is longer than this. */
  readonly maxMs: number;
  /** Each delay is scaled by a random factor in [1 - jitter, 1 + jitter], then capped. */
  readonly jitter: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 1_000, maxMs: 5 * 60_000, jitter: 0.2 };

/** Delay before retry number `failures` (1 for the first failure). */
export function backoffDelay(failures: number, policy: BackoffPolicy = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  const n = Math.max(1, Math.floor(failures));
  // 2^(n-1) overflows to Infinity for large n; the cap applies either way.
  const raw = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(n - 1, 52));
  return Math.min(policy.maxMs, Math.round(jittered(raw, policy.jitter, random)));
}

/** `ms` scaled by a random factor in [1 - fraction, 1 + fraction]. */
export function jittered(ms: number, fraction: number, random: () => number = Math.random): number {
  return Math.max(0, ms * (1 - fraction + 2 * fraction * random()));
}
