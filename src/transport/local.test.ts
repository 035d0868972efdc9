import { createHash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalTransport } from './local.js';
import { describePathType, formatMode, isWithin, modeBits, pathTypeOfMode, type InspectOptions } from './transport.js';

const META: InspectOptions = { content: false, maxContentBytes: 0 };
const CONTENT: InspectOptions = { content: true, maxContentBytes: 1024 };

let dir: string;
const transport = new LocalTransport();

beforeEach(async () => {
  dir = await fs.realpath(await fs.mkdtemp(join(tmpdir(), 'capstan-local-')));
});
afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function entries(d: string): Promise<string[]> {
  return (await fs.readdir(d)).sort();
}

describe('mode helpers', () => {
  it('converts between octal strings and bits', () => {
    expect(modeBits('0644')).toBe(0o644);
    expect(modeBits('4755')).toBe(0o4755);
    expect(modeBits(0o700)).toBe(0o700);
    expect(formatMode(0o100644)).toBe('0644');
    expect(formatMode(0o42775)).toBe('2775');
    expect(() => modeBits('0999')).toThrow(RangeError);
    expect(() => modeBits(0o17777)).toThrow(RangeError);
  });

  it('tells whether a path lies within a directory', () => {
    expect(isWithin('/a/b', '/a')).toBe(true);
    expect(isWithin('/a', '/a')).toBe(true);
    expect(isWithin('/ab', '/a')).toBe(false);
    expect(isWithin('/etc', '/')).toBe(true);
  });
});

