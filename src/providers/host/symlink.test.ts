import * as fs from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ProviderError } from '../provider.js';
import { diffSymlink, symlinkProvider, symlinkSchema, type SymlinkLive, type SymlinkSpec } from './symlink.js';
import { converge, openSandbox, remove, type Sandbox } from './testing/sandbox.js';

const spec = (input: Partial<SymlinkSpec> = {}): SymlinkSpec =>
  symlinkSchema.parse({ path: '/srv/current', target: 'releases/v1', ...input });
const live = (overrides: Partial<SymlinkLive> = {}): SymlinkLive => ({
  path: '/srv/current',
  type: 'symlink',
  target: 'releases/v1',
  uid: 0,
  gid: 0,
  owner: 'root',
  group: 'root',
  ...overrides,
});

describe('Symlink diff', () => {
  it('creates, retargets and no-ops', () => {
    expect(diffSymlink(spec(), null, null)).toEqual({ action: 'create', fields: [{ path: 'target', before: null, after: 'releases/v1' }] });
    expect(diffSymlink(spec(), live(), null)).toEqual({ action: 'noop', fields: [] });
    expect(diffSymlink(spec({ target: 'releases/v2' }), live(), null)).toEqual({
      action: 'update',
      fields: [{ path: 'target', before: 'releases/v1', after: 'releases/v2' }],
    });
    expect(diffSymlink(spec({ owner: 65534 }), live(), null).fields).toEqual([{ path: 'owner', before: 0, after: 65534 }]);
  });

  it('replaces another type at the path, and a moved link', () => {
    expect(diffSymlink(spec(), live({ type: 'directory', target: null }), null)).toMatchObject({
      action: 'replace',
      reason: '/srv/current is a directory, not a symbolic link (refused at apply unless the directory is empty)',
    });
    expect(diffSymlink(spec({ path: '/srv/live' }), null, spec()).action).toBe('replace');
  });

  it('refuses a spec without a target, or with a mode', () => {
    expect(symlinkSchema.safeParse({ path: '/x', target: 'y', mode: '0777' }).success).toBe(false);
  });
});

describe('Symlink apply on a local host', () => {
  let sandbox: Sandbox;
  beforeEach(async () => {
    sandbox = await openSandbox();
  });
  afterEach(async () => {
    await sandbox.cleanup();
  });

  it('creates a link with parents, keeping its text as written and never following it', async () => {
    const desired = spec({ target: '/etc/shadow', owner: 65534 });
    const { live: after } = await converge(symlinkProvider, sandbox.handle, desired);
    expect(after).toEqual({ path: '/srv/current', type: 'symlink', target: '/etc/shadow', uid: 65534, gid: 0, owner: 'nobody', group: 'root' });
    expect(await fs.readlink(sandbox.real('/srv/current'))).toBe('/etc/shadow');
    expect((await fs.lstat(sandbox.real('/srv/current'))).uid).toBe(65534);
    expect((await fs.stat('/etc/shadow')).uid).toBe(0);
  });

  it('retargets atomically and heals a retargeted link', async () => {
    await converge(symlinkProvider, sandbox.handle, spec());
    await converge(symlinkProvider, sandbox.handle, spec({ target: 'releases/v2' }), spec());
    expect(await fs.readlink(sandbox.real('/srv/current'))).toBe('releases/v2');
    expect(await fs.readdir(sandbox.real('/srv'))).toEqual(['current']);
  });

  it('with force: true, replaces a file or an empty directory, and refuses a directory that is not empty', async () => {
    await fs.mkdir(sandbox.real('/srv'), { recursive: true });
    await fs.writeFile(sandbox.real('/srv/current'), 'old');
    expect((await converge(symlinkProvider, sandbox.handle, spec({ force: true }))).diff.action).toBe('replace');
    expect((await fs.lstat(sandbox.real('/srv/current'))).isSymbolicLink()).toBe(true);

    await fs.rm(sandbox.real('/srv/current'));
    await fs.mkdir(sandbox.real('/srv/current'));
    expect((await converge(symlinkProvider, sandbox.handle, spec({ force: true }))).diff.action).toBe('replace');

    await fs.rm(sandbox.real('/srv/current'));
    await fs.mkdir(sandbox.real('/srv/current'));
    await fs.writeFile(sandbox.real('/srv/current/x'), 'keep');
    const attempt = converge(symlinkProvider, sandbox.handle, spec({ force: true }));
    await expect(attempt).rejects.toThrow(ProviderError);
    await expect(attempt).rejects.toThrow(/it is a directory that is not empty/);
    expect(await fs.readFile(sandbox.real('/srv/current/x'), 'utf8')).toBe('keep');
  });

  it('moves on a path change and deletes only a link', async () => {
    await converge(symlinkProvider, sandbox.handle, spec());
    await converge(symlinkProvider, sandbox.handle, spec({ path: '/srv/live' }), spec());
    expect(await fs.readdir(sandbox.real('/srv'))).toEqual(['live']);

    expect(await remove(symlinkProvider, sandbox.handle, spec({ path: '/srv/live' }))).toBeNull();
    expect(await fs.readdir(sandbox.real('/srv'))).toEqual([]);
    await fs.writeFile(sandbox.real('/srv/live'), 'a file now');
    expect(await remove(symlinkProvider, sandbox.handle, spec({ path: '/srv/live' }))).toBeNull();
    expect(await fs.readFile(sandbox.real('/srv/live'), 'utf8')).toBe('a file now');
  });
});

describe('Symlink state: absent and force', () => {
  let sandbox: Sandbox;
  beforeEach(async () => {
    sandbox = await openSandbox();
    await fs.mkdir(sandbox.real('/srv'), { recursive: true });
  });
  afterEach(async () => sandbox.cleanup());

  it('state: absent removes a link (never its target); a file only with force: true', async () => {
    await fs.writeFile(sandbox.real('/srv/target'), 'keep');
    await fs.symlink('target', sandbox.real('/srv/current'));
    const desired = symlinkSchema.parse({ path: '/srv/current', state: 'absent' });
    expect((await converge(symlinkProvider, sandbox.handle, desired)).diff.reason).toBe('removes the symbolic link /srv/current -> target');
    await expect(fs.lstat(sandbox.real('/srv/current'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await fs.readFile(sandbox.real('/srv/target'), 'utf8')).toBe('keep');

    const [file] = await symlinkProvider.read(sandbox.handle, [symlinkSchema.parse({ path: '/srv/target', state: 'absent' })], { signal: new AbortController().signal });
    expect(diffSymlink(symlinkSchema.parse({ path: '/srv/target', state: 'absent' }), file!, null).refusal?.message).toMatch(/regular file.*refusing to remove it/);
    expect(symlinkSchema.safeParse({ path: '/srv/x', state: 'absent', target: 'y' }).error?.issues[0]?.message).toMatch(/target is for state: present/);
    expect(symlinkSchema.safeParse({ path: '/srv/x' }).error?.issues[0]?.message).toMatch(/needs a target/);
  });

  it('refuses to replace a regular file without force: true, at plan and at apply', async () => {
    await fs.writeFile(sandbox.real('/srv/current'), 'data');
    const [found] = await symlinkProvider.read(sandbox.handle, [spec()], { signal: new AbortController().signal });
    expect(diffSymlink(spec(), found!, null).refusal?.field).toEqual(['path']);
    await expect(converge(symlinkProvider, sandbox.handle, spec())).rejects.toThrow(/refusing to replace it/);
    expect(await fs.readFile(sandbox.real('/srv/current'), 'utf8')).toBe('data');
  });
});
