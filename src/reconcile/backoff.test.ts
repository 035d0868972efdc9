import { describe, expect, it } from 'vitest';
import { backoffDelay, DEFAULT_BACKOFF, jittered } from './backoff.js';

const mid = () => 0.5;

describe('backoffDelay', () => {
  it('doubles from 1 s and stops at 5 min', () => {
    const delays = [1, 2, 3, 4, 5, 8, 9, 10, 50, 5000].map((n) => backoffDelay(n, DEFAULT_BACKOFF, mid));
    expect(delays).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 128_000, 256_000, 300_000, 300_000, 300_000]);
  });

  it('jitters within ±20% and never beyond the cap', () => {
    expect(backoffDelay(1, DEFAULT_BACKOFF, () => 0)).toBe(800);
    expect(backoffDelay(1, DEFAULT_BACKOFF, () => 0.999999)).toBe(1_200);
    expect(backoffDelay(20, DEFAULT_BACKOFF, () => 0.999999)).toBe(300_000);
    expect(backoffDelay(20, DEFAULT_BACKOFF, () => 0)).toBe(240_000);
    for (let i = 0; i < 1000; i++) {
      const d = backoffDelay(1 + (i % 15));
      expect(d).toBeGreaterThanOrEqual(800);
      expect(d).toBeLessThanOrEqual(300_000);
    }
  });

  it('treats 0 or fewer failures as the first', () => {
    expect(backoffDelay(0, DEFAULT_BACKOFF, mid)).toBe(1_000);
  });
});

describe('jittered', () => {
  it('spreads a 60 s poll over 54..66 s', () => {
    expect(jittered(60_000, 0.1, () => 0)).toBe(54_000);
    expect(jittered(60_000, 0.1, () => 1)).toBe(66_000);
    expect(jittered(60_000, 0.1, mid)).toBe(60_000);
  });
});
