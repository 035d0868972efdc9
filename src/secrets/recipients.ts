/**
 * Who a secret is encrypted for: `age1...` public keys, given on the command line
 * or in a recipients file (age's `-R` format: one recipient a line, `#` comments).
 * A repository keeps its list in `.capstan-recipients`, found from the secret's
 * directory upwards, so `capstan secret edit` re-encrypts for the same people.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { checkRecipient } from './age-file.js';

export const RECIPIENTS_FILE = '.capstan-recipients';

export function parseRecipients(text: string, origin: string): string[] {
  const out: string[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    try {
      checkRecipient(line);
    } catch {
      throw new Error(`${origin}, line ${i + 1}: not an age recipient (expected age1...)`);
    }
    out.push(line);
  }
  if (out.length === 0) throw new Error(`${origin} lists no recipient`);
  return out;
}

export async function readRecipientsFile(file: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read the recipients file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  return parseRecipients(text, `recipients file ${file}`);
}

/** The nearest `.capstan-recipients` in `dir` or a parent; undefined when there is none. */
export async function findRecipientsFile(dir: string): Promise<string | undefined> {
  let current = path.resolve(dir);
  for (;;) {
    const candidate = path.join(current, RECIPIENTS_FILE);
    try {
      if ((await stat(candidate)).isFile()) return candidate;
    } catch {
      // not here: look in the parent
    }
    const parent = path.dirname(current);
    if (parent === current) return undefined;
    current = parent;
  }
}