describe('LocalTransport.inspect', () => {
  it('tells special files apart and names each type for messages, never "a other"', async () => {
    await transport.exec(['mkfifo', join(dir, 'fifo')], { timeoutMs: 60_000 });
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(join(dir, 'sock'), resolve));
    try {
      const infos = await transport.inspect([join(dir, 'fifo'), join(dir, 'sock'), '/dev/null'], META);
      expect(infos.map((i) => i.type)).toEqual(['fifo', 'socket', 'char-device']);
      expect(infos.map((i) => describePathType(i.type))).toEqual(['a FIFO', 'a socket', 'a character device']);
      await expect(transport.remove(join(dir, 'fifo'), { type: 'file' })).rejects.toThrow(`cannot remove ${join(dir, 'fifo')}: it is a FIFO, not a regular file`);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    expect(pathTypeOfMode(0o060660)).toBe('block-device');
    expect(describePathType('block-device')).toBe('a block device');
  });

  it('describes each type, in the order asked, without following the final link', async () => {
    await fs.writeFile(join(dir, 'f'), 'hi');
    await fs.chmod(join(dir, 'f'), 0o4750);
    await fs.mkdir(join(dir, 'd'));
    await fs.symlink('d', join(dir, 'l'));
    await transport.exec(['mkfifo', join(dir, 'fifo')], { timeoutMs: 10_000 });
    const infos = await transport.inspect(
      ['f', 'd', 'l', 'fifo', 'missing', 'f/under-a-file'].map((n) => join(dir, n)),
      META,
    );
    expect(infos.map((i) => i.type)).toEqual(['file', 'directory', 'symlink', 'fifo', 'absent', 'absent']);
    expect(infos[0]).toMatchObject({ mode: '4750', uid: 0, gid: 0, owner: 'root', group: 'root', size: 2, sha256: null, content: null });
    expect(infos[2]).toMatchObject({ linkTarget: 'd' });
    expect(infos[4]).toMatchObject({ mode: null, uid: null, owner: null, escape: null });
  });

  it('hashes files and returns content up to the limit only', async () => {
    const small = Buffer.from('small\n');
    const big = Buffer.alloc(5000, 'x');
    await fs.writeFile(join(dir, 'small'), small);
    await fs.writeFile(join(dir, 'big'), big);
    const [s, b] = await transport.inspect([join(dir, 'small'), join(dir, 'big')], CONTENT);
    const sha = (buf: Buffer) => createHash('sha256').update(buf).digest('hex');
    expect(s).toMatchObject({ sha256: sha(small), content: small });
    expect(b).toMatchObject({ sha256: sha(big), content: null, size: 5000 });
  });

  it('names owners from the machine databases, and null for ids they lack', async () => {
    const passwd = join(dir, 'passwd');
    const group = join(dir, 'group');
    await fs.writeFile(passwd, 'root:x:0:0::/root:/bin/sh\nalice:x:4242:4242::/home/alice:/bin/sh\n');
    await fs.writeFile(group, 'root:x:0:\nstaff:x:4343:alice\n');
    const custom = new LocalTransport({ passwdFile: passwd, groupFile: group });
    await fs.writeFile(join(dir, 'a'), '');
    await fs.chown(join(dir, 'a'), 4242, 4343);
    await fs.writeFile(join(dir, 'b'), '');
    await fs.chown(join(dir, 'b'), 4343, 4242);
    const [a, b] = await custom.inspect([join(dir, 'a'), join(dir, 'b')], META);
    expect(a).toMatchObject({ uid: 4242, gid: 4343, owner: 'alice', group: 'staff' });
    expect(b).toMatchObject({ uid: 4343, gid: 4242, owner: null, group: null });
    const ids = await custom.resolveAccounts({ users: ['alice', 'bob'], groups: ['staff'] });
    expect(ids.users.get('alice')).toBe(4242);
    expect(ids.users.get('bob')).toBeNull();
    expect(ids.groups.get('staff')).toBe(4343);
  });

  it('sees an account added to the databases since the last inspection (useradd replaces the file)', async () => {
    const passwd = join(dir, 'passwd');
    const group = join(dir, 'group');
    await fs.writeFile(passwd, 'root:x:0:0::/root:/bin/sh\n');
    await fs.writeFile(group, 'root:x:0:\n');
    const custom = new LocalTransport({ passwdFile: passwd, groupFile: group });
    await fs.writeFile(join(dir, 'a'), '');
    await fs.chown(join(dir, 'a'), 4242, 4343);
    expect((await custom.inspect([join(dir, 'a')], META))[0]).toMatchObject({ owner: null, group: null });
    await fs.writeFile(`${passwd}.new`, 'root:x:0:0::/root:/bin/sh\nalice:x:4242:4242::/home/alice:/bin/sh\n');
    await fs.rename(`${passwd}.new`, passwd);
    await fs.appendFile(group, 'staff:x:4343:alice\n');
    expect((await custom.inspect([join(dir, 'a')], META))[0]).toMatchObject({ owner: 'alice', group: 'staff' });
  });

  it('answers a large batch in order', async () => {
    const names = Array.from({ length: 2000 }, (_, i) => `f${i}`);
    await Promise.all(names.map((n, i) => fs.writeFile(join(dir, n), String(i))));
    const infos = await transport.inspect(
      names.map((n) => join(dir, n)),
      { ...CONTENT, confineTo: dir },
    );
    expect(infos.map((i) => i.content?.toString())).toEqual(names.map((_, i) => String(i)));
  });

  it('rejects a relative path', async () => {
    await expect(transport.inspect(['relative/path'], META)).rejects.toThrow(/not an absolute path/);
  });

  it('stops when the signal is aborted', async () => {
    const controller = new AbortController();
    controller.abort(new Error('interrupted'));
    await expect(transport.inspect([join(dir, 'x')], { ...META, signal: controller.signal })).rejects.toThrow(/interrupted/);
  });
});

