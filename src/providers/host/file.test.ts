import { createHash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { formatMode } from '../../transport/transport.js';
import { ProviderError, type ResolveContext } from '../provider.js';
import { SecretDigester } from '../../secrets/digest.js';
import { Sensitive } from '../../secrets/sensitive.js';
import { diffFile, fileProvider, fileSchema, type FileLive, type FileSpec } from './file.js';
import { MAX_CONTENT_BYTES } from './paths.js';
import { converge, ctx, openSandbox, remove, type Sandbox } from './testing/sandbox.js';

const spec = (input: Partial<FileSpec> & { path?: string }): FileSpec => fileSchema.parse({ path: '/etc/motd', ...input });
const sha = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');

function live(overrides: Partial<FileLive> = {}): FileLive {
  return {
    path: '/etc/motd',
    type: 'file',
    size: 6,
    sha256: sha('hello\n'),
    content: 'hello\n',
    contentOmitted: null,
    mode: '0644',
    uid: 0,
    gid: 0,
    owner: 'root',
    group: 'root',
    ...overrides,
  };
}

describe('File schema', () => {
  it('normalises modes and owner ids', () => {
    expect(spec({ content: 'x', mode: '644', owner: '33', group: 'www-data' })).toEqual({
      path: '/etc/motd',
      state: 'present',
      backup: false,
      content: 'x',
      mode: '0644',
      owner: 33,
      group: 'www-data',
    });
    expect(spec({ content: 'x', mode: '04755' }).mode).toBe('4755');
  });

  it.each([
    [{ path: '/etc/motd', source: '/etc/passwd' }, /source must be a path relative to the YAML file/],
    [{ path: '/etc/motd', contentBase64: 'not base64!' }, /contentBase64 must be standard base64/],
    [{ path: '/etc/motd', content: 'x', contentBase64: 'eA==' }, /not content and contentBase64/],
    [{ path: '/etc/motd', content: 3 }, /content must be a string/],
    [{ path: '/etc/motd', content: 'x', owner: 1.5 }, /owner id must be a whole number/],
    [{ path: '/etc/motd', content: 'x', sensitive: 'yes' }, /sensitive must be true or false/],
    [{ content: 'x' }, /path must be a string/],
  ])('refuses %j', (input, message) => {
    expect(fileSchema.safeParse(input).error?.issues.map((i) => i.message).join('\n')).toMatch(message);
  });
});

describe('File diff', () => {
  it('creates when absent, listing content as text and the managed attributes', () => {
    expect(diffFile(spec({ content: 'hello\n', mode: '0600' }), null, null)).toEqual({
      action: 'create',
      fields: [
        { path: 'content', format: 'text', before: null, after: 'hello\n' },
        { path: 'mode', before: null, after: '0600' },
      ],
    });
  });

  it('is a no-op when equal, and never diffs attributes the spec leaves out', () => {
    const d = diffFile(spec({ content: 'hello\n' }), live({ mode: '0777', uid: 65534, owner: 'nobody' }), null);
    expect(d).toEqual({ action: 'noop', fields: [] });
  });

  it('updates content with before and after text for a line diff', () => {
    const d = diffFile(spec({ content: 'bye\n' }), live(), spec({ content: 'hello\n' }));
    expect(d).toEqual({ action: 'update', fields: [{ path: 'content', format: 'text', before: 'hello\n', after: 'bye\n' }] });
  });

  it('updates mode, owner and group by name or by id', () => {
    const d = diffFile(spec({ content: 'hello\n', mode: '0600', owner: 'nobody', group: 65534 }), live(), null);
    expect(d.action).toBe('update');
    expect(d.fields).toEqual([
      { path: 'mode', before: '0644', after: '0600' },
      { path: 'owner', before: 'root', after: 'nobody' },
      { path: 'group', before: 0, after: 65534 },
    ]);
    const sameById = diffFile(spec({ content: 'hello\n', owner: 0, group: 'root' }), live(), null);
    expect(sameById.action).toBe('noop');
    const unnamed = diffFile(spec({ content: 'hello\n', owner: 'app' }), live({ uid: 4242, owner: null }), null);
    expect(unnamed.fields).toEqual([{ path: 'owner', before: 4242, after: 'app' }]);
  });

  it('says why the live content is not shown when it is too large or binary', () => {
    const big = diffFile(spec({ content: 'x' }), live({ content: null, contentOmitted: 'too-large', size: 5_000_000, sha256: 'f'.repeat(64) }), null);
    expect(big).toEqual({
      action: 'update',
      fields: [{ path: 'content', format: 'text', before: null, after: 'x' }],
      reason: 'live content not shown: the file is larger than 1 MiB',
    });
    const binary = diffFile(spec({ content: 'x' }), live({ content: null, contentOmitted: 'binary', sha256: 'e'.repeat(64) }), null);
    expect(binary.reason).toBe('live content not shown: the file is not UTF-8 text');
  });

  it('compares binary content by hash and describes it without dumping bytes', () => {
    const bytes = Buffer.from([0, 1, 2, 255]);
    const desired = spec({ contentBase64: bytes.toString('base64') });
    expect(diffFile(desired, live({ content: null, contentOmitted: 'binary', sha256: sha(bytes), size: 4 }), null).action).toBe('noop');
    const d = diffFile(desired, live(), null);
    expect(d.fields).toEqual([{ path: 'content', before: 'hello\n', after: `(4 bytes, sha256 ${sha(bytes)})` }]);
  });

  it('never puts sensitive content in a diff', () => {
    const d = diffFile(spec({ content: 'secret', sensitive: true }), live({ content: null, contentOmitted: 'sensitive' }), null);
    expect(d.fields).toEqual([{ path: 'content', before: '(sensitive)', after: '(sensitive)', sensitive: true }]);
    expect(JSON.stringify(diffFile(spec({ content: 'secret', sensitive: true }), null, null))).not.toContain('secret');
  });

  it('compares a secret by keyed digest: live state holds neither the content nor its sha256', async () => {
    const digester = SecretDigester.forIdentity('AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ');
    const secret = new Sensitive('s3cr3t-file', digester.digest('s3cr3t-file'));
    const desired = spec({ content: secret });
    const inSync = live({ sha256: null, content: null, contentOmitted: 'sensitive', contentDigest: digester.digestOfSha256(sha('s3cr3t-file')) });
    expect(diffFile(desired, inSync, null).action).toBe('noop');
    // The spec stored in the state (JSON) compares the same way: drift checks use it.
    expect(diffFile(JSON.parse(JSON.stringify(desired)) as FileSpec, inSync, null).action).toBe('noop');
    const changed = diffFile(desired, { ...inSync, contentDigest: digester.digest('other') }, null);
    expect(changed.fields).toEqual([{ path: 'content', before: '(sensitive)', after: '(sensitive)', sensitive: true }]);
    expect(JSON.stringify(desired)).not.toContain('s3cr3t-file');
  });

  it('replaces when another type holds the path, or when the path changed', () => {
    const dir = diffFile(spec({ content: 'x' }), live({ type: 'directory', sha256: null, content: null }), null);
    expect(dir.action).toBe('replace');
    expect(dir.reason).toBe('/etc/motd is a directory, not a file (refused at apply unless the directory is empty)');
    expect(dir.fields[0]).toEqual({ path: 'type', before: 'directory', after: 'file' });

    const moved = diffFile(spec({ path: '/etc/motd2', content: 'hello\n' }), null, spec({ content: 'hello\n' }));
    expect(moved).toMatchObject({ action: 'replace', reason: 'path changed from /etc/motd' });
    expect(moved.fields[0]).toEqual({ path: 'path', before: '/etc/motd', after: '/etc/motd2' });
    const movedOntoEqual = diffFile(spec({ path: '/etc/motd', content: 'hello\n' }), live(), spec({ path: '/old', content: 'hello\n' }));
    expect(movedOntoEqual.action).toBe('replace');
  });

  it('refuses an unresolved source', () => {
    expect(() => diffFile(fileSchema.parse({ path: '/x', source: 'x.txt' }), null, null)).toThrow(/must be resolved/);
  });
});

describe('File source resolution', () => {
  let repo: string;
  let context: ResolveContext;
  let sandbox: Sandbox;

  beforeEach(async () => {
    sandbox = await openSandbox({ createRoot: true });
    repo = join(sandbox.dir, 'repo');
    await fs.mkdir(join(repo, 'hosts', 'files'), { recursive: true });
    await fs.writeFile(join(repo, 'hosts', 'files', 'motd.txt'), 'from the repo\n');
    await fs.writeFile(join(repo, 'hosts', 'files', 'logo.bin'), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0xff]));
    await fs.writeFile(join(sandbox.dir, 'outside.txt'), 'not yours\n');
    // A small ResolveContext: relative to the document, confined to the repository (the real one is the spec loader's).
    context = {
      repoDir: repo,
      async readFile(relativePath, fromFile) {
        const inside = async (p: string) => {
          const rel = relative(await fs.realpath(repo), p);
          return rel !== '' && !rel.startsWith('..');
        };
        const wanted = resolve(dirname(fromFile), relativePath);
        if (!(await inside(wanted))) throw new Error(`${relativePath} is outside the repository`);
        const real = await fs.realpath(wanted);
        if (!(await inside(real))) throw new Error(`${relativePath} is outside the repository`);
        return fs.readFile(real);
      },
    };
  });
  afterEach(async () => {
    await sandbox.cleanup();
  });

  const from = () => ({ file: join(repo, 'hosts', 'web.yaml') });

  it('reads a text source into content and drops source', async () => {
    const resolved = await fileProvider.resolve!(fileSchema.parse({ path: '/etc/motd', source: 'files/motd.txt', mode: '0644' }), from(), context);
    expect(resolved).toEqual({ path: '/etc/motd', state: 'present', backup: false, content: 'from the repo\n', mode: '0644' });
    expect(fileSchema.parse(resolved)).toEqual(resolved);
  });

  it('keeps a binary source as base64 and writes its exact bytes', async () => {
    const resolved = await fileProvider.resolve!(fileSchema.parse({ path: '/logo.png', source: 'files/logo.bin' }), from(), context);
    expect(resolved).toEqual({ path: '/logo.png', state: 'present', backup: false, contentBase64: Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0xff]).toString('base64') });
    const { live: after } = await converge(fileProvider, sandbox.handle, resolved);
    expect(after).toMatchObject({ type: 'file', content: null, contentOmitted: 'binary', size: 6 });
    expect(await fs.readFile(sandbox.real('/logo.png'))).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0xff]));
    expect((await converge(fileProvider, sandbox.handle, resolved)).diff.action).toBe('noop');
  });

  it('refuses a source outside the repository, with a message naming it', async () => {
    const escape = fileSchema.parse({ path: '/etc/motd', source: '../../etc/passwd' });
    await expect(fileProvider.resolve!(escape, from(), context)).rejects.toThrow(ProviderError);
    await expect(fileProvider.resolve!(escape, from(), context)).rejects.toThrow(
      /cannot read source \.\.\/\.\.\/etc\/passwd: .*outside the repository/,
    );
    const deep = fileSchema.parse({ path: '/etc/motd', source: `${'../'.repeat(20)}etc/passwd` });
    await expect(fileProvider.resolve!(deep, from(), context)).rejects.toThrow(/outside the repository/);
    const sibling = fileSchema.parse({ path: '/etc/motd', source: '../../outside.txt' });
    await expect(fileProvider.resolve!(sibling, from(), context)).rejects.toThrow(/outside the repository/);
    await fs.symlink(join(sandbox.dir, 'outside.txt'), join(repo, 'hosts', 'files', 'sneaky.txt'));
    const viaLink = fileSchema.parse({ path: '/etc/motd', source: 'files/sneaky.txt' });
    await expect(fileProvider.resolve!(viaLink, from(), context)).rejects.toThrow(/outside the repository/);
  });

  it('reports a missing source', async () => {
    const missing = fileSchema.parse({ path: '/etc/motd', source: 'files/nope.txt' });
    await expect(fileProvider.resolve!(missing, from(), context)).rejects.toThrow(/cannot read source files\/nope.txt: .*ENOENT/);
  });

  it('leaves a spec with inline content as it is', async () => {
    const inline = spec({ content: 'x' });
    expect(await fileProvider.resolve!(inline, from(), context)).toBe(inline);
  });
});

