/**
 * Where the age identities that decrypt a stack's secrets come from, in this order:
 * `--identity FILE`, `CAPSTAN_AGE_IDENTITY_FILE` (a file), `CAPSTAN_AGE_IDENTITY`
 * (the key itself). The first one given is used, alone.
 *
 * An identity file is what `age-keygen` writes: `AGE-SECRET-KEY-1...` lines, with
 * `#` comments and blank lines. Error messages name the file or the variable and
 * never repeat a line of it.
 */
import { readFile } from 'node:fs/promises';

export class IdentityError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'IdentityError';
  }
}

export interface AgeIdentities {
  /** `AGE-SECRET-KEY-1...` strings, in the order written. Never print them. */
  readonly keys: readonly string[];
  /** Where they came from, for messages: `identity file keys/ci.txt`, `$CAPSTAN_AGE_IDENTITY`. */
  readonly origin: string;
}

export interface IdentityOptions {
  /** `--identity FILE` (or the controller config's `identity: { file }`). */
  readonly file?: string | undefined;
  /** The name of an environment variable holding the key (the controller config's `identity: { env }`). */
  readonly envVariable?: string | undefined;
  readonly env?: Readonly<Record<string, string | undefined>>;
}

const SECRET_KEY = /^AGE-SECRET-KEY-1[0-9A-Z]+$/;

/** Parses identity text; throws IdentityError naming `origin` (never the text). */
export function parseIdentities(text: string, origin: string): AgeIdentities {
  const keys: string[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('AGE-PLUGIN-')) throw new IdentityError(`${origin}, line ${i + 1}: age plugin identities are not supported`);
    if (!SECRET_KEY.test(line)) {
      throw new IdentityError(`${origin}, line ${i + 1}: not an age identity (expected a line AGE-SECRET-KEY-1..., as age-keygen writes)`);
    }
    keys.push(line);
  }
  if (keys.length === 0) throw new IdentityError(`${origin} holds no age identity (AGE-SECRET-KEY-1... line)`);
  return { keys, origin };
}

/** The identities the options or the environment give; undefined when none is given. */
export async function loadIdentities(options: IdentityOptions = {}): Promise<AgeIdentities | undefined> {
  const env = options.env ?? process.env;
  const file = options.file ?? (options.envVariable === undefined ? env['CAPSTAN_AGE_IDENTITY_FILE'] || undefined : undefined);
  if (file !== undefined) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new IdentityError(`cannot read the age identity file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
    return parseIdentities(text, `identity file ${file}`);
  }
  const variable = options.envVariable ?? 'CAPSTAN_AGE_IDENTITY';
  const value = env[variable];
  if (value === undefined || value === '') {
    if (options.envVariable !== undefined) throw new IdentityError(`the environment variable ${variable} (the age identity) is not set`);
    return undefined;
  }
  return parseIdentities(value, `$${variable}`);
}