describe('LocalTransport.inspect with confineTo', () => {
  let root: string;
  let outside: string;
  beforeEach(async () => {
    root = join(dir, 'root');
    outside = join(dir, 'outside');
    await fs.mkdir(join(root, 'inner'), { recursive: true });
    await fs.mkdir(outside);
    await fs.writeFile(join(outside, 'secret'), 'secret');
  });

  it('reports a parent chain that leaves through a symlink, naming it, without reading the object', async () => {
    await fs.symlink(outside, join(root, 'escape'));
    const [info] = await transport.inspect([join(root, 'escape', 'secret')], { ...CONTENT, confineTo: root });
    expect(info).toMatchObject({
      type: 'absent',
      content: null,
      escape: { symlink: join(root, 'escape'), linkTarget: outside, resolvesTo: join(outside, 'secret'), dangling: false },
    });
  });

  it('names the last link when the escape is several levels up and the tail is missing', async () => {
    await fs.symlink('../../outside', join(root, 'inner', 'up'));
    const [info] = await transport.inspect([join(root, 'inner', 'up', 'new', 'deeper', 'file')], {
      ...META,
      confineTo: root,
    });
    expect(info!.escape).toMatchObject({ symlink: join(root, 'inner', 'up'), resolvesTo: join(outside, 'new', 'deeper', 'file') });
  });

  it('allows links that stay inside, the final component being a link to anywhere, and a missing root', async () => {
    await fs.symlink('inner', join(root, 'alias'));
    await fs.symlink('/etc/passwd', join(root, 'inner', 'link'));
    const missingRoot = join(dir, 'not-yet', 'root');
    const infos = await transport.inspect(
      [join(root, 'alias', 'x'), join(root, 'inner', 'link'), join(missingRoot, 'a', 'b')],
      { ...META, confineTo: root },
    );
    expect(infos.slice(0, 2).map((i) => i.escape)).toEqual([null, null]);
    expect(infos[1]).toMatchObject({ type: 'symlink', linkTarget: '/etc/passwd' });
    const [missing] = await transport.inspect([join(missingRoot, 'a', 'b')], { ...META, confineTo: missingRoot });
    expect(missing).toMatchObject({ type: 'absent', escape: null });
  });

  it('refuses a chain through a dangling link or a link loop', async () => {
    await fs.symlink(join(root, 'nowhere'), join(root, 'dangling'));
    await fs.symlink('loop', join(root, 'loop'));
    const [dangling, loop] = await transport.inspect([join(root, 'dangling', 'f'), join(root, 'loop', 'f')], {
      ...META,
      confineTo: root,
    });
    expect(dangling!.escape).toMatchObject({ symlink: join(root, 'dangling'), dangling: true });
    expect(loop!.escape).toMatchObject({ symlink: join(root, 'loop'), dangling: true });
  });

  it('resolves realpath of a missing path through its existing part', async () => {
    await fs.symlink(root, join(dir, 'link-to-root'));
    expect(await transport.realpath(join(dir, 'link-to-root', 'missing', 'x'))).toBe(join(root, 'missing', 'x'));
    expect(await transport.realpath('/')).toBe('/');
  });
});

