/**
 * Exact decimal arithmetic for the numbers Capstan prints into rule files.
 *
 * Thresholds such as `14.4 × (1 − 0.999)` come out of IEEE doubles as
 * 0.014400000000000089; written into an alert they are wrong to read and hard to
 * test. Numbers here are rationals of two bigints, built from the decimal text
 * the user wrote, and printed as plain decimals: exactly when the decimal
 * terminates within `MAX_SIGNIFICANT_DIGITS`, otherwise rounded half-up to that
 * many significant digits, always without exponent or trailing zeros.
 */

export const MAX_SIGNIFICANT_DIGITS = 9;

export interface Ratio {
  readonly num: bigint;
  /** Always positive. */
  readonly den: bigint;
}

function gcd(a: bigint, b: bigint): bigint {
  let x = a < 0n ? -a : a;
  let y = b < 0n ? -b : b;
  while (y !== 0n) [x, y] = [y, x % y];
  return x;
}

export function ratio(num: bigint, den: bigint = 1n): Ratio {
  if (den === 0n) throw new RangeError('division by zero');
  if (den < 0n) {
    num = -num;
    den = -den;
  }
  const g = gcd(num, den) || 1n;
  return { num: num / g, den: den / g };
}

const DECIMAL_TEXT = /^([+-]?)(\d+)(?:\.(\d*))?(?:e([+-]?\d+))?$/i;

/** Parses decimal text ("99.9", "0.05", "1e-3"); a JS number is read through its shortest round-trip text, i.e. as the user wrote it. */
export function parseDecimal(value: number | string): Ratio {
  const text = typeof value === 'number' ? String(value) : value.trim();
  const m = DECIMAL_TEXT.exec(text);
  if (!m) throw new RangeError(`not a decimal number: ${JSON.stringify(text)}`);
  const sign = m[1] === '-' ? -1n : 1n;
  const frac = m[3] ?? '';
  const exp = BigInt(m[4] ?? '0') - BigInt(frac.length);
  const digits = BigInt((m[2] ?? '0') + frac) * sign;
  return exp >= 0n ? ratio(digits * 10n ** exp) : ratio(digits, 10n ** -exp);
}

export function add(a: Ratio, b: Ratio): Ratio {
  return ratio(a.num * b.den + b.num * a.den, a.den * b.den);
}

export function sub(a: Ratio, b: Ratio): Ratio {
  return ratio(a.num * b.den - b.num * a.den, a.den * b.den);
}

export function mul(a: Ratio, b: Ratio): Ratio {
  return ratio(a.num * b.num, a.den * b.den);
}

export function div(a: Ratio, b: Ratio): Ratio {
  return ratio(a.num * b.den, a.den * b.num);
}

export function compare(a: Ratio, b: Ratio): -1 | 0 | 1 {
  const d = a.num * b.den - b.num * a.den;
  return d < 0n ? -1 : d > 0n ? 1 : 0;
}

export function toNumber(a: Ratio): number {
  return Number(formatDecimal(a, 17));
}

/** Whether the decimal expansion of `a` terminates (its denominator has no prime factor other than 2 and 5). */
export function terminates(a: Ratio): boolean {
  let d = a.den;
  while (d % 2n === 0n) d /= 2n;
  while (d % 5n === 0n) d /= 5n;
  return d === 1n;
}

/** Plain decimal text, no exponent, no trailing zeros, at most `significant` significant digits (half-up). */
export function formatDecimal(a: Ratio, significant: number = MAX_SIGNIFICANT_DIGITS): string {
  if (a.num === 0n) return '0';
  const negative = a.num < 0n;
  const num = negative ? -a.num : a.num;
  // Find the exponent e with 10^e <= num/den < 10^(e+1).
  let e = num.toString().length - a.den.toString().length;
  const pow = (n: number): Ratio => (n >= 0 ? ratio(10n ** BigInt(n)) : ratio(1n, 10n ** BigInt(-n)));
  const abs = ratio(num, a.den);
  if (compare(abs, pow(e)) < 0) e -= 1;
  // Scale so that the value has `significant` digits before the point, then round half-up.
  const shift = significant - 1 - e;
  const scaled = shift >= 0 ? mul(abs, ratio(10n ** BigInt(shift))) : div(abs, ratio(10n ** BigInt(-shift)));
  const digits = (2n * scaled.num + scaled.den) / (2n * scaled.den);
  let text = digits.toString();
  // Rounding may carry into a new digit (9.99… → 10.0…): that is still correct with the same shift.
  let point = text.length - shift;
  if (point <= 0) {
    text = '0'.repeat(1 - point) + text;
    point = 1;
  } else if (shift < 0) {
    text = text + '0'.repeat(-shift);
    point = text.length;
  }
  let intPart = text.slice(0, point);
  let fracPart = shift > 0 ? text.slice(point) : '';
  fracPart = fracPart.replace(/0+$/, '');
  intPart = intPart.replace(/^0+(?=\d)/, '');
  const out = fracPart ? `${intPart}.${fracPart}` : intPart;
  return negative && out !== '0' ? `-${out}` : out;
}
