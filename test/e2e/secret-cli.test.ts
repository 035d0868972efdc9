/** `capstan secret encrypt | edit | rotate` through the built CLI, checked with Debian's age. */
import { execa } from 'execa';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, CAPSTAN } from './harness.js';

let dir: string;
const key = async (name: string) => {
  const file = path.join(dir, `${name}.txt`);
  await execa('age-keygen', ['-o', file]);
  return { file, recipient: (await execa('age-keygen', ['-y', file])).stdout.trim() };
};
const cli = (args: string[], options: { input?: string; env?: Record<string, string> } = {}) =>
  execa('node', [CAPSTAN, 'secret', ...args], { cwd: dir, reject: false, input: options.input ?? '', env: { NO_COLOR: '1', ...options.env } });
const ageDecrypt = (identity: string, file: string) => execa('age', ['-d', '-i', identity, file], { reject: false });

beforeAll(async () => {
  assertBuilt();
  dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-secret-cli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('capstan secret', () => {
  it('encrypts, edits in a private temporary file, and rotates to new recipients', async () => {
    const alice = await key('alice');
    const bob = await key('bob');
    const enc = await cli(['encrypt', '--recipient', alice.recipient, '--out', 'db.age'], { input: 'first' });
    expect(enc.exitCode, enc.stderr).toBe(0);
    expect(await readFile(path.join(dir, 'db.age'), 'utf8')).toMatch(/^-----BEGIN AGE ENCRYPTED FILE-----/);
    expect((await ageDecrypt(alice.file, path.join(dir, 'db.age'))).stdout).toBe('first');
    expect((await cli(['encrypt'], { input: 'x' })).stderr).toMatch(/no recipient/);

    // The editor records where it was given the plaintext and how that was protected, then changes it.
    const editor = path.join(dir, 'editor.sh');
    await writeFile(editor, `#!/bin/sh\nstat -c '%a' "$1" > "${dir}/mode"; stat -c '%a' "$(dirname "$1")" > "${dir}/dirmode"; echo "$1" > "${dir}/where"\nprintf second > "$1"\n`);
    await chmod(editor, 0o755);
    await writeFile(path.join(dir, '.capstan-recipients'), `${alice.recipient}\n`);
    const edit = await cli(['edit', 'db.age', '--identity', alice.file], { env: { EDITOR: editor } });
    expect(edit.exitCode, edit.stderr).toBe(0);
    expect((await readFile(path.join(dir, 'mode'), 'utf8')).trim()).toBe('600');
    expect((await readFile(path.join(dir, 'dirmode'), 'utf8')).trim()).toBe('700');
    const where = (await readFile(path.join(dir, 'where'), 'utf8')).trim();
    await expect(readFile(where)).rejects.toThrow(/ENOENT/);
    expect((await ageDecrypt(alice.file, path.join(dir, 'db.age'))).stdout).toBe('second');

    // Rotate: bob only. Alice's identity no longer opens it; a wrong identity refuses before writing anything.
    await writeFile(path.join(dir, 'new-recipients'), `# bob\n${bob.recipient}\n`);
    const wrong = await cli(['rotate', 'db.age', '--identity', bob.file, '--recipients-file', 'new-recipients']);
    expect(wrong.exitCode).toBe(1);
    expect(wrong.stderr).toMatch(/db\.age: the identity given is not one of the file's recipients/);
    const rotate = await cli(['rotate', 'db.age', '--identity', alice.file, '--recipients-file', 'new-recipients']);
    expect(rotate.exitCode, rotate.stderr).toBe(0);
    expect((await ageDecrypt(bob.file, path.join(dir, 'db.age'))).stdout).toBe('second');
    expect((await ageDecrypt(alice.file, path.join(dir, 'db.age'))).exitCode).not.toBe(0);
  }, 60_000);
});
