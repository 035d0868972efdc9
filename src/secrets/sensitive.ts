/**
 * A secret value in memory. It cannot be serialised by accident: JSON, `util.inspect`,
 * template strings and `String()` all print `(sensitive)`. Only `reveal()` gives the
 * value, and only a provider about to write it to its backend should call it.
 *
 * `digest` is a keyed hash of the value (see src/secrets/digest.ts): what plans, the
 * state store and drift checks compare instead of the value.
 */
import { inspect } from 'node:util';
import { z } from 'zod';

export const SENSITIVE_TEXT = '(sensitive)';

export class Sensitive<T = string> {
  readonly #value: T;

  constructor(
    value: T,
    /** A keyed hash of the value: equal values give equal digests within one identity. */
    readonly digest: string,
  ) {
    this.#value = value;
  }

  reveal(): T {
    return this.#value;
  }

  toJSON(): string {
    return SENSITIVE_TEXT;
  }

  toString(): string {
    return SENSITIVE_TEXT;
  }

  [inspect.custom](): string {
    return SENSITIVE_TEXT;
  }

  [Symbol.toPrimitive](): string {
    return SENSITIVE_TEXT;
  }
}

export function isSensitive(value: unknown): value is Sensitive<unknown> {
  return value instanceof Sensitive;
}

/** The plain value of a field that takes either a literal or a secret. */
export function revealString(value: string | Sensitive<string>): string {
  return typeof value === 'string' ? value : value.reveal();
}

/**
 * Schema of a field that takes a secret: a literal string, or (after the loader
 * resolved `{ secret: PATH }`) a `Sensitive` string.
 */
export function secretString(message = 'expected a string or { secret: PATH }') {
  return z.union([z.string({ error: message }), z.instanceof(Sensitive<string>, { error: message })], { error: message });
}
