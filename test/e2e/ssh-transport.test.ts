/**
 * The SSH transport against real sshd servers, each in its own network
 * namespace (test/e2e/fleet/netns.ts): the host providers' conformance suite over
 * SSH, the transport checked against LocalTransport on the same files, host-key
 * and authentication refusals, dead and lost hosts, root confinement through a
 * remote symbolic link, the jump host, and the one-connection-per-host promise.
 */
import { execa } from 'execa';
import * as fs from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { directoryProvider, directorySchema } from '../../src/providers/host/directory.js';
import { fileProvider, fileSchema } from '../../src/providers/host/file.js';
import { hostSchema, hostTarget, type HostHandle } from '../../src/providers/host/host.js';
import { symlinkProvider, symlinkSchema } from '../../src/providers/host/symlink.js';
import { converge, ctx, testResource } from '../../src/providers/host/testing/sandbox.js';
import { ProviderError } from '../../src/providers/provider.js';
import { runProviderConformance } from '../../src/providers/testing/conformance.js';
import { createResolveContext } from '../../src/spec/resolve-context.js';
import { fingerprint, formatKnownHostsLine } from '../../src/transport/known-hosts.js';
import { LocalTransport } from '../../src/transport/local.js';
import { HostKeyError, SshTransport, type SshTransportOptions } from '../../src/transport/ssh.js';
import { ConnectionLimiter } from '../../src/transport/ssh-limits.js';
import type { InspectOptions } from '../../src/transport/transport.js';
import { createFleet, type Fleet, type FleetHost } from './fleet/netns.js';

let fleet: Fleet;
const open: { close(): Promise<void> }[] = [];

beforeAll(async () => {
  // host-4's sshd allows 4 sessions per connection, fewer than the transport's default of 10.
  fleet = await createFleet({ size: 4, withoutPython: [2], maxSessions: { 3: 4 } });
}, 60_000);
afterAll(async () => {
  await Promise.allSettled(open.map((t) => t.close()));
  await fleet?.destroy();
});

const host = (i: number): FleetHost => fleet.hosts[i]!;

function transport(i: number, options: Partial<SshTransportOptions> = {}): SshTransport {
  const t = new SshTransport({
    label: `Host/${host(i).name}`,
    host: host(i).address,
    identityFile: fleet.identityFile,
    knownHostsFile: fleet.knownHostsFile,
    ...options,
  });
  open.push(t);
  return t;
}

/** An ssh Host through the provider, rooted in a fresh directory of host `i`. */
async function sshHost(i: number, sub: string): Promise<HostHandle> {
  const h = host(i);
  const spec = hostSchema.parse({
    transport: 'ssh',
    address: h.address,
    identityFile: fleet.identityFile,
    knownHostsFile: fleet.knownHostsFile,
    root: path.join(h.root, sub),
  });
  return hostTarget.connect(testResource('Host', h.name, spec), ctx);
}

/** Established TCP connections to the host's sshd, seen from inside its namespace. */
async function sshConnections(i: number): Promise<number> {
  const { stdout } = await execa('ip', ['netns', 'exec', host(i).namespace, 'ss', '-Htn', 'state', 'established', '( sport = :22 )']);
  return stdout.split('\n').filter((l) => l.trim() !== '').length;
}

/** Listens on port 22 and never answers. */
const TARPIT = `
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 22))
s.listen(16)
time.sleep(120)
`;

