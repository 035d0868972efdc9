import { describe, expect, it } from 'vitest';
import { LogThrottle } from './log-throttle.js';

describe('LogThrottle', () => {
  it('lets perMinute lines through per key, then counts the others and reports them with the next line', () => {
    let t = 0;
    const throttle = new LogThrottle(3, () => t);
    const admitted = Array.from({ length: 10 }, () => throttle.admit('401').log);
    expect(admitted).toEqual([true, true, true, false, false, false, false, false, false, false]);
    expect(throttle.admit('404')).toEqual({ log: true, suppressed: 0 });
    t = 60_000;
    expect(throttle.admit('401')).toEqual({ log: true, suppressed: 7 });
    expect(throttle.admit('401')).toEqual({ log: true, suppressed: 0 });
  });
});
