/**
 * What a run needs to read secrets: the age identities (possibly none) and the
 * digester keyed from the first of them. One per process: the loader decrypts
 * with it, providers digest live values with it, so plan, apply and drift agree.
 */
import { decryptAge } from './age-file.js';
import { SecretDigester } from './digest.js';
import { loadIdentities, type AgeIdentities, type IdentityOptions } from './identity.js';
import { createHash } from 'node:crypto';
import { Sensitive, UNREAD_DIGEST_PREFIX, UnreadSecret } from './sensitive.js';

export class Keyring {
  readonly digester: SecretDigester;

  constructor(
    readonly identities: AgeIdentities | undefined,
    /** Secrets are left encrypted (an UnreadSecret each) instead of failing: for `plan --offline` without an identity. */
    readonly leavesSecretsUnread = false,
  ) {
    this.digester = SecretDigester.forIdentity(identities?.keys[0]);
  }

  static async load(options: IdentityOptions = {}): Promise<Keyring> {
    return new Keyring(await loadIdentities(options));
  }

  /** A keyring without identities: inline `sensitive: true` values only; decrypting fails. */
  static none(): Keyring {
    return new Keyring(undefined);
  }

  /** A keyring without identities that leaves every secret unread rather than failing (`plan --offline`). */
  static unread(): Keyring {
    return new Keyring(undefined, true);
  }

  /** The stand-in for a secret this keyring does not decrypt: it changes when its path or its file does. */
  unreadSecret(secretPath: string, data: Uint8Array): UnreadSecret {
    return new UnreadSecret(UNREAD_DIGEST_PREFIX + createHash('sha256').update(secretPath).update('\0').update(data).digest('hex'));
  }

  /** Decrypts an age file; throws SecretFileError. */
  decrypt(data: Uint8Array): Promise<Uint8Array> {
    return decryptAge(data, this.identities?.keys ?? []);
  }

  /** Wraps a value as a Sensitive with its keyed digest. */
  seal(value: string): Sensitive<string> {
    return new Sensitive(value, this.digester.digest(value));
  }

  toJSON(): string {
    return `(keyring${this.identities ? ` from ${this.identities.origin}` : ''})`;
  }
}
