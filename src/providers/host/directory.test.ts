import * as fs from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { formatMode } from '../../transport/transport.js';
import { ProviderError } from '../provider.js';
import { diffDirectory, directoryProvider, directorySchema, type DirectoryLive, type DirectorySpec } from './directory.js';
import { converge, openSandbox, remove, type Sandbox } from './testing/sandbox.js';

const spec = (input: Partial<DirectorySpec> = {}): DirectorySpec => directorySchema.parse({ path: '/srv/app', ...input });
const live = (overrides: Partial<DirectoryLive> = {}): DirectoryLive => ({
  path: '/srv/app',
  type: 'directory',
  mode: '0755',
  uid: 0,
  gid: 0,
  owner: 'root',
  group: 'root',
  ...overrides,
});

describe('Directory diff', () => {
  it('creates, updates and no-ops on the managed attributes only', () => {
    expect(diffDirectory(spec({ mode: '0750' }), null, null)).toEqual({
      action: 'create',
      fields: [{ path: 'mode', before: null, after: '0750' }],
    });
    expect(diffDirectory(spec(), live({ mode: '0700', owner: 'nobody' }), null).action).toBe('noop');
    expect(diffDirectory(spec({ mode: '0750', group: 'www-data' }), live(), null)).toEqual({
      action: 'update',
      fields: [
        { path: 'mode', before: '0755', after: '0750' },
        { path: 'group', before: 'root', after: 'www-data' },
      ],
    });
  });

  it('replaces a file at the path, and a moved directory', () => {
    expect(diffDirectory(spec(), live({ type: 'file' }), null)).toMatchObject({
      action: 'replace',
      reason: '/srv/app is a regular file, not a directory',
    });
    expect(diffDirectory(spec({ path: '/srv/app2' }), null, spec())).toMatchObject({
      action: 'replace',
      fields: [{ path: 'path', before: '/srv/app', after: '/srv/app2' }],
      reason: 'path changed from /srv/app: the directory is moved with its contents',
    });
  });
});