describe('LocalTransport writes', () => {
  it('writes a file atomically with mode and owner, leaving no temp file', async () => {
    const path = join(dir, 'f');
    await transport.writeFileAtomic(path, Buffer.from('one'), { mode: '0640', uid: 65534, gid: 65534 });
    const st = await fs.stat(path);
    expect(formatMode(st.mode)).toBe('0640');
    expect([st.uid, st.gid]).toEqual([65534, 65534]);
    await transport.writeFileAtomic(path, Buffer.from('two'), { mode: '4755', uid: 65534 });
    expect(await fs.readFile(path, 'utf8')).toBe('two');
    expect(formatMode((await fs.stat(path)).mode)).toBe('4755');
    expect(await entries(dir)).toEqual(['f']);
  });

  it('replaces a symlink at the path instead of writing through it', async () => {
    await fs.writeFile(join(dir, 'target'), 'keep');
    await fs.symlink(join(dir, 'target'), join(dir, 'link'));
    await transport.writeFileAtomic(join(dir, 'link'), Buffer.from('new'), { mode: 0o644 });
    expect(await fs.readFile(join(dir, 'target'), 'utf8')).toBe('keep');
    expect((await fs.lstat(join(dir, 'link'))).isFile()).toBe(true);
  });

  it('cleans up its temp file when the rename fails', async () => {
    await fs.mkdir(join(dir, 'busy', 'child'), { recursive: true });
    await expect(transport.writeFileAtomic(join(dir, 'busy'), Buffer.from('x'), { mode: '0644' })).rejects.toThrow();
    expect(await entries(dir)).toEqual(['busy']);
  });

  it('creates directories with parents and exact modes, and leaves an existing one alone', async () => {
    const path = join(dir, 'a', 'b', 'c');
    expect(await transport.mkdir(path, { mode: '2777', uid: 65534, gid: 65534, parents: true })).toBe(true);
    const st = await fs.stat(path);
    expect(formatMode(st.mode)).toBe('2777');
    expect(st.uid).toBe(65534);
    expect(formatMode((await fs.stat(join(dir, 'a'))).mode)).toMatch(/^07[0-7]5$/);
    expect(await transport.mkdir(path, { mode: '0700', parents: false })).toBe(false);
    expect(formatMode((await fs.stat(path)).mode)).toBe('2777');
    await fs.writeFile(join(dir, 'file'), '');
    await expect(transport.mkdir(join(dir, 'file'), { mode: '0755', parents: false })).rejects.toMatchObject({ code: 'EEXIST' });
  });

  it('chmods files and directories but refuses a symlink, leaving its target alone', async () => {
    await fs.writeFile(join(dir, 'f'), '');
    await fs.chmod(join(dir, 'f'), 0o200);
    await transport.chmod(join(dir, 'f'), '0600');
    expect(formatMode((await fs.stat(join(dir, 'f'))).mode)).toBe('0600');
    await fs.symlink(join(dir, 'f'), join(dir, 'l'));
    await expect(transport.chmod(join(dir, 'l'), '0777')).rejects.toMatchObject({ code: 'ETYPE' });
    expect(formatMode((await fs.stat(join(dir, 'f'))).mode)).toBe('0600');
  });

  it('lchowns a link itself, not its target', async () => {
    await fs.writeFile(join(dir, 'f'), '');
    await fs.symlink(join(dir, 'f'), join(dir, 'l'));
    await transport.lchown(join(dir, 'l'), { uid: 65534 });
    expect((await fs.lstat(join(dir, 'l'))).uid).toBe(65534);
    expect((await fs.stat(join(dir, 'f'))).uid).toBe(0);
  });

  it('creates and atomically retargets symlinks, and renames', async () => {
    await transport.symlink('one', join(dir, 'l'));
    await transport.symlink('two', join(dir, 'l'));
    expect(await fs.readlink(join(dir, 'l'))).toBe('two');
    await transport.rename(join(dir, 'l'), join(dir, 'm'));
    expect(await entries(dir)).toEqual(['m']);
  });

  it('removes one object of the expected type, never recursively', async () => {
    await fs.mkdir(join(dir, 'full'));
    await fs.writeFile(join(dir, 'full', 'x'), '');
    await fs.mkdir(join(dir, 'empty'));
    await fs.symlink('full', join(dir, 'l'));
    await expect(transport.remove(join(dir, 'full'), { type: 'directory' })).rejects.toMatchObject({ code: 'ENOTEMPTY' });
    await expect(transport.remove(join(dir, 'l'), { type: 'directory' })).rejects.toMatchObject({ code: 'ETYPE' });
    await expect(transport.remove(join(dir, 'full'), { type: 'file' })).rejects.toMatchObject({ code: 'ETYPE' });
    expect(await transport.remove(join(dir, 'l'), { type: 'symlink' })).toBe(true);
    expect(await transport.remove(join(dir, 'empty'), { type: 'directory' })).toBe(true);
    expect(await transport.remove(join(dir, 'full', 'x'), { type: 'file' })).toBe(true);
    expect(await transport.remove(join(dir, 'full', 'x'), { type: 'file' })).toBe(false);
    expect(await entries(dir)).toEqual(['full']);
  });
});