describe('File apply on a local host', () => {
  let sandbox: Sandbox;
  beforeEach(async () => {
    sandbox = await openSandbox();
  });
  afterEach(async () => {
    await sandbox.cleanup();
  });

  const stat = (path: string) => fs.stat(sandbox.real(path));

  it('creates the file with its parents, mode and owner, atomically', async () => {
    const desired = spec({ path: '/srv/app/conf/app.ini', content: 'a=1\n', mode: '0640', owner: 65534, group: 'nogroup' });
    const { diff, live: after } = await converge(fileProvider, sandbox.handle, desired);
    expect(diff.action).toBe('create');
    expect(after).toEqual({
      path: '/srv/app/conf/app.ini',
      type: 'file',
      size: 4,
      sha256: sha('a=1\n'),
      content: 'a=1\n',
      contentOmitted: null,
      mode: '0640',
      uid: 65534,
      gid: 65534,
      owner: 'nobody',
      group: 'nogroup',
    });
    const st = await stat('/srv/app/conf/app.ini');
    expect([formatMode(st.mode), st.uid, st.gid]).toEqual(['0640', 65534, 65534]);
    expect(await fs.readdir(sandbox.real('/srv/app/conf'))).toEqual(['app.ini']);
  });

  it('changes only the mode when only the mode drifts, keeping the same inode', async () => {
    const desired = spec({ content: 'x\n', mode: '0600' });
    await converge(fileProvider, sandbox.handle, desired);
    const inode = (await stat('/etc/motd')).ino;
    await fs.chmod(sandbox.real('/etc/motd'), 0o666);
    const { diff } = await converge(fileProvider, sandbox.handle, desired, desired);
    expect(diff.fields).toEqual([{ path: 'mode', before: '0666', after: '0600' }]);
    const st = await stat('/etc/motd');
    expect([formatMode(st.mode), st.ino]).toEqual(['0600', inode]);
  });

  it('changes ownership, and keeps a managed setuid mode across the chown', async () => {
    const desired = spec({ content: '#!/bin/sh\n', mode: '4755' });
    await converge(fileProvider, sandbox.handle, desired);
    const owned = { ...desired, owner: 65534, group: 65534 };
    const { diff } = await converge(fileProvider, sandbox.handle, owned, desired);
    expect(diff.fields.map((f) => f.path)).toEqual(['owner', 'group']);
    const st = await stat('/etc/motd');
    expect([st.uid, st.gid, formatMode(st.mode)]).toEqual([65534, 65534, '4755']);
    expect((await converge(fileProvider, sandbox.handle, owned, owned)).diff.action).toBe('noop');
  });

  it('heals content drift and keeps attributes it does not manage', async () => {
    const desired = spec({ content: 'managed\n' });
    await converge(fileProvider, sandbox.handle, desired);
    await fs.writeFile(sandbox.real('/etc/motd'), 'tampered\n');
    await fs.chown(sandbox.real('/etc/motd'), 65534, 65534);
    await fs.chmod(sandbox.real('/etc/motd'), 0o604);
    const { diff } = await converge(fileProvider, sandbox.handle, desired, desired);
    expect(diff).toEqual({ action: 'update', fields: [{ path: 'content', format: 'text', before: 'tampered\n', after: 'managed\n' }] });
    expect(await fs.readFile(sandbox.real('/etc/motd'), 'utf8')).toBe('managed\n');
    const st = await stat('/etc/motd');
    expect([st.uid, st.gid, formatMode(st.mode)]).toEqual([65534, 65534, '0604']);
  });

  it('hashes a large live file without holding its content', async () => {
    const big = 'x'.repeat(MAX_CONTENT_BYTES + 1);
    const desired = spec({ content: big });
    const { live: after } = await converge(fileProvider, sandbox.handle, desired);
    expect(after).toMatchObject({ content: null, contentOmitted: 'too-large', sha256: sha(big), size: big.length });
    expect((await converge(fileProvider, sandbox.handle, desired, desired)).diff.action).toBe('noop');
  });

  it('never holds sensitive content in live state', async () => {
    const desired = spec({ content: 'hunter2\n', sensitive: true, mode: '0600' });
    const { live: after } = await converge(fileProvider, sandbox.handle, desired);
    expect(after).toMatchObject({ content: null, contentOmitted: 'sensitive' });
    expect(JSON.stringify(after)).not.toContain('hunter2');
  });

  it('replaces on a path change: writes the new path, then removes the old one', async () => {
    const before = spec({ path: '/etc/old.conf', content: 'c\n' });
    await converge(fileProvider, sandbox.handle, before);
    const after = spec({ path: '/etc/new.conf', content: 'c\n' });
    const { diff, live: result } = await converge(fileProvider, sandbox.handle, after, before);
    expect(diff).toMatchObject({ action: 'replace', reason: 'path changed from /etc/old.conf' });
    expect(result).toMatchObject({ path: '/etc/new.conf', content: 'c\n' });
    expect(await fs.readdir(sandbox.real('/etc'))).toEqual(['new.conf']);
  });

  it('with force: true, replaces an empty directory or a symlink, but refuses a directory that is not empty', async () => {
    const desired = spec({ content: 'x', force: true });
    await fs.mkdir(sandbox.real('/etc/motd'), { recursive: true });
    expect((await converge(fileProvider, sandbox.handle, desired)).diff.action).toBe('replace');
    expect((await fs.lstat(sandbox.real('/etc/motd'))).isFile()).toBe(true);

    await fs.rm(sandbox.real('/etc/motd'));
    await fs.writeFile(sandbox.real('/etc/target'), 'keep');
    await fs.symlink('target', sandbox.real('/etc/motd'));
    expect((await converge(fileProvider, sandbox.handle, desired)).diff.action).toBe('replace');
    expect(await fs.readFile(sandbox.real('/etc/target'), 'utf8')).toBe('keep');
    expect((await fs.lstat(sandbox.real('/etc/motd'))).isFile()).toBe(true);

    await fs.rm(sandbox.real('/etc/motd'));
    await fs.mkdir(sandbox.real('/etc/motd'));
    await fs.writeFile(sandbox.real('/etc/motd/data'), 'precious');
    await expect(converge(fileProvider, sandbox.handle, desired)).rejects.toThrow(
      new ProviderError('cannot replace /etc/motd on Host/sandbox with a file: it is a directory that is not empty'),
    );
    expect(await fs.readFile(sandbox.real('/etc/motd/data'), 'utf8')).toBe('precious');
  });

  it('fails with a clear message for an owner the host does not have', async () => {
    const desired = spec({ content: 'x', owner: 'no-such-user-capstan' });
    await expect(converge(fileProvider, sandbox.handle, desired)).rejects.toThrow(
      'user "no-such-user-capstan" does not exist on Host/sandbox',
    );
    await expect(fs.lstat(sandbox.real('/etc/motd'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('deletes a file or a link in its place, never a directory, and is idempotent', async () => {
    const desired = spec({ content: 'x' });
    await converge(fileProvider, sandbox.handle, desired);
    expect(await remove(fileProvider, sandbox.handle, desired)).toBeNull();
    await expect(fs.lstat(sandbox.real('/etc/motd'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await remove(fileProvider, sandbox.handle, desired)).toBeNull();

    await fs.mkdir(sandbox.real('/etc/motd'));
    expect(await remove(fileProvider, sandbox.handle, desired)).toBeNull();
    expect((await fs.lstat(sandbox.real('/etc/motd'))).isDirectory()).toBe(true);
  });

  it('reads a batch of many files in one transport call', async () => {
    const specs = Array.from({ length: 300 }, (_, i) => spec({ path: `/data/d${i % 7}/f${i}`, content: `${i}\n` }));
    await Promise.all(specs.slice(0, 150).map((s) => converge(fileProvider, sandbox.handle, s)));
    let calls = 0;
    const inspect = sandbox.handle.transport.inspect.bind(sandbox.handle.transport);
    sandbox.handle.transport.inspect = (paths, options) => {
      calls++;
      return inspect(paths, options);
    };
    const lives = await fileProvider.read(sandbox.handle, specs, ctx);
    expect(calls).toBe(1);
    expect(lives.map((l) => l?.content ?? null)).toEqual(specs.map((s, i) => (i < 150 ? s.content : null)));
  });
});

describe('File state: absent, force, backup and modes', () => {
  let sandbox: Sandbox;
  beforeEach(async () => {
    sandbox = await openSandbox();
    await fs.mkdir(sandbox.real('/etc'), { recursive: true });
  });
  afterEach(async () => sandbox.cleanup());

  it('state: absent removes a file Capstan did not create, and is a no-op once it is gone', async () => {
    await fs.writeFile(sandbox.real('/etc/motd'), 'distribution default\n');
    const desired = spec({ state: 'absent' });
    const { diff, live: after } = await converge(fileProvider, sandbox.handle, desired);
    expect(diff).toMatchObject({ action: 'update', fields: [{ path: 'state', before: 'present', after: 'absent' }] });
    expect(after).toBeNull();
    await expect(fs.lstat(sandbox.real('/etc/motd'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await converge(fileProvider, sandbox.handle, desired)).diff.action).toBe('noop');
    // Nothing may rely on a path that state: absent removes.
    expect(fileProvider.provides!(desired)).toEqual([]);
    expect(fileProvider.provides!(spec({ content: 'x' }))).toEqual(['path:/etc/motd']);
    // Dropping it from the spec later deletes nothing.
    await fs.writeFile(sandbox.real('/etc/motd'), 'back\n');
    expect(await remove(fileProvider, sandbox.handle, desired)).toBeNull();
    expect(await fs.readFile(sandbox.real('/etc/motd'), 'utf8')).toBe('back\n');
  });

  it('state: absent refuses a directory, and a symbolic link unless force: true', async () => {
    await fs.mkdir(sandbox.real('/etc/motd'));
    const [dir] = await fileProvider.read(sandbox.handle, [spec({ state: 'absent' })], ctx);
    expect(diffFile(spec({ state: 'absent' }), dir!, null).refusal?.message).toMatch(/is a directory, not a regular file.*use a Directory with state: absent/);
    await fs.rmdir(sandbox.real('/etc/motd'));
    await fs.writeFile(sandbox.real('/etc/target'), 'keep');
    await fs.symlink('target', sandbox.real('/etc/motd'));
    const [link] = await fileProvider.read(sandbox.handle, [spec({ state: 'absent' })], ctx);
    expect(diffFile(spec({ state: 'absent' }), link!, null).refusal?.message).toMatch(/symbolic link.*force: true/);
    await expect(converge(fileProvider, sandbox.handle, spec({ state: 'absent' }))).rejects.toThrow(ProviderError);
    await converge(fileProvider, sandbox.handle, spec({ state: 'absent', force: true }));
    await expect(fs.lstat(sandbox.real('/etc/motd'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await fs.readFile(sandbox.real('/etc/target'), 'utf8')).toBe('keep');
  });

  it('refuses (at plan and at apply) to replace a directory or a link it did not create, without force: true', async () => {
    await fs.mkdir(sandbox.real('/etc/motd'));
    const desired = spec({ content: 'x' });
    const [found] = await fileProvider.read(sandbox.handle, [desired], ctx);
    expect(diffFile(desired, found!, null).refusal).toEqual({
      message: expect.stringMatching(/^\/etc\/motd is a directory, not a regular file, and Capstan did not create it: refusing to replace it \(set force: true/),
      field: ['path'],
    });
    await expect(converge(fileProvider, sandbox.handle, desired)).rejects.toThrow(/refusing to replace it/);
    expect((await fs.lstat(sandbox.real('/etc/motd'))).isDirectory()).toBe(true);
    expect(diffFile(spec({ content: 'x', force: false }), found!, null).refusal).toBeDefined();
  });

  it('force: false writes the file once and never again; mode is still managed', async () => {
    const seed = spec({ content: 'seed\n', force: false, mode: '0640' });
    expect((await converge(fileProvider, sandbox.handle, seed)).diff.action).toBe('create');
    expect(await fs.readFile(sandbox.real('/etc/motd'), 'utf8')).toBe('seed\n');
    await fs.writeFile(sandbox.real('/etc/motd'), 'the service wrote this\n');
    expect((await converge(fileProvider, sandbox.handle, seed)).diff).toEqual({ action: 'noop', fields: [] });
    await fs.chmod(sandbox.real('/etc/motd'), 0o600);
    expect((await converge(fileProvider, sandbox.handle, seed)).diff.fields.map((f) => f.path)).toEqual(['mode']);
    expect(await fs.readFile(sandbox.real('/etc/motd'), 'utf8')).toBe('the service wrote this\n');
    // Without force: false the content is brought back.
    expect((await converge(fileProvider, sandbox.handle, spec({ content: 'seed\n' }))).diff.fields.map((f) => f.path)).toEqual(['content']);
  });

  it('backup: true keeps the replaced content beside it as PATH.<UTC timestamp>~, with its mode and owner', async () => {
    await fs.writeFile(sandbox.real('/etc/motd'), 'old\n', { mode: 0o640 });
    await fs.chmod(sandbox.real('/etc/motd'), 0o640);
    await fs.chown(sandbox.real('/etc/motd'), 65534, 65534);
    await converge(fileProvider, sandbox.handle, spec({ content: 'new\n', backup: true }));
    const names = await fs.readdir(sandbox.real('/etc'));
    const backups = names.filter((n) => n !== 'motd');
    expect(backups).toHaveLength(1);
    expect(backups[0]).toMatch(/^motd\.\d{8}T\d{6}\.\d{3}Z~$/);
    const backup = sandbox.real(`/etc/${backups[0]!}`);
    expect(await fs.readFile(backup, 'utf8')).toBe('old\n');
    const st = await fs.stat(backup);
    expect([st.mode & 0o7777, st.uid, st.gid]).toEqual([0o640, 65534, 65534]);
    expect(await fs.readFile(sandbox.real('/etc/motd'), 'utf8')).toBe('new\n');
    // Nothing to replace: no new backup.
    await converge(fileProvider, sandbox.handle, spec({ content: 'new\n', backup: true }));
    expect(await fs.readdir(sandbox.real('/etc'))).toHaveLength(2);
  });

  it('symbolic modes: absolute ones become octal in the schema, relative ones are resolved in the plan', async () => {
    expect(spec({ content: 'x', mode: 'u=rw,g=r,o=' }).mode).toBe('0640');
    expect(spec({ content: 'x', mode: 'a=rx' }).mode).toBe('0555');
    expect(spec({ content: 'x', mode: 'a+x' }).mode).toBe('a+x');
    expect(fileSchema.safeParse({ path: '/etc/motd', content: 'x', mode: 'u+q' }).error?.issues[0]?.message).toMatch(/symbolic mode such as "u=rw,g=r,o=" or "a\+x"; not "u\+q"/);
    expect(diffFile(spec({ content: 'hello\n', mode: 'a+x' }), live({ mode: '0644' }), null).fields).toEqual([{ path: 'mode', before: '0644', after: '0755' }]);
    expect(diffFile(spec({ content: 'hello\n', mode: 'u+x,go-w' }), live({ mode: '0666' }), null).fields).toEqual([{ path: 'mode', before: '0666', after: '0744' }]);
    expect(diffFile(spec({ content: 'x', mode: 'a+x' }), null, null).fields).toContainEqual({ path: 'mode', before: null, after: '0755' });
    const { live: after } = await converge(fileProvider, sandbox.handle, spec({ content: 'x', mode: 'u+x,go-w' }));
    expect(after?.mode).toBe('0744');
    expect((await converge(fileProvider, sandbox.handle, spec({ content: 'x', mode: 'u+x,go-w' }))).diff.action).toBe('noop');
  });

  it('mode: preserve takes the mode of the source file; without source it is refused', async () => {
    const repo = await fs.mkdtemp(join(sandbox.dir, 'repo-'));
    await fs.writeFile(join(repo, 'run.sh'), '#!/bin/sh\n');
    await fs.chmod(join(repo, 'run.sh'), 0o750);
    const context: ResolveContext = { repoDir: repo, readFile: (rel, from) => fs.readFile(resolve(dirname(join(repo, from)), rel)) };
    const resolved = await fileProvider.resolve!(fileSchema.parse({ path: '/usr/local/bin/run', source: 'run.sh', mode: 'preserve' }), { file: 'app.yaml' }, context);
    expect(resolved.mode).toBe('0750');
    expect(fileSchema.safeParse({ path: '/etc/motd', content: 'x', mode: 'preserve' }).error?.issues[0]?.message).toMatch(/mode: preserve .* needs source:/);
    expect(fileSchema.safeParse({ path: '/etc/motd', state: 'absent', content: 'x' }).error?.issues[0]?.message).toMatch(/content is for state: present/);
  });
});
