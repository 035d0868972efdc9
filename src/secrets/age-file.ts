/**
 * age files as Capstan reads and writes them, through the `age-encryption`
 * package: interoperable with Debian's `age` CLI, armored
 * (`-----BEGIN AGE ENCRYPTED FILE-----`) or binary.
 *
 * Every failure is a `SecretFileError` whose `reason` says what the user must fix;
 * its message never holds a byte of the plaintext or of an identity.
 */

/** Loaded on first use: a run without secrets does not pay for the age library at start-up. */
let ageModule: Promise<typeof import('age-encryption')> | undefined;
const age = () => (ageModule ??= import('age-encryption'));

export type SecretFileProblem = 'no-identity' | 'wrong-identity' | 'corrupt' | 'not-age';

export class SecretFileError extends Error {
  constructor(
    message: string,
    readonly reason: SecretFileProblem,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'SecretFileError';
  }
}

const ARMOR_BEGIN = '-----BEGIN AGE ENCRYPTED FILE-----';
const BINARY_MAGIC = 'age-encryption.org/v1\n';

export function isArmored(data: Uint8Array): boolean {
  return Buffer.from(data.subarray(0, 256)).toString('latin1').trimStart().startsWith(ARMOR_BEGIN);
}

async function binaryOf(data: Uint8Array): Promise<Uint8Array> {
  if (isArmored(data)) {
    const { armor } = await age();
    try {
      return armor.decode(Buffer.from(data).toString('latin1'));
    } catch (err) {
      throw new SecretFileError(`the armored age file is damaged or truncated (${(err as Error).message})`, 'corrupt', { cause: err });
    }
  }
  if (!Buffer.from(data.subarray(0, BINARY_MAGIC.length)).toString('latin1').startsWith(BINARY_MAGIC)) {
    throw new SecretFileError('not an age file (it starts neither with "age-encryption.org/v1" nor with an armor line)', 'not-age');
  }
  return data;
}

/** Decrypts an age file (armored or binary) with any of `identities`. */
export async function decryptAge(data: Uint8Array, identities: readonly string[]): Promise<Uint8Array> {
  const binary = await binaryOf(data);
  const { Decrypter } = await age();
  if (identities.length === 0) {
    throw new SecretFileError(
      'no age identity to decrypt it with: pass --identity FILE, or set CAPSTAN_AGE_IDENTITY_FILE or CAPSTAN_AGE_IDENTITY',
      'no-identity',
    );
  }
  const decrypter = new Decrypter();
  for (const key of identities) decrypter.addIdentity(key);
  try {
    return await decrypter.decrypt(binary);
  } catch (err) {
    const message = (err as Error).message;
    if (/no identity matched/.test(message)) {
      throw new SecretFileError("the identity given is not one of the file's recipients: it cannot decrypt it", 'wrong-identity', { cause: err });
    }
    throw new SecretFileError(`the age file is damaged or truncated (${message})`, 'corrupt', { cause: err });
  }
}

const RECIPIENT = /^age1[02-9ac-hj-np-z]+$/;

/** Throws a plain Error naming the bad recipient (recipients are public keys). */
export function checkRecipient(recipient: string): void {
  if (!RECIPIENT.test(recipient)) throw new Error(`not an age recipient: ${JSON.stringify(recipient)} (expected age1...)`);
}

/** Encrypts for every recipient; armored text by default, as Debian's `age -a` writes. */
export async function encryptAge(plaintext: Uint8Array, recipients: readonly string[], options: { armor?: boolean } = {}): Promise<Uint8Array> {
  if (recipients.length === 0) throw new Error('no recipient to encrypt for');
  const { armor, Encrypter } = await age();
  const encrypter = new Encrypter();
  for (const r of recipients) {
    checkRecipient(r);
    encrypter.addRecipient(r);
  }
  const binary = await encrypter.encrypt(plaintext);
  return options.armor === false ? binary : Buffer.from(armor.encode(binary), 'latin1');
}

/** The public key (`age1...`) of an identity. */
export async function recipientOf(identity: string): Promise<string> {
  return (await age()).identityToRecipient(identity);
}
