/**
 * Keyed hashes of secret values: what plans, the state store and drift checks
 * compare instead of the value.
 *
 * A digest is `hmac-sha256:<hex>` of HMAC-SHA256(key, "sha256:" + sha256hex(value)):
 * hashing the value first lets a provider that only learns the sha256 of a live
 * object (a file on a host) compute the same keyed digest without its bytes.
 *
 * The key is derived with HKDF-SHA256 from the age identity, so the same identity
 * gives the same digests on every machine (CLI and controller agree), and nobody
 * without the identity can test a guess against a stored digest. Without any
 * identity (a stack whose only secrets are inline `sensitive: true` values) the
 * key is a fixed constant: the digest is then as strong as the value's entropy.
 */
import { createHash, createHmac, hkdfSync } from 'node:crypto';

const SALT = 'capstan/secret-digest/v1';
const INFO = 'hmac-sha256 key';
export const DIGEST_PREFIX = 'hmac-sha256:';

export class SecretDigester {
  readonly #key: Buffer;

  private constructor(
    key: Buffer,
    /** True when the key comes from an identity; false for the fixed key used without one. */
    readonly keyed: boolean,
  ) {
    this.#key = key;
  }

  /** The digester of an age identity (`AGE-SECRET-KEY-1...`); the fixed-key one when there is none. */
  static forIdentity(identity: string | undefined): SecretDigester {
    const ikm = Buffer.from(identity ?? '', 'utf8');
    return new SecretDigester(Buffer.from(hkdfSync('sha256', ikm, SALT, INFO, 32)), identity !== undefined);
  }

  digest(value: string | Uint8Array): string {
    return this.digestOfSha256(createHash('sha256').update(value).digest('hex'));
  }

  /** The digest of a value known only by its sha256 (lowercase hex). */
  digestOfSha256(sha256Hex: string): string {
    return DIGEST_PREFIX + createHmac('sha256', this.#key).update(`sha256:${sha256Hex.toLowerCase()}`).digest('hex');
  }

  toJSON(): string {
    return '(secret digester)';
  }
}
