/**
 * A real fleet of SSH hosts on this machine: N network namespaces, each joined
 * to the root namespace by a veth pair and running its own `/usr/sbin/sshd -D`
 * with its own host key.
 *
 * Addresses come from 198.18.0.0/15 (RFC 2544, benchmarking: never a real
 * network), one /30 per host inside a /24 picked at random and checked unused:
 * the only traffic is between the root namespace and the namespaces made here.
 *
 * The namespaces share this machine's filesystem, so each host gets its own
 * `root` directory (the Host's `root:`) to keep its files apart. One client key
 * logs in to every host, as root; `known_hosts` holds every host key (hashed for
 * odd hosts when asked, as `ssh-keygen -H` writes them).
 *
 * Inside each sshd's mount namespace (which `ip netns exec` creates), root's
 * `~/.bashrc` is masked by an empty file: on this machine it runs `pyenv init`,
 * which costs seconds per SSH command, and real servers do not do that. Hosts
 * can also be made to lack python3 the same way (`withoutPython`).
 *
 * Needs root, iproute2, openssh-server and openssh-client. Everything is torn
 * down by `destroy()` (sshd killed, namespaces and veths deleted, files
 * removed), and by an exit hook if the process ends first; `removeStaleFleets`
 * clears what a killed run left behind.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const SSHD = '/usr/sbin/sshd';
const PREFIX = 'capstan-';
const NAME = /^capstan-(\d+)-([0-9a-f]{5})-(\d+)$/;

export interface FleetHost {
  readonly index: number;
  /** `host-1`, `host-2`, ... */
  readonly name: string;
  readonly namespace: string;
  /** The host's address (its end of the veth pair). */
  readonly address: string;
  readonly port: number;
  /** A directory of its own on the shared filesystem, for the Host's `root:`. */
  readonly root: string;
  /** The host's public key blob (SSH wire format). */
  readonly hostKey: Buffer;
  /** Whether its known_hosts entry is hashed. */
  readonly hashed: boolean;
}

export interface Fleet {
  /** Holds the keys, known_hosts and every host's files. */
  readonly dir: string;
  readonly hosts: readonly FleetHost[];
  /** The client's private key, authorised on every host. */
  readonly identityFile: string;
  readonly knownHostsFile: string;
  /** Stops the host's sshd listener (sessions already open survive, as with `systemctl stop ssh`). */
  stopSshd(index: number): Promise<void>;
  /** Starts the host's sshd again, with the same key and config. */
  startSshd(index: number): Promise<void>;
  /** Kills every process in the host's namespace, sessions included: the host is gone. */
  down(index: number): Promise<void>;
  /** A `Host` document for a spec repository. */
  hostDoc(index: number, options?: { name?: string; groups?: readonly string[]; extra?: Record<string, string | number> }): string;
  destroy(): Promise<void>;
}

export interface FleetOptions {
  readonly size: number;
  /** Hash the known_hosts entries of odd hosts (default true). */
  readonly hashSome?: boolean;
  /** Hosts (by index) on which python3 cannot be run, to exercise the POSIX sh paths. */
  readonly withoutPython?: readonly number[];
  /** The port every host's sshd listens on (default 22). */
  readonly port?: number;
  /** sshd's MaxSessions for hosts (by index) that should not have the default of 10. */
  readonly maxSessions?: Readonly<Record<number, number>>;
}

/** Kills what earlier runs left behind: namespaces whose creating process is gone, their veths and temp dirs. */
export async function removeStaleFleets(): Promise<void> {
  const started = Date.now() - process.uptime() * 1000;
  for (const ns of await listNamespaces()) {
    const m = NAME.exec(ns);
    let stale: boolean;
    if (m) {
      stale = !isAlive(Number(m[1]));
    } else {
      // Another naming scheme: only when it was made before this process started.
      const st = await fs.stat(`/run/netns/${ns}`).catch(() => null);
      stale = st !== null && st.mtimeMs < started - 60_000;
    }
    if (!stale) continue;
    await destroyNamespace(ns, m ? `cs${m[2]}r${m[3]}` : null);
  }
  for (const entry of await fs.readdir(os.tmpdir()).catch(() => [] as string[])) {
    const m = /^capstan-fleet-(\d+)-/.exec(entry);
    if (m && !isAlive(Number(m[1]))) await fs.rm(path.join(os.tmpdir(), entry), { recursive: true, force: true });
  }
}

