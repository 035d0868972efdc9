import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { burnRateAlerts, DEFAULT_TIERS, errorBudget } from './burn-rate.js';
import { compare, div, formatDecimal, mul, parseDecimal, ratio, sub, terminates, toNumber, MAX_SIGNIFICANT_DIGITS } from './decimal.js';

const PLAIN = /^-?(0|[1-9]\d*)(\.\d*[1-9])?$/;

function significantDigits(text: string): number {
  return text.replace(/^-/, '').replace('.', '').replace(/^0+/, '').replace(/0+$/, '').length;
}

describe('formatDecimal', () => {
  it('prints what float arithmetic gets wrong exactly', () => {
    expect(14.4 * (1 - 0.999)).not.toBe(0.0144); // the noise this module exists for
    const budget = div(sub(ratio(100n), parseDecimal(99.9)), ratio(100n));
    expect(formatDecimal(budget)).toBe('0.001');
    expect(formatDecimal(mul(parseDecimal(14.4), budget))).toBe('0.0144');
    expect(formatDecimal(mul(parseDecimal('6'), budget))).toBe('0.006');
    expect(formatDecimal(sub(parseDecimal('0.3'), parseDecimal('0.1')))).toBe('0.2');
  });

  it('rounds non-terminating decimals half-up to nine significant digits and strips zeros', () => {
    expect(formatDecimal(ratio(28n, 30n))).toBe('0.933333333');
    expect(formatDecimal(ratio(2n, 3n))).toBe('0.666666667');
    expect(formatDecimal(ratio(1n, 3000000n))).toBe('0.000000333333333');
    expect(formatDecimal(ratio(99999999999n, 1000000000000n))).toBe('0.1');
    expect(formatDecimal(ratio(-5n, 2n))).toBe('-2.5');
    expect(formatDecimal(ratio(0n))).toBe('0');
    expect(formatDecimal(ratio(123456789012n))).toBe('123456789000');
  });

  it('parses decimal text, numbers and exponents', () => {
    expect(parseDecimal('99.95')).toEqual(ratio(1999n, 20n));
    expect(parseDecimal(1e-7)).toEqual(ratio(1n, 10000000n));
    expect(parseDecimal('2.50')).toEqual(ratio(5n, 2n));
    expect(() => parseDecimal('abc')).toThrow(/not a decimal/);
    expect(terminates(ratio(1n, 3n))).toBe(false);
    expect(terminates(ratio(7n, 40n))).toBe(true);
    expect(toNumber(ratio(1n, 8n))).toBe(0.125);
  });

  it('never prints float noise in a burn-rate threshold (property)', () => {
    const objective = fc
      .tuple(fc.integer({ min: 50, max: 99 }), fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 9999 }))
      .map(([int, digits, frac]) => (digits === 0 ? `${int}` : `${int}.${String(frac % 10 ** digits).padStart(digits, '0')}`));
    const windowDays = fc.integer({ min: 3, max: 120 });
    const consumed = fc.integer({ min: 1, max: 10000 }).map((n) => (n / 100).toString());
    fc.assert(
      fc.property(objective, windowDays, consumed, fc.constantFrom('1h', '6h', '1d', '3d', '90m', '36h'), (obj, days, pct, long) => {
        const tiers = { t: { severity: 'page' as const, longWindow: long, shortWindow: '5m', budgetConsumed: pct } };
        const { alerts } = burnRateAlerts(obj, `${days}d`, tiers);
        for (const a of alerts) {
          for (const value of [a.threshold, a.factor, errorBudget(obj)]) {
            const text = formatDecimal(value);
            expect(text).toMatch(PLAIN);
            expect(significantDigits(text)).toBeLessThanOrEqual(MAX_SIGNIFICANT_DIGITS);
            const back = parseDecimal(text);
            // Exact when the decimal terminates within the digits allowed, else within half a unit of the last digit.
            const error = div(sub(back, value), value);
            const bound = ratio(1n, 10n ** BigInt(MAX_SIGNIFICANT_DIGITS - 1));
            expect(compare(error.num < 0n ? ratio(-error.num, error.den) : error, bound)).toBeLessThanOrEqual(0);
            if (terminates(value) && significantDigits(formatDecimal(value, 40)) <= MAX_SIGNIFICANT_DIGITS) expect(compare(back, value)).toBe(0);
          }
        }
      }),
      { numRuns: 500 },
    );
  });

  it('keeps the workbook budget fractions in the default tiers', () => {
    expect(Object.fromEntries(Object.entries(DEFAULT_TIERS).map(([k, v]) => [k, v.budgetConsumed]))).toEqual({
      'page-fast': 2,
      'page-slow': 5,
      'ticket-fast': 10,
      'ticket-slow': 10,
    });
  });
});
