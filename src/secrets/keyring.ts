/**
 * What a run needs to read secrets: the age identities (possibly none) and the
 * digester keyed from the first of them. One per process: the loader decrypts
 * with it, providers digest live values with it, so plan, apply and drift agree.
 */
import { decryptAge } from './age-file.js';
import { SecretDigester } from './digest.js';
import { loadIdentities, type AgeIdentities, type IdentityOptions } from './identity.js';
import { Sensitive } from './sensitive.js';

export class Keyring {
  readonly digester: SecretDigester;

  constructor(readonly identities: AgeIdentities | undefined) {
    this.digester = SecretDigester.forIdentity(identities?.keys[0]);
  }

  static async load(options: IdentityOptions = {}): Promise<Keyring> {
    return new Keyring(await loadIdentities(options));
  }

  /** A keyring without identities: inline `sensitive: true` values only; decrypting fails. */
  static none(): Keyring {
    return new Keyring(undefined);
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