describe('Directory apply on a local host', () => {
  let sandbox: Sandbox;
  beforeEach(async () => {
    sandbox = await openSandbox();
  });
  afterEach(async () => {
    await sandbox.cleanup();
  });

  it('creates with parents and an exact mode, whatever the umask', async () => {
    const desired = spec({ path: '/srv/app/data', mode: '2775', owner: 'nobody', group: 65534 });
    const { live: after } = await converge(directoryProvider, sandbox.handle, desired);
    expect(after).toEqual({ path: '/srv/app/data', type: 'directory', mode: '2775', uid: 65534, gid: 65534, owner: 'nobody', group: 'nogroup' });
    const st = await fs.stat(sandbox.real('/srv/app/data'));
    expect([formatMode(st.mode), st.uid, st.gid]).toEqual(['2775', 65534, 65534]);
    expect((await fs.stat(sandbox.real('/srv'))).uid).toBe(0);
  });

  it('defaults a new directory to 0755 and leaves an existing mode alone when unmanaged', async () => {
    await converge(directoryProvider, sandbox.handle, spec());
    expect(formatMode((await fs.stat(sandbox.real('/srv/app'))).mode)).toBe('0755');
    await fs.chmod(sandbox.real('/srv/app'), 0o700);
    expect((await converge(directoryProvider, sandbox.handle, spec(), spec())).diff.action).toBe('noop');
  });

  it('changes mode and ownership of an existing directory', async () => {
    await converge(directoryProvider, sandbox.handle, spec({ mode: '0755' }));
    const desired = spec({ mode: '0700', owner: 65534, group: 'nogroup' });
    const { diff } = await converge(directoryProvider, sandbox.handle, desired, spec({ mode: '0755' }));
    expect(diff.fields.map((f) => f.path)).toEqual(['mode', 'owner', 'group']);
    const st = await fs.stat(sandbox.real('/srv/app'));
    expect([formatMode(st.mode), st.uid, st.gid]).toEqual(['0700', 65534, 65534]);
  });

  it('refuses to delete a directory that holds unmanaged files, and deletes an empty one', async () => {
    const desired = spec();
    await converge(directoryProvider, sandbox.handle, desired);
    await fs.writeFile(sandbox.real('/srv/app/keep.txt'), 'not managed');
    const attempt = remove(directoryProvider, sandbox.handle, desired);
    await expect(attempt).rejects.toThrow(ProviderError);
    await expect(attempt).rejects.toThrow('directory /srv/app is not empty: it holds files Capstan does not manage');
    expect(await fs.readFile(sandbox.real('/srv/app/keep.txt'), 'utf8')).toBe('not managed');

    await fs.rm(sandbox.real('/srv/app/keep.txt'));
    expect(await remove(directoryProvider, sandbox.handle, desired)).toBeNull();
    await expect(fs.lstat(sandbox.real('/srv/app'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await remove(directoryProvider, sandbox.handle, desired)).toBeNull();
  });

  it('leaves a file that took the path since, on delete', async () => {
    await fs.mkdir(sandbox.real('/srv'), { recursive: true });
    await fs.writeFile(sandbox.real('/srv/app'), 'someone else');
    expect(await remove(directoryProvider, sandbox.handle, spec())).toBeNull();
    expect(await fs.readFile(sandbox.real('/srv/app'), 'utf8')).toBe('someone else');
  });

  it('with force: true, replaces a file or a symlink at the path', async () => {
    await fs.mkdir(sandbox.real('/srv'), { recursive: true });
    await fs.writeFile(sandbox.real('/srv/target'), 'keep');
    await fs.symlink('target', sandbox.real('/srv/app'));
    expect((await converge(directoryProvider, sandbox.handle, spec({ force: true }))).diff.action).toBe('replace');
    expect((await fs.lstat(sandbox.real('/srv/app'))).isDirectory()).toBe(true);
    expect(await fs.readFile(sandbox.real('/srv/target'), 'utf8')).toBe('keep');
  });

  it('moves a directory with its contents when its path changes', async () => {
    const before = spec({ mode: '0750' });
    await converge(directoryProvider, sandbox.handle, before);
    await fs.writeFile(sandbox.real('/srv/app/data.db'), 'rows');
    const after = spec({ path: '/opt/app', mode: '0750' });
    const { diff, live: result } = await converge(directoryProvider, sandbox.handle, after, before);
    expect(diff.action).toBe('replace');
    expect(result).toMatchObject({ path: '/opt/app', type: 'directory', mode: '0750' });
    expect(await fs.readFile(sandbox.real('/opt/app/data.db'), 'utf8')).toBe('rows');
    await expect(fs.lstat(sandbox.real('/srv/app'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('on a path change into its own subtree, creates the new one and keeps the old', async () => {
    const before = spec();
    await converge(directoryProvider, sandbox.handle, before);
    const after = spec({ path: '/srv/app/inner' });
    await converge(directoryProvider, sandbox.handle, after, before);
    expect((await fs.stat(sandbox.real('/srv/app/inner'))).isDirectory()).toBe(true);
  });

  it('on a path change onto an existing directory, removes the old one only when empty', async () => {
    await fs.mkdir(sandbox.real('/srv/old-empty'), { recursive: true });
    await fs.mkdir(sandbox.real('/srv/old-full'));
    await fs.writeFile(sandbox.real('/srv/old-full/x'), '');
    await fs.mkdir(sandbox.real('/srv/new'));
    await converge(directoryProvider, sandbox.handle, spec({ path: '/srv/new' }), spec({ path: '/srv/old-empty' }));
    await converge(directoryProvider, sandbox.handle, spec({ path: '/srv/new' }), spec({ path: '/srv/old-full' }));
    expect((await fs.readdir(sandbox.real('/srv'))).sort()).toEqual(['new', 'old-full']);
  });
});

describe('Directory state: absent and force', () => {
  let sandbox: Sandbox;
  beforeEach(async () => {
    sandbox = await openSandbox();
    await fs.mkdir(sandbox.real('/srv'), { recursive: true });
  });
  afterEach(async () => sandbox.cleanup());

  const readOne = async (desired: DirectorySpec) => (await directoryProvider.read(sandbox.handle, [desired], { signal: new AbortController().signal }))[0] ?? null;

  it('removes an empty directory it did not create; a non-empty one without recurse is a plan error listing what is there', async () => {
    await fs.mkdir(sandbox.real('/srv/app/sub'), { recursive: true });
    await fs.writeFile(sandbox.real('/srv/app/sub/data'), 'x');
    const desired = spec({ state: 'absent' });
    const diff = diffDirectory(desired, await readOne(desired), null);
    expect(diff.refusal).toEqual({
      message: '/srv/app is not empty (2 objects below /srv/app: /srv/app/sub, /srv/app/sub/data): set recurse: true to remove it with everything below it',
      field: ['state'],
    });
    await expect(converge(directoryProvider, sandbox.handle, desired)).rejects.toThrow(/is not empty/);
    expect(await fs.readFile(sandbox.real('/srv/app/sub/data'), 'utf8')).toBe('x');

    await fs.rm(sandbox.real('/srv/app/sub'), { recursive: true });
    expect((await converge(directoryProvider, sandbox.handle, desired)).diff.reason).toBe('removes the empty directory /srv/app');
    await expect(fs.lstat(sandbox.real('/srv/app'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await converge(directoryProvider, sandbox.handle, desired)).diff.action).toBe('noop');
  });

  it('recurse: true removes the tree, never following a link out of it; the plan lists at most 20 paths and the count', async () => {
    await fs.mkdir(sandbox.real('/srv/app'), { recursive: true });
    for (let i = 0; i < 25; i++) await fs.writeFile(sandbox.real(`/srv/app/f${String(i).padStart(2, '0')}`), 'x');
    await fs.writeFile(sandbox.real('/srv/keep'), 'outside');
    await fs.symlink('../keep', sandbox.real('/srv/app/link'));
    const desired = spec({ state: 'absent', recurse: true });
    const { diff } = await converge(directoryProvider, sandbox.handle, desired);
    expect(diff.refusal).toBeUndefined();
    expect(diff.reason).toBe('removes /srv/app and the 26 objects below it');
    const contents = diff.fields.find((f) => f.path === 'contents')!.before as string;
    expect(contents).toMatch(/^26 objects below \/srv\/app: \/srv\/app\/f00, .*\/srv\/app\/f19, \.\.\. \(and 6 more\)$/);
    await expect(fs.lstat(sandbox.real('/srv/app'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await fs.readdir(sandbox.real('/srv'))).toEqual(['keep']);
    expect(await fs.readFile(sandbox.real('/srv/keep'), 'utf8')).toBe('outside');
  });

  it('refuses to replace a regular file with data it did not create, without force: true; the file is kept', async () => {
    await fs.writeFile(sandbox.real('/srv/app'), 'precious');
    const desired = spec();
    expect(diffDirectory(desired, await readOne(desired), null).refusal?.message).toMatch(/^\/srv\/app is a regular file, not a directory, and Capstan did not create it: refusing to replace it/);
    await expect(converge(directoryProvider, sandbox.handle, desired)).rejects.toThrow(ProviderError);
    expect(await fs.readFile(sandbox.real('/srv/app'), 'utf8')).toBe('precious');
    expect(diffDirectory(spec({ state: 'absent' }), await readOne(desired), null).refusal?.message).toMatch(/refusing to remove it/);
    await converge(directoryProvider, sandbox.handle, spec({ state: 'absent', force: true }));
    await expect(fs.lstat(sandbox.real('/srv/app'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('takes symbolic modes, and refuses fileMode without recurse', async () => {
    expect(diffDirectory(spec({ mode: 'g+s' }), live({ mode: '0755' }), null).fields).toEqual([{ path: 'mode', before: '0755', after: '2755' }]);
    expect(directorySchema.safeParse({ path: '/srv/app', fileMode: '0644' }).error?.issues[0]?.message).toMatch(/fileMode .* needs recurse: true/);
    expect(directorySchema.safeParse({ path: '/srv/app', state: 'gone' }).error?.issues[0]?.message).toBe('state must be "present" or "absent"');
  });
});

describe('Directory recurse: true', () => {
  let sandbox: Sandbox;
  beforeEach(async () => {
    sandbox = await openSandbox();
    await fs.mkdir(sandbox.real('/srv/app/sub'), { recursive: true });
  });
  afterEach(async () => sandbox.cleanup());

  it('sets owner, group and mode below, fileMode on the files, links untouched but chowned; then plans nothing', async () => {
    await fs.writeFile(sandbox.real('/srv/app/sub/data'), 'x', { mode: 0o600 });
    await fs.chmod(sandbox.real('/srv/app/sub/data'), 0o600);
    await fs.writeFile(sandbox.real('/srv/outside'), 'keep');
    await fs.chmod(sandbox.real('/srv/outside'), 0o600);
    await fs.symlink('../../outside', sandbox.real('/srv/app/sub/link'));
    const desired = spec({ recurse: true, owner: 65534, group: 65534, mode: 'u=rwx,g=rx,o=', fileMode: 'u=rw,g=r,o=' });
    const { diff } = await converge(directoryProvider, sandbox.handle, desired);
    expect(diff.fields.find((f) => f.path === 'recurse')).toEqual({
      path: 'recurse',
      before: '3 of 3 below differ: /srv/app/sub, /srv/app/sub/data, /srv/app/sub/link',
      after: 'owner 65534, group 65534, mode 0750, files 0640',
    });
    const st = async (p: string) => {
      const s = await fs.lstat(sandbox.real(p));
      return [s.mode & 0o7777, s.uid, s.gid];
    };
    expect(await st('/srv/app')).toEqual([0o750, 65534, 65534]);
    expect(await st('/srv/app/sub')).toEqual([0o750, 65534, 65534]);
    expect(await st('/srv/app/sub/data')).toEqual([0o640, 65534, 65534]);
    expect((await st('/srv/app/sub/link')).slice(1)).toEqual([65534, 65534]);
    // The link's target outside the tree is not followed.
    expect(await st('/srv/outside')).toEqual([0o600, 0, 0]);
    expect((await converge(directoryProvider, sandbox.handle, desired)).diff.action).toBe('noop');

    // Drift below is seen and healed.
    await fs.chmod(sandbox.real('/srv/app/sub/data'), 0o666);
    const drift = await converge(directoryProvider, sandbox.handle, desired);
    expect(drift.diff.fields.map((f) => f.path)).toEqual(['recurse']);
    expect(await st('/srv/app/sub/data')).toEqual([0o640, 65534, 65534]);
  });

  it('with a relative mode (a+X), files keep their own bits and gain x only where some x is set', async () => {
    await fs.writeFile(sandbox.real('/srv/app/sub/script'), '#!/bin/sh\n');
    await fs.chmod(sandbox.real('/srv/app/sub/script'), 0o700);
    await fs.writeFile(sandbox.real('/srv/app/sub/text'), 'x');
    await fs.chmod(sandbox.real('/srv/app/sub/text'), 0o600);
    const desired = spec({ recurse: true, mode: 'a+rX' });
    await converge(directoryProvider, sandbox.handle, desired);
    expect((await fs.stat(sandbox.real('/srv/app/sub/script'))).mode & 0o7777).toBe(0o755);
    expect((await fs.stat(sandbox.real('/srv/app/sub/text'))).mode & 0o7777).toBe(0o644);
    expect((await converge(directoryProvider, sandbox.handle, desired)).diff.action).toBe('noop');
  });
});