async function waitForListener(i: number): Promise<void> {
  for (let tries = 0; tries < 100; tries++) {
    const { stdout } = await execa('ip', ['netns', 'exec', host(i).namespace, 'ss', '-Htln', '( sport = :22 )']);
    if (stdout.trim() !== '') return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('the tarpit did not start listening');
}

let conformanceRuns = 0;
const connect = async () => {
  const handle = await sshHost(0, `conformance-${++conformanceRuns}`);
  return { handle, cleanup: () => handle.close() };
};

runProviderConformance({
  name: 'File provider conformance over ssh',
  provider: fileProvider,
  connect,
  create: { path: '/etc/app/motd', content: 'hello\n', mode: '0644' },
  update: { path: '/etc/app/motd', content: "hello\nit's $HOME `here`\n", mode: '0600', owner: 65534, group: 65534 },
  invalidSpecs: [{ spec: { path: 'etc/motd', content: 'x' }, message: /path must be absolute/ }],
  makeDrift: (handle, spec) => fs.writeFile(handle.realRoot + spec.path, 'tampered\n'),
  driftedField: 'content',
});

runProviderConformance({
  name: 'Directory provider conformance over ssh',
  provider: directoryProvider,
  connect,
  create: { path: '/srv/app', mode: '0755' },
  update: { path: '/srv/app', mode: '2770', owner: 65534, group: 'nogroup' },
  invalidSpecs: [{ spec: { path: '/srv/app/' }, message: /must not end with "\/"/ }],
  makeDrift: (handle, spec) => fs.chmod(handle.realRoot + spec.path, 0o700),
  driftedField: 'mode',
});

runProviderConformance({
  name: 'Symlink provider conformance over ssh',
  provider: symlinkProvider,
  connect,
  create: { path: '/srv/current', target: 'releases/v1' },
  update: { path: '/srv/current', target: 'releases/v2', owner: 65534 },
  invalidSpecs: [{ spec: { path: '/srv/current' }, message: /target/ }],
  makeDrift: async (handle, spec) => {
    await fs.unlink(handle.realRoot + spec.path);
    await fs.symlink('/elsewhere', handle.realRoot + spec.path);
  },
  driftedField: 'target',
});

runProviderConformance({
  name: 'File provider conformance over ssh (symbolic mode, backup, force)',
  provider: fileProvider,
  connect,
  create: { path: '/etc/app/app.conf', content: 'one\n', mode: 'u=rw,g=r,o=', backup: true, force: true },
  update: { path: '/etc/app/app.conf', content: 'two\n', mode: 'a+x', backup: true, force: true },
  invalidSpecs: [{ spec: { path: '/etc/motd', content: 'x', mode: 'u+rwz' }, message: /symbolic mode/ }],
  makeDrift: (handle, spec) => fs.chmod(handle.realRoot + spec.path, 0o600),
  driftedField: 'mode',
});

describe('File, Directory and Symlink options over ssh', () => {
  it('state: absent with recurse removes a tree (one find), force replaces a file, backup keeps its copy, recurse sets attributes below', async () => {
    const handle = await sshHost(0, 'path-options');
    open.push(handle);
    const real = (p: string) => handle.realRoot + p;
    await fs.mkdir(real('/var/www/html/assets'), { recursive: true });
    await fs.writeFile(real('/var/www/html/index.html'), 'default\n');
    await fs.writeFile(real('/var/www/html/assets/a.css'), 'a');
    const absent = directorySchema.parse({ path: '/var/www/html', state: 'absent' });
    const [listed] = await directoryProvider.read(handle, [absent], ctx);
    expect(listed?.tree).toEqual({ count: 3, paths: ['/var/www/html/assets', '/var/www/html/assets/a.css', '/var/www/html/index.html'] });
    await expect(converge(directoryProvider, handle, absent)).rejects.toThrow(/is not empty/);
    await converge(directoryProvider, handle, directorySchema.parse({ path: '/var/www/html', state: 'absent', recurse: true }));
    expect(await fs.readdir(real('/var/www'))).toEqual([]);

    await fs.writeFile(real('/var/www/current'), 'data');
    const link = symlinkSchema.parse({ path: '/var/www/current', target: 'releases/v1' });
    await expect(converge(symlinkProvider, handle, link)).rejects.toThrow(/refusing to replace it/);
    await converge(symlinkProvider, handle, { ...link, force: true });
    expect(await fs.readlink(real('/var/www/current'))).toBe('releases/v1');

    await fs.writeFile(real('/var/www/app.conf'), 'old\n', { mode: 0o600 });
    await converge(fileProvider, handle, fileSchema.parse({ path: '/var/www/app.conf', content: 'new\n', backup: true, mode: 'u+x' }));
    const backups = (await fs.readdir(real('/var/www'))).filter((n) => n.startsWith('app.conf.'));
    expect(backups).toHaveLength(1);
    expect(await fs.readFile(real(`/var/www/${backups[0]!}`), 'utf8')).toBe('old\n');
    expect((await fs.stat(real(`/var/www/${backups[0]!}`))).mode & 0o7777).toBe(0o600);
    expect((await fs.stat(real('/var/www/app.conf'))).mode & 0o7777).toBe(0o700);

    // recurse: true over ssh: what differs is read with one find, and set with one find per step.
    await fs.mkdir(real('/srv/data/sub'), { recursive: true });
    await fs.writeFile(real('/srv/data/sub/f'), 'x', { mode: 0o666 });
    await fs.chmod(real('/srv/data/sub/f'), 0o666);
    const tree = directorySchema.parse({ path: '/srv/data', recurse: true, owner: 65534, mode: '0750', fileMode: 'go-w' });
    const { diff } = await converge(directoryProvider, handle, tree);
    expect(diff.fields.find((f) => f.path === 'recurse')?.before).toBe('2 of 2 below differ: /srv/data/sub, /srv/data/sub/f');
    const f = await fs.stat(real('/srv/data/sub/f'));
    expect([f.mode & 0o7777, f.uid]).toEqual([0o644, 65534]);
    expect((await converge(directoryProvider, handle, tree)).diff.action).toBe('noop');

    // source: DIR/ over ssh: one inspect of the files, the find for purge.
    const repo = await fs.mkdtemp(path.join(os.tmpdir(), 'capstan-source-'));
    try {
      await fs.mkdir(path.join(repo, 'site/css'), { recursive: true });
      await fs.writeFile(path.join(repo, 'site/index.html'), 'v1\n');
      await fs.writeFile(path.join(repo, 'site/css/a.css'), 'a\n');
      const synced = await directoryProvider.resolve!(directorySchema.parse({ path: '/srv/site', source: 'site/', purge: true }), { file: 'app.yaml' }, createResolveContext(repo));
      expect((await converge(directoryProvider, handle, synced)).diff.fields.map((f) => f.path)).toContain('source.create');
      await fs.writeFile(real('/srv/site/extra'), 'x');
      await fs.writeFile(real('/srv/site/index.html'), 'changed\n');
      const { diff: resync } = await converge(directoryProvider, handle, synced);
      expect(resync.fields.map((f) => [f.path, f.after])).toEqual([
        ['source.update', '1: /srv/site/index.html'],
        ['source.purge', '1: /srv/site/extra'],
      ]);
      expect((await fs.readdir(real('/srv/site'))).sort()).toEqual(['css', 'index.html']);
      expect(await fs.readFile(real('/srv/site/index.html'), 'utf8')).toBe('v1\n');
      expect((await converge(directoryProvider, handle, synced)).diff.action).toBe('noop');
    } finally {
      await fs.rm(repo, { recursive: true, force: true });
    }
  });
});

describe('SshTransport', () => {
  it.each(['python3', 'sh'] as const)('inspects exactly as LocalTransport does on the same files (%s on the host)', async (interpreter) => {
    const root = path.join(host(1).root, `inspect-${interpreter}`);
    await fs.mkdir(path.join(root, 'd'), { recursive: true });
    await fs.writeFile(path.join(root, "it's a \"file\"\nwith $x"), 'text\n');
    await fs.writeFile(path.join(root, 'big'), Buffer.alloc(5000, 1));
    await fs.writeFile(path.join(root, 'bin'), Buffer.from([0, 255, 0]));
    await fs.chown(path.join(root, 'bin'), 65534, 4242);
    await fs.symlink('/', path.join(root, 'escape'));
    await fs.symlink('nowhere', path.join(root, 'dangling'));
    await fs.symlink('d', path.join(root, 'inside'));
    const names = ["it's a \"file\"\nwith $x", 'big', 'bin', 'd', 'escape', 'escape/etc/passwd', 'dangling/x', 'inside/new', 'missing/x'];
    const paths = names.map((n) => path.join(root, n));
    const options: InspectOptions = { content: true, maxContentBytes: 1024, confineTo: root };
    const remote = await transport(1, { interpreter }).inspect(paths, options);
    expect(remote).toEqual(await new LocalTransport().inspect(paths, options));
    expect(remote.map((i) => i.escape !== null)).toEqual([false, false, false, false, false, true, true, false, false]);
  });

  it('falls back to the POSIX sh script on a host without python3', async () => {
    expect((await transport(2).exec(['sh', '-c', 'command -v python3 || echo none'], { timeoutMs: 10_000 })).stdout).toBe('none\n');
    const root = path.join(host(2).root, 'no-python');
    await fs.mkdir(path.join(root, 'd'), { recursive: true });
    await fs.writeFile(path.join(root, 'd/f'), 'text\n');
    await fs.symlink('/', path.join(root, 'escape'));
    const paths = ['d', 'd/f', 'escape/etc/passwd', 'missing'].map((n) => path.join(root, n));
    const options: InspectOptions = { content: true, maxContentBytes: 1024, confineTo: root };
    const t = transport(2);
    expect(await t.inspect(paths, options)).toEqual(await new LocalTransport().inspect(paths, options));
    expect(await t.realpath(path.join(root, 'escape/tmp/x'))).toBe('/tmp/x');
    await expect(transport(2, { interpreter: 'python3' }).inspect(paths, options)).rejects.toThrow(/python3 is not installed on Host\/host-3/);
  });

  it('runs argument arrays exactly, with input, cwd, env, exit status and a timeout', async () => {
    const t = transport(1);
    const words = ["it's", '"quoted"', '$HOME', '`id`', 'back\\slash', 'new\nline', '', 'ünï ✓', '-n'];
    const r = await t.exec(['printf', '%s\\0', ...words], { timeoutMs: 10_000 });
    expect(r).toMatchObject({ exitCode: 0, timedOut: false });
    expect(r.stdout.split('\0').slice(0, -1)).toEqual(words);
    const piped = await t.exec(['sh', '-c', 'cat; pwd; printf "%s" "$GREETING" >&2; exit 7'], {
      timeoutMs: 10_000,
      input: 'from stdin\n',
      cwd: host(1).root,
      env: { GREETING: "hello 'there'" },
    });
    expect(piped).toEqual({ exitCode: 7, signal: null, timedOut: false, stdout: `from stdin\n${host(1).root}\n`, stderr: "hello 'there'" });
    expect(await t.exec(['sh', '-c', 'kill -TERM $$'], { timeoutMs: 10_000 })).toMatchObject({ exitCode: null, signal: 'SIGTERM', timedOut: false });
    const started = Date.now();
    const slow = await t.exec(['sleep', '30'], { timeoutMs: 500 });
    expect(slow).toMatchObject({ exitCode: null, timedOut: true });
    expect(Date.now() - started).toBeLessThan(10_000);
    await expect(t.exec(['no-such-program-here'], { timeoutMs: 10_000 })).rejects.toThrow(/^no-such-program-here not found on host Host\/host-2 \(ssh [^)]+\): install it, or give its path$/);
    await expect(t.exec(['promtool', '--version'], { timeoutMs: 10_000, env: { PATH: '/nonexistent' } })).rejects.toThrow(
      /^promtool not found on host Host\/host-2 \(ssh [^)]+\): install the Debian package prometheus \(apt-get install prometheus\)$/,
    );
  });

  it('does every operation of a run over ONE connection, and caps channels below MaxSessions', async () => {
    const t = transport(1);
    const before = await sshConnections(1);
    const dir = path.join(host(1).root, 'one-connection');
    await t.mkdir(dir, { mode: '0755', parents: true });
    // 40 commands at once: sshd refuses an 11th session on a connection, the transport queues them.
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => t.exec(['sh', '-c', 'sleep 0.2; echo "$1"', 'sh', String(i)], { timeoutMs: 30_000 })));
    expect(results.map((r) => r.stdout)).toEqual(Array.from({ length: 40 }, (_, i) => `${i}\n`));
    await Promise.all(Array.from({ length: 20 }, (_, i) => t.writeFileAtomic(path.join(dir, `f${i}`), Buffer.from(`${i}`), { mode: '0644' })));
    const infos = await t.inspect(Array.from({ length: 20 }, (_, i) => path.join(dir, `f${i}`)), { content: true, maxContentBytes: 100 });
    expect(infos.map((i) => i.content?.toString())).toEqual(Array.from({ length: 20 }, (_, i) => `${i}`));
    expect(await sshConnections(1)).toBe(before + 1);
    // No temporary file is left behind by the atomic writes.
    expect((await fs.readdir(dir)).filter((n) => n.includes('capstan-'))).toEqual([]);
  });

  it('answers 1,000 commands started at once on one connection, each with its own exit status', async () => {
    // The inspect helper and SFTP hold two of sshd's ten sessions, so the commands run at its limit, and
    // sessions are refused whenever several channels close in one of sshd's reads.
    const t = transport(1);
    await t.inspect([host(1).root], { content: false, maxContentBytes: 0 });
    await t.writeFileAtomic(path.join(host(1).root, 'many-commands'), Buffer.from('x'), { mode: '0644' });
    const count = 1_000;
    const script = 'case $1 in *0) kill -TERM $$ ;; esac; printf %s "$1"; exit $(($1 % 7))';
    const results = await Promise.all(Array.from({ length: count }, (_, i) => t.exec(['sh', '-c', script, 'sh', String(i)], { timeoutMs: 120_000 })));
    const expected = Array.from({ length: count }, (_, i) =>
      i % 10 === 0 ? { exitCode: null, signal: 'SIGTERM', stdout: '' } : { exitCode: i % 7, signal: null, stdout: String(i) },
    );
    expect(results.map((r) => ({ exitCode: r.exitCode, signal: r.signal, stdout: r.stdout }))).toEqual(expected);
  }, 180_000);

  it('waits for sessions on a host whose sshd allows fewer than the transport would open', async () => {
    const t = transport(3);
    await t.inspect([host(3).root], { content: false, maxContentBytes: 0 });
    await t.writeFileAtomic(path.join(host(3).root, 'few-sessions'), Buffer.from('x'), { mode: '0644' });
    // Two sessions left for commands; each command holds one for 0.3 s, and most opens are refused at first.
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 16 }, (_, i) => t.exec(['sh', '-c', 'sleep 0.3; echo "$1"', 'sh', String(i)], { timeoutMs: 60_000 })));
    expect(results.map((r) => r.stdout)).toEqual(Array.from({ length: 16 }, (_, i) => `${i}\n`));
    expect(Date.now() - started).toBeGreaterThanOrEqual(8 * 300);
    expect(await sshConnections(3)).toBe(1);
  }, 60_000);

  it('closes the least recently used idle connection when the process-wide limit is reached', async () => {
    const limiter = new ConnectionLimiter(1);
    const a = transport(1, { limiter });
    const b = transport(2, { limiter });
    await a.exec(['true'], { timeoutMs: 10_000 });
    await b.exec(['true'], { timeoutMs: 10_000 });
    expect(limiter.openCount).toBe(1);
    // `a` was evicted for `b`, and reconnects when used again.
    expect((await a.exec(['echo', 'again'], { timeoutMs: 10_000 })).stdout).toBe('again\n');
    expect(limiter.openCount).toBe(1);
  });

  it('refuses a host whose key known_hosts does not hold', async () => {
    const knownHosts = path.join(fleet.dir, 'only-host-1');
    await fs.writeFile(knownHosts, formatKnownHostsLine(host(0).address, host(0).hostKey) + '\n');
    const t = transport(1, { knownHostsFile: knownHosts });
    const err = await t.connect().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HostKeyError);
    expect((err as Error).message).toContain(`host key for Host/host-2 (ssh root@${host(1).address}:22) is not known`);
    expect((err as Error).message).toContain(fingerprint(host(1).hostKey));
    // Never retried, and every later operation fails the same way.
    await expect(t.inspect(['/'], { content: false, maxContentBytes: 0 })).rejects.toBe(err);
  });

  it('refuses a host whose key changed, naming the host and both fingerprints', async () => {
    const knownHosts = path.join(fleet.dir, 'changed');
    // host-2's address, recorded with host-1's key: what a reinstalled (or impersonated) host looks like.
    await fs.writeFile(knownHosts, formatKnownHostsLine(host(1).address, host(0).hostKey, { hashed: true }) + '\n');
    const spec = hostSchema.parse({ transport: 'ssh', address: host(1).address, identityFile: fleet.identityFile, knownHostsFile: knownHosts });
    const err = await hostTarget.connect(testResource('Host', 'web-2', spec), ctx).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProviderError);
    const message = (err as Error).message;
    expect(message).toContain(`host key for Host/web-2 (ssh root@${host(1).address}:22) changed`);
    expect(message).toContain(`known_hosts holds ssh-ed25519 ${fingerprint(host(0).hostKey)}`);
    expect(message).toContain(`the server presented ssh-ed25519 ${fingerprint(host(1).hostKey)}`);
  });

  it('refuses a key the host does not authorise, without retrying', async () => {
    const wrongKey = path.join(fleet.dir, 'wrong_key');
    await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', wrongKey]);
    const started = Date.now();
    await expect(transport(1, { identityFile: wrongKey }).connect()).rejects.toThrow(
      new RegExp(`authentication to Host/host-2 \\(ssh root@${host(1).address.replaceAll('.', '\\.')}:22\\) as root failed`),
    );
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('logs in with the SSH agent when the Host names no identityFile', async () => {
    const socket = path.join(fleet.dir, 'agent.sock');
    const agent = execa('ssh-agent', ['-D', '-a', socket], { reject: false });
    try {
      for (let tries = 0; tries < 100 && !(await fs.stat(socket).catch(() => null)); tries++) await new Promise((r) => setTimeout(r, 20));
      await execa('ssh-add', ['-q', fleet.identityFile], { env: { SSH_AUTH_SOCK: socket } });
      const t = transport(1, { identityFile: undefined, agent: socket });
      expect((await t.exec(['echo', 'via agent'], { timeoutMs: 10_000 })).stdout).toBe('via agent\n');
    } finally {
      agent.kill('SIGTERM');
      await agent;
    }
  });

  it('reaches a host through a jump host', async () => {
    // 127.0.0.1 inside host-3's namespace: only the jump host itself can reach it.
    const knownHosts = path.join(fleet.dir, 'jump_known_hosts');
    await fs.writeFile(knownHosts, [formatKnownHostsLine(host(2).address, host(2).hostKey), formatKnownHostsLine('127.0.0.1', host(2).hostKey)].join('\n') + '\n');
    const t = transport(2, { host: '127.0.0.1', knownHostsFile: knownHosts, jump: { host: host(2).address } });
    expect(t.description).toBe(`ssh root@127.0.0.1:22 via ${host(2).address}`);
    const r = await t.exec(['sh', '-c', 'echo "$SSH_CONNECTION"'], { timeoutMs: 10_000 });
    expect(r.stdout).toMatch(/^127\.0\.0\.1 \d+ 127\.0\.0\.1 22\n$/);
  });

  it('refuses a path whose parent leads out of the root through a remote symbolic link', async () => {
    const handle = await sshHost(1, 'confined');
    open.push(handle);
    await fs.mkdir(handle.realRoot, { recursive: true });
    const outside = path.join(host(1).root, 'outside');
    await fs.mkdir(outside, { recursive: true });
    await fs.symlink(outside, path.join(handle.realRoot, 'etc'));
    const spec = fileProvider.schema.parse({ path: '/etc/motd', content: 'owned\n' });
    await expect(fileProvider.read(handle, [spec], ctx)).rejects.toThrow(
      `refusing /etc/motd on Host/host-2 (root ${handle.root}): its parent directory leads outside the root through the symbolic link /etc -> ${outside} (it resolves to ${outside}/motd)`,
    );
    await expect(fileProvider.apply(handle, { action: 'create', address: 'File/motd', desired: spec, prior: null, live: null }, ctx)).rejects.toThrow(ProviderError);
    expect(await fs.readdir(outside)).toEqual([]);
  });

  it.each(['python3', 'sh'] as const)(
    'tells a FIFO and a socket apart, so File and Directory plans refuse them by name and apply leaves them (%s on the host)',
    async (interpreter) => {
      const i = interpreter === 'python3' ? 1 : 2;
      const handle = await sshHost(i, `special-${interpreter}`);
      open.push(handle);
      await fs.mkdir(path.join(handle.realRoot, 'run'), { recursive: true });
      await execa('mkfifo', [path.join(handle.realRoot, 'run/app.fifo')]);
      const sock = path.join(handle.realRoot, 'run/app.sock');
      const server = createServer();
      await new Promise<void>((resolve) => server.listen(sock, resolve));
      try {
        const file = fileProvider.schema.parse({ path: '/run/app.fifo', content: 'x\n' });
        const dir = directoryProvider.schema.parse({ path: '/run/app.sock' });
        const [fileLive] = await fileProvider.read(handle, [file], ctx);
        const [dirLive] = await directoryProvider.read(handle, [dir], ctx);
        expect([fileLive?.type, dirLive?.type]).toEqual(['fifo', 'socket']);
        expect(fileProvider.diff(file, fileLive!, null).refusal?.message).toMatch(/^\/run\/app\.fifo is a FIFO: Capstan does not replace a FIFO with a file/);
        expect(directoryProvider.diff(dir, dirLive!, null).refusal?.message).toMatch(/^\/run\/app\.sock is a socket: Capstan does not replace a socket with a directory/);
        const request = { action: 'replace' as const, address: 'File/fifo', desired: file, prior: null, live: fileLive! };
        await expect(fileProvider.apply(handle, request, ctx)).rejects.toThrow(`refusing to replace /run/app.fifo on Host/${host(i).name}: it is a FIFO`);
        expect((await fs.lstat(path.join(handle.realRoot, 'run/app.fifo'))).isFIFO()).toBe(true);
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    },
  );

  it('reports, for the planner, the owner and group a File names that the remote host lacks', async () => {
    const handle = await sshHost(1, 'accounts');
    open.push(handle);
    const specs = [
      fileProvider.schema.parse({ path: '/a', content: 'x', owner: 'capstan-no-such-user', group: 'nogroup' }),
      fileProvider.schema.parse({ path: '/b', content: 'x', owner: 'nobody', group: 'capstan-no-such-group' }),
    ];
    const unresolved = new Map<number, string[]>();
    await fileProvider.read(handle, specs, { ...ctx, unresolved: (index, refs) => unresolved.set(index, refs.map((r) => r.label)) });
    expect(Object.fromEntries(unresolved)).toEqual({ 0: ['user "capstan-no-such-user"'], 1: ['group "capstan-no-such-group"'] });
  });

  it('fails only what was in flight when a host goes down, then fails fast; a dead host is named within the timeout', async () => {
    const t = transport(2, { connectTimeoutMs: 2_000 });
    await t.exec(['true'], { timeoutMs: 10_000 });
    const running = t.exec(['sleep', '30'], { timeoutMs: 60_000 });
    await new Promise((r) => setTimeout(r, 300));
    await fleet.down(2);
    await expect(running).rejects.toThrow(/connection to Host\/host-3 \(ssh root@[\d.]+:22\) lost/);
    // The next operation tries to reconnect once: sshd is gone, so it is refused, and stays so.
    const started = Date.now();
    await expect(t.exec(['true'], { timeoutMs: 10_000 })).rejects.toThrow(/cannot connect to Host\/host-3 \(ssh root@[\d.]+:22\): connection refused/);
    await expect(t.inspect(['/'], { content: false, maxContentBytes: 0 })).rejects.toThrow(/connection refused/);
    expect(Date.now() - started).toBeLessThan(5_000);

    // A fresh connection to the dead host: retried with backoff, then a clear error, well within the timeout.
    const fresh = Date.now();
    const spec = hostSchema.parse({ transport: 'ssh', address: host(2).address, identityFile: fleet.identityFile, knownHostsFile: fleet.knownHostsFile });
    await expect(hostTarget.connect(testResource('Host', 'db-1', spec), ctx)).rejects.toThrow(
      new RegExp(`cannot connect to Host/db-1 \\(ssh root@${host(2).address.replaceAll('.', '\\.')}:22\\): connection refused .*\\(3 attempts over [\\d.]+ s\\)`),
    );
    expect(Date.now() - fresh).toBeLessThan(10_000);

    // A host that accepts TCP but never speaks SSH (a hung sshd): the connect timeout, per attempt.
    const tarpit = execa('ip', ['netns', 'exec', host(2).namespace, 'python3', '-c', TARPIT, host(2).address], { reject: false });
    try {
      await waitForListener(2);
      const silent = Date.now();
      const quiet = transport(2, { connectTimeoutMs: 1_000, connectAttempts: 2, retryDelayMs: 50 });
      await expect(quiet.connect()).rejects.toThrow(
        /cannot connect to Host\/host-3 \(ssh root@[\d.]+:22\): no answer within the connect timeout \(2 attempts over [\d.]+ s\)/,
      );
      expect(Date.now() - silent).toBeLessThan(6_000);
    } finally {
      tarpit.kill('SIGKILL');
      await tarpit;
    }
  });
});
