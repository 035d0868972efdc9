/**
 * OpenSSH `known_hosts` files, for strict host-key checking.
 *
 * Supported, as `ssh` reads them: plain host patterns (comma lists, `*` and `?`
 * wildcards, `!` negation, case-insensitive), `[host]:port` for a port other than
 * 22, hashed entries (`|1|salt|hmac`, as `ssh-keygen -H` writes them), comments
 * and blank lines, and the `@revoked` marker. `@cert-authority` lines are
 * skipped: host certificates are not supported, so such a host reads as unknown.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';

export interface KnownHostEntry {
  readonly marker: 'revoked' | 'cert-authority' | null;
  /** The host field as written (patterns, or one hashed name). */
  readonly hosts: string;
  readonly keyType: string;
  /** The public key blob (SSH wire format). */
  readonly key: Buffer;
  /** `FILE:LINE`, for messages. */
  readonly origin: string;
}

export type HostKeyVerdict =
  | { readonly status: 'trusted'; readonly entry: KnownHostEntry }
  | { readonly status: 'unknown' }
  /** The host is known with other keys: the server presented a key none of its entries hold. */
  | { readonly status: 'changed'; readonly known: readonly KnownHostEntry[] }
  | { readonly status: 'revoked'; readonly entry: KnownHostEntry };

/** Parses a known_hosts file's text; lines it cannot read are skipped, as `ssh` does. */
export function parseKnownHosts(text: string, file = 'known_hosts'): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const fields = line.split(/\s+/);
    let marker: KnownHostEntry['marker'] = null;
    if (fields[0]?.startsWith('@')) {
      const m = fields.shift();
      if (m === '@revoked') marker = 'revoked';
      else if (m === '@cert-authority') marker = 'cert-authority';
      else return;
    }
    const [hosts, keyType, keyText] = fields;
    if (hosts === undefined || keyType === undefined || keyText === undefined) return;
    const key = Buffer.from(keyText, 'base64');
    if (key.length === 0 || keyTypeOf(key) !== keyType) return;
    entries.push({ marker, hosts, keyType, key, origin: `${file}:${i + 1}` });
  });
  return entries;
}

/** Reads known_hosts files; a missing one counts as empty when `optional`. */
export async function readKnownHosts(files: readonly { path: string; optional: boolean }[]): Promise<KnownHostEntry[]> {
  const all: KnownHostEntry[] = [];
  for (const { path, optional } of files) {
    let text: string;
    try {
      text = await fs.readFile(path, 'utf8');
    } catch (err) {
      if (optional && (err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new Error(`cannot read the known_hosts file ${path}: ${(err as Error).message}`, { cause: err });
    }
    all.push(...parseKnownHosts(text, path));
  }
  return all;
}

/** The name `ssh` looks a host up by: `host`, or `[host]:port` for a port other than 22. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** Whether an entry's host field names `name` (as built by `knownHostsName`). */
export function entryMatches(entry: KnownHostEntry, name: string): boolean {
  if (entry.hosts.startsWith('|1|')) return hashedMatches(entry.hosts, name);
  let matched = false;
  for (const pattern of entry.hosts.split(',')) {
    if (pattern.startsWith('!')) {
      if (wildcardMatch(pattern.slice(1), name)) return false;
    } else if (wildcardMatch(pattern, name)) {
      matched = true;
    }
  }
  return matched;
}

/** Checks the key a server presented against the entries for its name. */
export function verifyHostKey(entries: readonly KnownHostEntry[], name: string, presented: Buffer): HostKeyVerdict {
  const forHost = entries.filter((e) => e.marker !== 'cert-authority' && entryMatches(e, name));
  const revoked = forHost.find((e) => e.marker === 'revoked' && e.key.equals(presented));
  if (revoked) return { status: 'revoked', entry: revoked };
  const trusted = forHost.find((e) => e.marker === null && e.key.equals(presented));
  if (trusted) return { status: 'trusted', entry: trusted };
  const known = forHost.filter((e) => e.marker === null);
  return known.length > 0 ? { status: 'changed', known } : { status: 'unknown' };
}

/**
 * The host-key algorithms to offer for a host, most preferred first: those of its
 * known keys, as `ssh` does, so that a server with several host keys presents one
 * the file holds. Empty when none is known (then the client's defaults apply).
 */
export function hostKeyAlgorithmsFor(entries: readonly KnownHostEntry[], name: string): string[] {
  const out: string[] = [];
  for (const e of entries) {
    if (e.marker !== null || !entryMatches(e, name)) continue;
    for (const alg of algorithmsForKeyType(e.keyType)) if (!out.includes(alg)) out.push(alg);
  }
  return out;
}

function algorithmsForKeyType(keyType: string): string[] {
  switch (keyType) {
    case 'ssh-rsa':
      return ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'];
    case 'ssh-ed25519':
    case 'ecdsa-sha2-nistp256':
    case 'ecdsa-sha2-nistp384':
    case 'ecdsa-sha2-nistp521':
      return [keyType];
    default:
      return [];
  }
}

/** `SHA256:...` as `ssh-keygen -l` prints it. */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** The key type named inside a public key blob (`ssh-ed25519`...), or null when it is not one. */
export function keyTypeOf(key: Buffer): string | null {
  if (key.length < 4) return null;
  const len = key.readUInt32BE(0);
  if (len === 0 || len > 64 || key.length < 4 + len) return null;
  return key.subarray(4, 4 + len).toString('latin1');
}

/** One line of a known_hosts file for `name`, optionally hashed like `ssh-keygen -H`. */
export function formatKnownHostsLine(name: string, key: Buffer, options: { hashed?: boolean; salt?: Buffer } = {}): string {
  const type = keyTypeOf(key);
  if (type === null) throw new Error('not an SSH public key blob');
  let host = name;
  if (options.hashed) {
    const salt = options.salt ?? randomBytes(20);
    host = `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
  }
  return `${host} ${type} ${key.toString('base64')}`;
}

function hashedMatches(field: string, name: string): boolean {
  const [, , saltText, hashText] = field.split('|');
  if (saltText === undefined || hashText === undefined) return false;
  const salt = Buffer.from(saltText, 'base64');
  const want = Buffer.from(hashText, 'base64');
  if (salt.length !== 20 || want.length !== 20) return false;
  return createHmac('sha1', salt).update(name).digest().equals(want);
}

/** OpenSSH's `match_pattern`: `*` any run, `?` one character; case-insensitive for host names. */
function wildcardMatch(pattern: string, name: string): boolean {
  const p = pattern.toLowerCase();
  const s = name.toLowerCase();
  // Iterative glob with backtracking to the last `*`.
  let pi = 0;
  let si = 0;
  let star = -1;
  let mark = 0;
  while (si < s.length) {
    if (pi < p.length && (p[pi] === '?' || p[pi] === s[si])) {
      pi++;
      si++;
    } else if (pi < p.length && p[pi] === '*') {
      star = pi++;
      mark = si;
    } else if (star >= 0) {
      pi = star + 1;
      si = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.length && p[pi] === '*') pi++;
  return pi === p.length;
}