describe('LocalTransport: temporary files a killed write left behind', () => {
  it('are swept from the directory of the next write, only Capstan-named ones older than the transport', async () => {
    const past = new Date(Date.now() - 3600_000);
    const stale = ['.motd.capstan-0123456789ab.tmp', '.link.capstan-abcdef012345.tmp'];
    await fs.writeFile(join(dir, stale[0]!), 'half-written');
    await fs.symlink('/etc/passwd', join(dir, stale[1]!));
    const others = ['.motd.capstan-xyz.tmp', 'motd.capstan-0123456789ab.tmp', 'notes.tmp', '.other.capstan-0123456789ab.tmp.keep'];
    for (const name of others) await fs.writeFile(join(dir, name), 'not ours');
    await fs.mkdir(join(dir, '.dir.capstan-0123456789ab.tmp'));
    for (const name of [...stale, ...others, '.dir.capstan-0123456789ab.tmp']) await fs.lutimes(join(dir, name), past, past);
    await fs.mkdir(join(dir, 'elsewhere'));
    await fs.writeFile(join(dir, 'elsewhere', '.x.capstan-0123456789ab.tmp'), 'another directory');
    await fs.lutimes(join(dir, 'elsewhere', '.x.capstan-0123456789ab.tmp'), past, past);

    const fresh = new LocalTransport();
    // Made after this transport started (another writer at work now): kept.
    const inFlight = join(dir, '.new.capstan-fedcba987654.tmp');
    await fs.writeFile(inFlight, 'being written');
    await fs.utimes(inFlight, new Date(Date.now() + 60_000), new Date(Date.now() + 60_000));

    await fresh.writeFileAtomic(join(dir, 'motd'), Buffer.from('hello\n'), { mode: '0644' });
    expect(await entries(dir)).toEqual(['.dir.capstan-0123456789ab.tmp', '.new.capstan-fedcba987654.tmp', ...others, 'elsewhere', 'motd'].sort());
    expect(await entries(join(dir, 'elsewhere'))).toEqual(['.x.capstan-0123456789ab.tmp']);
  });
});

describe('LocalTransport.exec', () => {
  it('passes arguments as an array, never through a shell', async () => {
    const result = await transport.exec(['printf', '%s|%s', '$HOME; echo pwned', '`id`'], { timeoutMs: 10_000 });
    expect(result).toEqual({ exitCode: 0, signal: null, timedOut: false, stdout: '$HOME; echo pwned|`id`', stderr: '' });
  });

  it('reports exit status, stdin and stderr', async () => {
    const result = await transport.exec(['sh', '-c', 'cat; echo oops >&2; exit 3'], { timeoutMs: 10_000, input: 'in' });
    expect(result).toMatchObject({ exitCode: 3, stdout: 'in', stderr: 'oops\n' });
  });

  it('kills a command that outlives its timeout', async () => {
    const result = await transport.exec(['sleep', '10'], { timeoutMs: 100 });
    expect(result).toMatchObject({ exitCode: null, timedOut: true });
  });

  it('rejects when the program cannot be started', async () => {
    await expect(transport.exec(['/no/such/program'], { timeoutMs: 1000 })).rejects.toThrow('/no/such/program not found: install it, or give its path');
    // A known program missing from PATH names its Debian package.
    await expect(transport.exec(['nft', 'list', 'ruleset'], { timeoutMs: 1000, env: { PATH: '/nonexistent' } })).rejects.toThrow(
      'nft not found on PATH: install the Debian package nftables (apt-get install nftables)',
    );
    await expect(transport.exec([], { timeoutMs: 1000 })).rejects.toThrow(/needs a program/);
  });

  it('names a missing working directory, not the program', async () => {
    const missing = join(dir, 'no-such-dir');
    const err = (await transport.exec(['/bin/echo', 'hi'], { timeoutMs: 1000, cwd: missing }).catch((e: unknown) => e)) as Error;
    expect(err.message).toBe(`cannot run /bin/echo: working directory ${missing} does not exist`);
    expect(err.message).not.toMatch(/spawn/);
  });
});
