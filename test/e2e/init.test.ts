/** `capstan init`: a first stack that validates and applies as it is, into a sandbox inside it. */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, capstan, git } from './harness.js';

let base: string;
beforeAll(assertBuilt);
afterEach(async () => rm(base, { recursive: true, force: true }));

const STACK_FILES = ['.gitignore', 'README.md', 'hosts.yaml', 'site.yaml', 'templates/index.html.liquid'];

describe('capstan init', () => {
  it('writes a stack that validates, plans and applies as it is, into DIR/.sandbox, in a new git repository', async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'capstan-init-'));
    const init = await capstan(['init', 'hello'], { cwd: base });
    expect(init.stderr).toBe('');
    expect(init.exitCode).toBe(0);
    expect(init.stdout).toContain('Next: cd hello && capstan validate');
    const dir = path.join(base, 'hello');
    for (const f of STACK_FILES) expect(existsSync(path.join(dir, f)), f).toBe(true);
    expect(await git(dir, 'rev-parse', '--show-toplevel')).toBe(dir);

    expect(await capstan(['validate'], { cwd: dir })).toMatchObject({ exitCode: 0, stdout: expect.stringContaining('Valid: 2 resource(s) on 1 target(s)') });
    expect((await capstan(['plan'], { cwd: dir })).stdout).toContain('Plan: 2 to create, 0 to update');
    expect((await capstan(['apply', '--yes'], { cwd: dir })).exitCode).toBe(0);
    // The template's variable, rendered for the host.
    expect(await readFile(path.join(dir, '.sandbox/srv/site/index.html'), 'utf8')).toContain('<h1>Hello from Capstan</h1>');
    expect((await capstan(['plan', '--detailed-exitcode'], { cwd: dir })).exitCode).toBe(0);
    // What apply made (state, sandbox) stays out of git; the stack itself is there to commit.
    const untracked = (await git(dir, 'status', '--porcelain', '--untracked-files=all')).split('\n').map((l) => l.slice(3)).sort();
    expect(untracked).toEqual(STACK_FILES);
  }, 60_000);

  it('refuses to overwrite, in one line naming the files, unless --force', async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'capstan-init-'));
    await writeFile(path.join(base, 'hosts.yaml'), 'mine\n');
    await writeFile(path.join(base, 'README.md'), 'mine too\n');
    const refused = await capstan(['init'], { cwd: base });
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toBe('Error: . already has hosts.yaml, README.md: not overwriting (--force does)');
    expect(await readFile(path.join(base, 'hosts.yaml'), 'utf8')).toBe('mine\n');
    expect(existsSync(path.join(base, 'site.yaml'))).toBe(false);
    expect(existsSync(path.join(base, '.git'))).toBe(false);

    const forced = await capstan(['init', '--force', '--no-git'], { cwd: base });
    expect(forced.exitCode).toBe(0);
    expect(await readFile(path.join(base, 'hosts.yaml'), 'utf8')).toContain('kind: Host');
    expect(existsSync(path.join(base, '.git')), '--no-git').toBe(false);
    expect((await capstan(['validate'], { cwd: base })).exitCode).toBe(0);
  }, 60_000);

  it('leaves a stack inside an existing repository in it, and takes --root', async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'capstan-init-'));
    await git(base, 'init', '-q');
    const root = path.join(base, 'elsewhere');
    const r = await capstan(['init', 'stacks/first', '--root', root], { cwd: base });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).not.toContain('Initialised a git repository');
    expect(existsSync(path.join(base, 'stacks/first/.git'))).toBe(false);
    expect((await capstan(['apply', 'stacks/first', '--yes'], { cwd: base })).exitCode).toBe(0);
    expect(existsSync(path.join(root, 'srv/site/index.html'))).toBe(true);
    expect(existsSync(path.join(base, 'stacks/first/.sandbox'))).toBe(false);
  }, 60_000);
});
