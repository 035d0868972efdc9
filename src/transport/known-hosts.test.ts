import { execa } from 'execa';
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  entryMatches,
  fingerprint,
  formatKnownHostsLine,
  hostKeyAlgorithmsFor,
  knownHostsName,
  parseKnownHosts,
  readKnownHosts,
  verifyHostKey,
} from './known-hosts.js';

let dir: string;
/** Two real public key blobs, from ssh-keygen. */
const keys: { ed: Buffer; rsa: Buffer; edFingerprint: string } = { ed: Buffer.alloc(0), rsa: Buffer.alloc(0), edFingerprint: '' };

async function publicBlob(type: string): Promise<{ blob: Buffer; fingerprint: string }> {
  const file = join(dir, `key-${type}`);
  await execa('ssh-keygen', ['-q', '-t', type, ...(type === 'rsa' ? ['-b', '2048'] : []), '-N', '', '-f', file]);
  const text = await fs.readFile(`${file}.pub`, 'utf8');
  const printed = (await execa('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${file}.pub`])).stdout.split(' ')[1]!;
  return { blob: Buffer.from(text.split(' ')[1]!, 'base64'), fingerprint: printed };
}

beforeAll(async () => {
  dir = await fs.mkdtemp(join(tmpdir(), 'capstan-known-hosts-'));
  const ed = await publicBlob('ed25519');
  const rsa = await publicBlob('rsa');
  Object.assign(keys, { ed: ed.blob, rsa: rsa.blob, edFingerprint: ed.fingerprint });
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe('known_hosts', () => {
  it('prints fingerprints as ssh-keygen does', () => {
    expect(fingerprint(keys.ed)).toBe(keys.edFingerprint);
  });

  it('names a host with its port only when the port is not 22', () => {
    expect(knownHostsName('198.18.0.2', 22)).toBe('198.18.0.2');
    expect(knownHostsName('198.18.0.2', 2222)).toBe('[198.18.0.2]:2222');
  });

  it('matches plain patterns: lists, wildcards, negation, case, [host]:port', () => {
    const line = (hosts: string) => parseKnownHosts(`${hosts} ssh-ed25519 ${keys.ed.toString('base64')}`)[0]!;
    expect(entryMatches(line('web-1,web-2'), 'web-2')).toBe(true);
    expect(entryMatches(line('WEB-1'), 'web-1')).toBe(true);
    expect(entryMatches(line('web-*'), 'web-10')).toBe(true);
    expect(entryMatches(line('web-?'), 'web-10')).toBe(false);
    expect(entryMatches(line('web-*,!web-3'), 'web-3')).toBe(false);
    expect(entryMatches(line('[web-1]:2222'), '[web-1]:2222')).toBe(true);
    expect(entryMatches(line('web-1'), '[web-1]:2222')).toBe(false);
    expect(entryMatches(line('[web-1]:2222'), 'web-1')).toBe(false);
  });

  it('reads entries hashed by ssh-keygen -H, and its own hashed lines', async () => {
    const file = join(dir, 'hashed');
    await fs.writeFile(
      file,
      [
        '# a comment',
        '',
        formatKnownHostsLine('198.18.0.2', keys.ed),
        formatKnownHostsLine('[198.18.0.3]:2222', keys.rsa),
      ].join('\n') + '\n',
    );
    await execa('ssh-keygen', ['-H', '-f', file]);
    const text = await fs.readFile(file, 'utf8');
    expect(text).not.toContain('198.18.0.2');
    await fs.appendFile(file, 'garbage line\nweb-1 ssh-ed25519 not-base64\n');
    const entries = await readKnownHosts([{ path: file, optional: false }]);
    expect(entries).toHaveLength(2);
    expect(verifyHostKey(entries, '198.18.0.2', keys.ed).status).toBe('trusted');
    expect(verifyHostKey(entries, '[198.18.0.3]:2222', keys.rsa).status).toBe('trusted');
    expect(verifyHostKey(entries, '198.18.0.3', keys.rsa).status).toBe('unknown');

    const ours = parseKnownHosts(formatKnownHostsLine('web-9', keys.ed, { hashed: true }));
    expect(ours[0]!.hosts).toMatch(/^\|1\|/);
    expect(verifyHostKey(ours, 'web-9', keys.ed).status).toBe('trusted');
    // ssh-keygen finds our hashed line too.
    await fs.writeFile(file, formatKnownHostsLine('web-9', keys.ed, { hashed: true }) + '\n');
    expect((await execa('ssh-keygen', ['-F', 'web-9', '-f', file], { reject: false })).exitCode).toBe(0);
  });

  it('tells a changed key from an unknown host, and honours @revoked', () => {
    const entries = parseKnownHosts(
      [
        `web-1 ssh-ed25519 ${keys.ed.toString('base64')}`,
        `@revoked web-2 ssh-rsa ${keys.rsa.toString('base64')}`,
        `web-2 ssh-rsa ${keys.rsa.toString('base64')}`,
        `@cert-authority *.example.com ssh-ed25519 ${keys.ed.toString('base64')}`,
      ].join('\n'),
      'kh',
    );
    const changed = verifyHostKey(entries, 'web-1', keys.rsa);
    expect(changed.status).toBe('changed');
    expect(changed.status === 'changed' && changed.known.map((e) => e.origin)).toEqual(['kh:1']);
    expect(verifyHostKey(entries, 'web-3', keys.ed).status).toBe('unknown');
    expect(verifyHostKey(entries, 'web-2', keys.rsa).status).toBe('revoked');
    expect(verifyHostKey(entries, 'a.example.com', keys.ed).status).toBe('unknown');
  });

  it('offers the algorithms of the keys known for the host', () => {
    const entries = parseKnownHosts(`web-1 ssh-rsa ${keys.rsa.toString('base64')}\nweb-1 ssh-ed25519 ${keys.ed.toString('base64')}`);
    expect(hostKeyAlgorithmsFor(entries, 'web-1')).toEqual(['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa', 'ssh-ed25519']);
    expect(hostKeyAlgorithmsFor(entries, 'web-2')).toEqual([]);
  });

  it('refuses a missing explicit file and skips a missing default one', async () => {
    await expect(readKnownHosts([{ path: join(dir, 'nope'), optional: false }])).rejects.toThrow(/cannot read the known_hosts file/);
    expect(await readKnownHosts([{ path: join(dir, 'nope'), optional: true }])).toEqual([]);
  });
});
