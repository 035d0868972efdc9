/**
 * SCRAM-SHA-256 password verifiers as PostgreSQL stores them in
 * `pg_authid.rolpassword`:
 *
 *   SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>      (base64 parts)
 *
 * Capstan never reads a password back and never sends one in clear: it computes
 * a verifier for the desired password and sends that (`ALTER ROLE ... PASSWORD
 * 'SCRAM-SHA-256$...'`, which PostgreSQL stores as given), and it compares a
 * desired password with the live one by recomputing the keys with the live
 * verifier's salt and iteration count (RFC 5802, RFC 7677).
 */
import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

const pbkdf2Async = promisify(pbkdf2);

/** PostgreSQL's default `scram_iterations`. */
export const SCRAM_ITERATIONS = 4096;
const SALT_BYTES = 16;
const VERIFIER = /^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/;

interface ScramKeys {
  readonly storedKey: Buffer;
  readonly serverKey: Buffer;
}

async function keys(password: string, salt: Buffer, iterations: number): Promise<ScramKeys> {
  const salted = await pbkdf2Async(Buffer.from(saslPrep(password), 'utf8'), salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  return {
    storedKey: createHash('sha256').update(clientKey).digest(),
    serverKey: createHmac('sha256', salted).update('Server Key').digest(),
  };
}

/** A new verifier for `password`, with a random salt. */
export async function scramVerifier(password: string, iterations = SCRAM_ITERATIONS): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const k = await keys(password, salt, iterations);
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${k.storedKey.toString('base64')}:${k.serverKey.toString('base64')}`;
}

/** True when `verifier` is a SCRAM-SHA-256 verifier of `password`; false for any other value (md5, none, malformed). */
export async function scramMatches(password: string, verifier: string | null): Promise<boolean> {
  const m = verifier === null ? null : VERIFIER.exec(verifier);
  if (!m) return false;
  const iterations = Number(m[1]);
  if (!Number.isSafeInteger(iterations) || iterations < 1) return false;
  const k = await keys(password, Buffer.from(m[2]!, 'base64'), iterations);
  const stored = Buffer.from(m[3]!, 'base64');
  const server = Buffer.from(m[4]!, 'base64');
  return (
    stored.length === k.storedKey.length &&
    server.length === k.serverKey.length &&
    timingSafeEqual(stored, k.storedKey) &&
    timingSafeEqual(server, k.serverKey)
  );
}

/** How `rolpassword` holds a password, without saying anything about the password. */
export function passwordMethod(rolpassword: string | null): 'none' | 'scram-sha-256' | 'md5' | 'other' {
  if (rolpassword === null) return 'none';
  if (VERIFIER.test(rolpassword)) return 'scram-sha-256';
  if (/^md5[0-9a-f]{32}$/.test(rolpassword)) return 'md5';
  return 'other';
}

// Characters SASLprep (RFC 4013) maps to nothing, and non-ASCII spaces it maps to U+0020.
const MAPPED_TO_NOTHING = /[\u00AD\u034F\u1806\u180B-\u180D\u200B-\u200D\u2060\uFE00-\uFE0F\uFEFF]/g;
const NON_ASCII_SPACE = /[\u00A0\u1680\u2000-\u200B\u202F\u205F\u3000]/g;
// Prohibited output: control characters, private use, non-characters, surrogates, tagging and bidi controls.
const PROHIBITED = /[\u0000-\u001F\u007F-\u009F\u06DD\u070F\u180E\u200E\u200F\u202A-\u202E\u206A-\u206F\uE000-\uF8FF\uFFF9-\uFFFF]/;

/**
 * PostgreSQL's `pg_saslprep`: an ASCII password is used as it is; any other is
 * mapped and NFKC-normalised, and used raw when the result holds a prohibited
 * character (PostgreSQL does the same rather than refusing the password).
 */
export function saslPrep(password: string): string {
  if (/^[\u0000-\u007F]*$/.test(password)) return password;
  const prepared = password.replace(NON_ASCII_SPACE, ' ').replace(MAPPED_TO_NOTHING, '').normalize('NFKC');
  return prepared === '' || PROHIBITED.test(prepared) ? password : prepared;
}
