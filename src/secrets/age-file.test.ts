import { execa } from 'execa';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decryptAge, encryptAge, isArmored, recipientOf, SecretFileError } from './age-file.js';
import { parseIdentities } from './identity.js';

// Debian's age (installed by .ci/run): the interop partner, both ways.
let dir: string;
let identity: string;
let recipient: string;
let other: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-age-'));
  await execa('age-keygen', ['-o', path.join(dir, 'id.txt')]);
  await execa('age-keygen', ['-o', path.join(dir, 'other.txt')]);
  identity = parseIdentities(await readFile(path.join(dir, 'id.txt'), 'utf8'), 'id').keys[0]!;
  other = parseIdentities(await readFile(path.join(dir, 'other.txt'), 'utf8'), 'other').keys[0]!;
  recipient = (await execa('age-keygen', ['-y', path.join(dir, 'id.txt')])).stdout.trim();
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const secret = 'pa$$word "quoted" \\ back\nline two\n';

describe('age files', () => {
  it('decrypts what Debian age encrypted, armored and binary', async () => {
    for (const armor of [true, false]) {
      const r = await execa('age', ['-r', recipient, ...(armor ? ['-a'] : [])], { input: secret, encoding: 'buffer' });
      const data = new Uint8Array(r.stdout);
      expect(isArmored(data)).toBe(armor);
      expect(Buffer.from(await decryptAge(data, [identity])).toString('utf8')).toBe(secret);
    }
  });

  it('writes files Debian age decrypts, armored and binary', async () => {
    for (const armor of [true, false]) {
      const file = path.join(dir, `out-${armor}.age`);
      await writeFile(file, await encryptAge(Buffer.from(secret), [recipient], { armor }));
      const text = await readFile(file);
      expect(text.toString('latin1').startsWith('-----BEGIN AGE ENCRYPTED FILE-----')).toBe(armor);
      const r = await execa('age', ['-d', '-i', path.join(dir, 'id.txt'), file]);
      expect(r.stdout + '\n').toBe(secret);
    }
  });

  it('derives the recipient of an identity as age-keygen -y does', async () => {
    expect(await recipientOf(identity)).toBe(recipient);
  });

  it('names each failure: no identity, wrong identity, truncated, damaged, not age', async () => {
    const binary = await encryptAge(Buffer.from(secret), [recipient], { armor: false });
    const armored = await encryptAge(Buffer.from(secret), [recipient]);
    const reason = async (data: Uint8Array, ids: string[]) => {
      try {
        await decryptAge(data, ids);
        return 'decrypted';
      } catch (err) {
        expect(err).toBeInstanceOf(SecretFileError);
        expect((err as Error).message).not.toContain('pa$$word');
        expect((err as Error).message).not.toContain(identity);
        return (err as SecretFileError).reason;
      }
    };
    expect(await reason(binary, [])).toBe('no-identity');
    expect(await reason(binary, [other])).toBe('wrong-identity');
    expect(await reason(binary.subarray(0, binary.length - 7), [identity])).toBe('corrupt');
    expect(await reason(armored.subarray(0, armored.length - 80), [identity])).toBe('corrupt');
    const flipped = Buffer.from(binary);
    flipped[flipped.length - 3]! ^= 1;
    expect(await reason(flipped, [identity])).toBe('corrupt');
    expect(await reason(Buffer.from('hello, not a secret'), [identity])).toBe('not-age');
  });
});