export async function createFleet(options: FleetOptions): Promise<Fleet> {
  if (options.size < 1 || options.size > 63) throw new RangeError('a fleet has 1 to 63 hosts');
  if (!existsSync(SSHD)) throw new Error(`${SSHD} is missing: install openssh-server (.ci/run does)`);
  await removeStaleFleets();
  const id = randomBytes(3).toString('hex').slice(0, 5);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), `capstan-fleet-${process.pid}-${id}-`));
  const subnet = await freeSubnet();
  const namespaces: string[] = [];
  const sshd = new Map<number, ChildProcess>();
  const exitHook = () => {
    for (const ns of namespaces) destroyNamespaceSync(ns);
    try {
      execFileSync('rm', ['-rf', dir]);
    } catch {
      // Best effort: the process is exiting.
    }
  };
  process.once('exit', exitHook);

  const destroy = async () => {
    process.removeListener('exit', exitHook);
    for (const child of sshd.values()) child.kill('SIGKILL');
    await Promise.all(namespaces.map((ns, i) => destroyNamespace(ns, vethName(id, 'r', i))));
    await fs.rm(dir, { recursive: true, force: true });
  };

  try {
    await fs.mkdir('/run/sshd', { recursive: true, mode: 0o755 });
    const identityFile = path.join(dir, 'client_key');
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'capstan-fleet', '-f', identityFile]);
    await fs.copyFile(`${identityFile}.pub`, path.join(dir, 'authorized_keys'));
    const emptyRc = path.join(dir, 'empty.bashrc');
    await fs.writeFile(emptyRc, '');

    const hosts: FleetHost[] = [];
    for (let i = 0; i < options.size; i++) {
      const hostDir = path.join(dir, `host-${i + 1}`);
      const root = path.join(hostDir, 'root');
      await fs.mkdir(root, { recursive: true });
      const key = path.join(hostDir, 'ssh_host_ed25519_key');
      await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `host-${i + 1}`, '-f', key]);
      const hostKey = Buffer.from((await fs.readFile(`${key}.pub`, 'utf8')).split(' ')[1]!, 'base64');
      const address = `${subnet}.${4 * i + 2}`;
      const port = options.port ?? 22;
      await fs.writeFile(
        path.join(hostDir, 'sshd_config'),
        sshdConfig({ address, port, key, authorizedKeys: path.join(dir, 'authorized_keys'), maxSessions: options.maxSessions?.[i] ?? 10 }),
      );
      hosts.push({
        index: i,
        name: `host-${i + 1}`,
        namespace: `${PREFIX}${process.pid}-${id}-${i}`,
        address,
        port,
        root: await fs.realpath(root),
        hostKey,
        hashed: (options.hashSome ?? true) && i % 2 === 1,
      });
    }

    await Promise.all(
      hosts.map(async (h) => {
        const inner = vethName(id, 'n', h.index);
        const outer = vethName(id, 'r', h.index);
        await ip('netns', 'add', h.namespace);
        namespaces.push(h.namespace);
        await ip('link', 'add', outer, 'type', 'veth', 'peer', 'name', inner, 'netns', h.namespace);
        await ip('addr', 'add', `${subnet}.${4 * h.index + 1}/30`, 'dev', outer);
        await ip('link', 'set', outer, 'up');
        await ip('-n', h.namespace, 'addr', 'add', `${h.address}/30`, 'dev', inner);
        await ip('-n', h.namespace, 'link', 'set', inner, 'up');
        await ip('-n', h.namespace, 'link', 'set', 'lo', 'up');
      }),
    );

    const knownHostsFile = path.join(dir, 'known_hosts');
    await fs.writeFile(knownHostsFile, (await Promise.all(hosts.map((h) => knownHostsLine(h, dir)))).join(''));

    const startSshd = async (index: number) => {
      const h = hosts[index]!;
      const config = path.join(dir, `host-${index + 1}`, 'sshd_config');
      const child = spawn(
        'ip',
        ['netns', 'exec', h.namespace, 'sh', '-c', SSHD_LAUNCHER, 'sshd', emptyRc, SSHD, config, options.withoutPython?.includes(index) ? '1' : '0'],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (process.env.CAPSTAN_FLEET_SSHD_LOGLEVEL) process.stderr.write(d);
      });
      sshd.set(index, child);
      await waitForBanner(h.address, h.port, child, () => stderr);
    };
    await Promise.all(hosts.map((h) => startSshd(h.index)));

    const stopSshd = async (index: number) => {
      const child = sshd.get(index);
      sshd.delete(index);
      if (!child || child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    };

    return {
      dir,
      hosts,
      identityFile,
      knownHostsFile,
      stopSshd,
      startSshd,
      async down(index) {
        await stopSshd(index);
        await killNamespace(hosts[index]!.namespace);
      },
      hostDoc(index, docOptions = {}) {
        const h = hosts[index]!;
        const lines = [
          'kind: Host',
          `name: ${docOptions.name ?? h.name}`,
          'spec:',
          '  transport: ssh',
          `  address: ${h.address}`,
          `  port: ${h.port}`,
          '  user: root',
          `  identityFile: ${identityFile}`,
          `  knownHostsFile: ${knownHostsFile}`,
          `  root: ${h.root}`,
          `  groups: [${(docOptions.groups ?? []).join(', ')}]`,
          ...Object.entries(docOptions.extra ?? {}).map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`),
        ];
        return lines.join('\n') + '\n';
      },
      destroy,
    };
  } catch (err) {
    await destroy().catch(() => undefined);
    throw err;
  }
}

/**
 * Runs inside the mount namespace `ip netns exec` gives sshd: masks root's
 * .bashrc and, for a host without python, every python3 binary (with /dev/null,
 * which is not executable), then becomes sshd.
 */
const SSHD_LAUNCHER = `
mount --bind "$1" /root/.bashrc 2>/dev/null
if [ "$4" = 1 ]; then
  for p in /usr/bin/python3* /usr/local/bin/python3*; do
    [ -f "$p" ] && ! [ -L "$p" ] && mount --bind /dev/null "$p"
  done
fi
exec "$2" -D -e -f "$3"
`;

function sshdConfig(o: { address: string; port: number; key: string; authorizedKeys: string; maxSessions: number }): string {
  return [
    `ListenAddress ${o.address}:${o.port}`,
    // Reachable only from inside the namespace: a jump host's own view of itself.
    `ListenAddress 127.0.0.1:${o.port}`,
    `HostKey ${o.key}`,
    'PidFile none',
    `AuthorizedKeysFile ${o.authorizedKeys}`,
    'PermitRootLogin prohibit-password',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    'StrictModes no',
    'UseDNS no',
    'PrintMotd no',
    'PrintLastLog no',
    `MaxSessions ${o.maxSessions}`,
    'MaxStartups 100:30:200',
    `LogLevel ${process.env.CAPSTAN_FLEET_SSHD_LOGLEVEL ?? 'ERROR'}`,
    'Subsystem sftp /usr/lib/openssh/sftp-server',
    '',
  ].join('\n');
}

async function knownHostsLine(h: FleetHost, dir: string): Promise<string> {
  const name = h.port === 22 ? h.address : `[${h.address}]:${h.port}`;
  const plain = `${name} ssh-ed25519 ${h.hostKey.toString('base64')}\n`;
  if (!h.hashed) return plain;
  // Hashed by ssh-keygen itself, so the test reads the real format.
  const file = path.join(dir, `kh-${h.index}`);
  await fs.writeFile(file, plain);
  await run('ssh-keygen', ['-H', '-f', file]);
  const text = await fs.readFile(file, 'utf8');
  await fs.rm(file, { force: true });
  await fs.rm(`${file}.old`, { force: true });
  return text;
}

async function waitForBanner(address: string, port: number, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`sshd on ${address} exited (${child.exitCode}): ${stderr().trim()}`);
    if (await hasBanner(address, port)) return;
    if (Date.now() > deadline) throw new Error(`sshd on ${address}:${port} did not answer within 15 s: ${stderr().trim()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function hasBanner(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: address, port, timeout: 1000 });
    let data = '';
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.on('data', (d) => {
      data += d.toString('latin1');
      if (data.includes('\n')) done(data.startsWith('SSH-2.0-'));
    });
    sock.on('error', () => done(false));
    sock.on('timeout', () => done(false));
  });
}

/** A /24 of 198.18.0.0/15 that no interface of this machine uses: `198.18.x` or `198.19.x`. */
async function freeSubnet(): Promise<string> {
  const { stdout } = await run('ip', ['-o', '-4', 'addr', 'show']);
  for (let tries = 0; tries < 100; tries++) {
    const prefix = `198.${18 + Math.floor(Math.random() * 2)}.${Math.floor(Math.random() * 256)}`;
    if (!stdout.includes(` ${prefix}.`)) return prefix;
  }
  throw new Error('no free /24 left in 198.18.0.0/15');
}

function vethName(id: string, side: 'r' | 'n', index: number): string {
  return `cs${id}${side}${index}`;
}

async function ip(...args: string[]): Promise<void> {
  await run('ip', args);
}

async function listNamespaces(): Promise<string[]> {
  const { stdout } = await run('ip', ['netns', 'list']).catch(() => ({ stdout: '' }));
  return stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(PREFIX));
}

async function killNamespace(ns: string): Promise<void> {
  const { stdout } = await run('ip', ['netns', 'pids', ns]).catch(() => ({ stdout: '' }));
  for (const pid of stdout.split('\n').filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

async function destroyNamespace(ns: string, outerVeth: string | null): Promise<void> {
  await killNamespace(ns);
  // Deleting the namespace deletes its end of the veth pair, and with it the other end.
  await run('ip', ['netns', 'del', ns]).catch(() => undefined);
  if (outerVeth) await run('ip', ['link', 'del', outerVeth]).catch(() => undefined);
}

function destroyNamespaceSync(ns: string): void {
  try {
    const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' });
    for (const pid of pids.split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    execFileSync('ip', ['netns', 'del', ns]);
  } catch {
    // Best effort: the process is exiting.
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
