/**
 * A secret value in memory. It cannot be serialised by accident: `util.inspect`,
 * template strings and `String()` print `(sensitive)`, and JSON holds only its
 * keyed digest, as `{"$sensitive": "hmac-sha256:..."}` (a `SensitiveDigest`). Only
 * `reveal()` gives the value, and only a provider about to write it to its
 * backend should call it.
 *
 * `digest` is a keyed hash of the value (see src/secrets/digest.ts): what plans, the
 * state store and drift checks compare instead of the value. A spec read back
 * from a saved plan or from the state store holds `SensitiveDigest` objects where
 * the secrets were: comparable, never revealable.
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

  toJSON(): SensitiveDigest {
    return { $sensitive: this.digest };
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

/** What a Sensitive becomes in JSON (plans, the state store, the API): its digest only. */
export interface SensitiveDigest {
  readonly $sensitive: string;
}

export function isSensitiveDigest(value: unknown): value is SensitiveDigest {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    typeof (value as { $sensitive?: unknown }).$sensitive === 'string' &&
    Object.keys(value).length === 1
  );
}

/** The digest of a Sensitive, or of what one became in JSON; undefined for anything else. */
export function digestOf(value: unknown): string | undefined {
  if (value instanceof Sensitive) return value.digest;
  if (isSensitiveDigest(value)) return value.$sensitive;
  return undefined;
}

/**
 * A secret that was not decrypted (`plan --offline` without an age identity):
 * its digest is `unread:` + a hash of its path and its encrypted file, so it
 * tells only whether the reference or the file changed, never the value.
 */
export class UnreadSecret extends Sensitive<string> {
  constructor(digest: string) {
    super('', digest);
  }

  override reveal(): string {
    throw new SecretUnavailableError('the secret was not decrypted (offline plan without an age identity)');
  }
}

export const UNREAD_DIGEST_PREFIX = 'unread:';

/** A secret whose value is not here: only its digest was stored (a saved plan, the state store). */
export class SecretUnavailableError extends Error {
  constructor(message = 'the secret value is not available here: only its digest was stored; load the spec again (with the age identity)') {
    super(message);
    this.name = 'SecretUnavailableError';
  }
}

/** The plain value of a field that takes either a literal or a secret. */
export function revealString(value: string | Sensitive<string>): string {
  if (typeof value === 'string') return value;
  if (value instanceof Sensitive) return value.reveal();
  throw new SecretUnavailableError();
}

/**
 * Schema of a field that takes a secret: a literal string, or (after the loader
 * resolved `{ secret: PATH }`) a `Sensitive` string.
 */
export function secretString(message = 'expected a string or { secret: PATH }') {
  const resolved = z.instanceof(Sensitive<string>, { error: message });
  secretBranches.add(resolved._zod.def);
  return z.union([z.string({ error: message }), resolved], { error: message });
}

/**
 * Schema of a field that takes only a secret (a credential never written in clear):
 * after the loader resolved `{ secret: PATH }`, a `Sensitive` string.
 */
export function secretOnly(message = 'takes only { secret: PATH }: a credential is never written in the repository in clear') {
  // A custom check, not `instanceof`: its issue keeps `message` whatever the value (a plain string, nothing).
  const resolved = z.custom<Sensitive<string>>((v) => v instanceof Sensitive, { error: message });
  secretBranches.add(resolved._zod.def);
  return resolved;
}

/**
 * The branches of `secretString` and `secretOnly` schemas that hold a resolved secret (a class JSON Schema
 * cannot describe), by definition: `.meta()` clones a schema with the same definition, and the clone is one too.
 */
const secretBranches = new WeakSet<object>();

/** What a user writes where a resolved secret goes, as JSON Schema. */
export const SECRET_REFERENCE_JSON_SCHEMA = {
  type: 'object',
  properties: { secret: { type: 'string', description: 'path of an age-encrypted file, relative to this document' } },
  required: ['secret'],
  additionalProperties: false,
} as const;

/**
 * For `z.toJSONSchema`'s `override`: describes a resolved-secret branch as the
 * `{ secret: PATH }` reference users write, so editors offer it.
 */
export function describeSecretBranch(ctx: { zodSchema: unknown; jsonSchema: Record<string, unknown> }): void {
  if (secretBranches.has((ctx.zodSchema as z.ZodType)._zod.def)) Object.assign(ctx.jsonSchema, structuredClone(SECRET_REFERENCE_JSON_SCHEMA));
}
