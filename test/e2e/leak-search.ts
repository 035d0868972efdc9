/** Searching bytes for secret values: the value itself, its hex, and its base64 at each alignment. */
import { readdir } from 'node:fs/promises';
import path from 'node:path';

/** The forms a value could leak in: itself, hex, base64 at each of the three alignments inside a longer base64 text. */
export function forms(value: string): string[] {
  const bytes = Buffer.from(value, 'utf8');
  const out = [value, bytes.toString('hex'), bytes.toString('hex').toUpperCase()];
  for (let pad = 0; pad < 3; pad++) {
    const b64 = Buffer.concat([Buffer.alloc(pad), bytes]).toString('base64');
    // Drop the characters that depend on the padding bytes or on what follows.
    const start = pad === 0 ? 0 : Math.ceil((pad * 8) / 6) + 1;
    out.push(b64.slice(start, b64.length - 4));
  }
  return out;
}

/** A search for any form of any of `canaries`. */
export function leakSearch(canaries: readonly string[]): (where: string, data: Buffer | string) => string[] {
  const all = canaries.flatMap((v) => forms(v).map((f) => ({ value: v, form: f })));
  return (where, data) => {
    const buffer = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    const latin = buffer.toString('latin1');
    return all.filter((f) => latin.includes(f.form)).map((f) => `${where}: ${f.form === f.value ? 'plaintext' : `encoded as ${f.form}`} of ${f.value}`);
  };
}

/** Every regular file under `dir`, except what `skip` leaves out. */
export async function filesUnder(dir: string, skip: (p: string) => boolean): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const p = path.join(d, entry.name);
      if (skip(p)) continue;
      if (entry.isDirectory()) await walk(p);
      else if (entry.isFile()) out.push(p);
    }
  };
  await walk(dir);
  return out;
}
