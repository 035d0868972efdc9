/**
 * The system providers' conformance suite over the SSH transport, against a
 * real sshd in its own network namespace (test/e2e/fleet/netns.ts): the same
 * commands as locally, but through SshTransport. The namespace is the one sshd
 * runs in, so sysctl, nft and ip change it and nothing else; files live under
 * the Host's root on the shared filesystem. sshd listens on port 2222, not 22,
 * so the Firewall's lockout check must take the port from the Host.
 *
 * Clean-up: each suite's `cleanup` closes its connection, undoes in the
 * namespace what its resource may have left there (a table, a route, a
 * sysctl), behind the providers' back, and removes its root (accounts,
 * packages, files); `afterAll` then destroys the fleet (sshd killed, namespace
 * and veth deleted, its directory removed), and the fleet's exit hook or the
 * next run's `removeStaleFleets` does it if the process dies first.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createFleet, type Fleet } from '../../../../test/e2e/fleet/netns.js';
import { SshTransport } from '../../../transport/ssh.js';
import { fileProvider } from '../../host/file.js';
import { hostSchema, hostTarget, type HostHandle } from '../../host/host.js';
import { testResource } from '../../host/testing/sandbox.js';
import { runProviderConformance } from '../../testing/conformance.js';
import { execProvider, type ExecLive } from '../exec.js';
import { firewallProvider, type FirewallSpec } from '../firewall.js';
import { groupProvider } from '../group.js';
import { packageProvider } from '../package.js';
import { routeProvider } from '../route.js';
import { sysctlProvider, type SysctlLive } from '../sysctl.js';
import { userProvider } from '../user.js';
import { populateAccounts } from './accounts.js';
import { buildDeb, dpkgInRoot } from './debs.js';
import { ctx, converge, remove } from './hosts.js';

/** Not sshd's default: a guess of 22 would be wrong. */
const SSH_PORT = 2222;

let fleet: Promise<Fleet> | undefined;
const getFleet = () => (fleet ??= createFleet({ size: 1, hashSome: false, port: SSH_PORT }));

let roots = 0;
/**
 * An ssh Host on the fleet's host, rooted in a fresh directory of it. Its
 * cleanup closes the connection, runs `undo` in the host's namespace (errors
 * ignored: there may be nothing to undo) and removes the root.
 */
async function connect(prepare?: (root: string) => Promise<void>, undo: readonly (readonly string[])[] = []) {
  const f = await getFleet();
  const h = f.hosts[0]!;
  const root = path.join(h.root, `system-${++roots}`);
  await fs.mkdir(root, { recursive: true });
  const removeRoot = () => fs.rm(root, { recursive: true, force: true });
  let handle: HostHandle;
  try {
    await prepare?.(root);
    const spec = hostSchema.parse({ transport: 'ssh', address: h.address, port: h.port, identityFile: f.identityFile, knownHostsFile: f.knownHostsFile, root });
    handle = await hostTarget.connect(testResource('Host', h.name, spec), ctx);
  } catch (err) {
    await removeRoot();
    throw err;
  }
  return {
    handle,
    async cleanup() {
      try {
        await handle.close();
        for (const argv of undo) await inHost(argv).catch(() => undefined);
      } finally {
        await removeRoot();
      }
    },
  };
}

/** Runs a command in the fleet host's namespace, behind the providers' back. */
async function inHost(argv: readonly string[]): Promise<string> {
  const h = (await getFleet()).hosts[0]!;
  return execFileSync('ip', ['netns', 'exec', h.namespace, ...argv], { encoding: 'utf8', stdio: 'pipe' });
}

/** Registers the suites (call it at the top level of a test file). */
export function runSystemConformanceOverSsh(): void {
  afterAll(async () => {
    await (await fleet?.catch(() => undefined))?.destroy();
  });

  runProviderConformance({
    name: 'Firewall provider conformance over ssh',
    provider: firewallProvider,
    connect: () => connect(undefined, [['nft', 'delete', 'table', 'inet', 'capstan_ssh']]),
    create: { family: 'inet', table: 'capstan_ssh', force: false, chains: { input: { hook: 'input', type: 'filter', priority: 0, policy: 'accept', rules: ['tcp dport 8080 drop'] } } },
    update: {
      family: 'inet',
      table: 'capstan_ssh',
      force: false,
      chains: {
        input: { hook: 'input', type: 'filter', priority: 0, policy: 'drop', rules: ['ct state established,related accept', 'iif lo accept', `tcp dport ${SSH_PORT} accept`] },
      },
    },
    invalidSpecs: [{ spec: { table: 'capstan_ssh' }, message: /either chains/ }],
    makeDrift: async () => {
      await inHost(['nft', 'add', 'rule', 'inet', 'capstan_ssh', 'input', 'tcp', 'dport', '9999', 'accept']);
    },
    driftedField: 'chains.input',
  });

  describe('Firewall over ssh', () => {
    /** Accepts what is established and port 22 (sshd's default), and drops every other new connection. */
    const lockout = (force: boolean): FirewallSpec => ({
      family: 'inet',
      table: 'capstan_lockout',
      force,
      chains: { input: { hook: 'input', type: 'filter', priority: 0, policy: 'drop', rules: ['ct state established,related accept', 'iif lo accept', 'tcp dport 22 accept'] } },
    });

    /** A fresh connection to the host's sshd, with a short connect timeout and no retry. */
    const freshConnection = async () => {
      const f = await getFleet();
      const h = f.hosts[0]!;
      const t = new SshTransport({ host: h.address, port: h.port, identityFile: f.identityFile, knownHostsFile: f.knownHostsFile, connectTimeoutMs: 1_500, connectAttempts: 1 });
      try {
        await t.connect();
      } finally {
        await t.close();
      }
    };

    it('refuses a table that drops the port of the SSH connection (the Host\'s, not 22), before touching anything', async () => {
      const { handle, cleanup } = await connect(undefined, [['nft', 'delete', 'table', 'inet', 'capstan_lockout']]);
      try {
        expect(handle.sshPort).toBe(SSH_PORT);
        await expect(firewallProvider.read(handle, [lockout(false)], ctx)).rejects.toThrow(
          new RegExp(`chain input has policy drop and no rule that accepts new connections to tcp port ${SSH_PORT}, the port Capstan's SSH connection to this host uses.*force: true`),
        );
        // The same check guards apply, whatever the plan said.
        await expect(
          firewallProvider.apply(handle, { action: 'create', address: 'Firewall/lockout', desired: lockout(false), prior: null, live: null }, ctx),
        ).rejects.toThrow(/refusing Firewall table inet capstan_lockout/);
        expect(await inHost(['nft', 'list', 'tables'])).not.toMatch(/capstan_lockout/);
      } finally {
        await cleanup();
      }
    });

    it('applies it with force: true: the open session goes on, new connections to the port are dropped', async () => {
      const { handle, cleanup } = await connect(undefined, [['nft', 'delete', 'table', 'inet', 'capstan_lockout']]);
      try {
        await converge(firewallProvider, handle, lockout(true));
        expect(await inHost(['nft', 'list', 'table', 'inet', 'capstan_lockout'])).toMatch(/policy drop;/);
        await expect(freshConnection()).rejects.toThrow(/no answer within the connect timeout/);
        // Capstan's own connection was established before: it still works, and takes the table away.
        expect((await handle.transport.exec(['echo', 'still here'], { timeoutMs: 10_000 })).stdout).toBe('still here\n');
        await remove(firewallProvider, handle, lockout(true));
        expect(await inHost(['nft', 'list', 'tables'])).not.toMatch(/capstan_lockout/);
        await freshConnection();
      } finally {
        await cleanup();
      }
    });
  });

  runProviderConformance({
    name: 'Sysctl provider conformance over ssh',
    provider: sysctlProvider,
    // A file of the user's choice, which holds another key too.
    connect: () =>
      connect(
        async (root) => {
          await fs.mkdir(path.join(root, 'etc/sysctl.d'), { recursive: true });
          await fs.writeFile(path.join(root, 'etc/sysctl.d/60-net.conf'), '# hand-written\nnet.ipv4.conf.all.rp_filter = 1\n');
        },
        [['sysctl', '-w', 'net.ipv4.ip_forward=0']],
      ),
    create: { key: 'net.ipv4.ip_forward', value: '1', persist: true, persistOnly: false, file: '/etc/sysctl.d/60-net.conf' },
    update: { key: 'net.ipv4.ip_forward', value: '0', persist: true, persistOnly: false, file: '/etc/sysctl.d/60-net.conf' },
    invalidSpecs: [{ spec: { key: 'net/ipv4', value: 1 }, message: /dotted/ }],
    makeDrift: async () => {
      await inHost(['sysctl', '-w', 'net.ipv4.ip_forward=1']);
    },
    driftedField: 'value',
    isAbsent: (live: SysctlLive | null) => live === null || live.persisted === null,
  });

  describe('Sysctl over ssh', () => {
    it('writes only the file with persistOnly, leaving the running value', async () => {
      const { handle, cleanup } = await connect(undefined, [['sysctl', '-w', 'net.ipv4.ip_forward=0']]);
      try {
        await inHost(['sysctl', '-w', 'net.ipv4.ip_forward=0']);
        const spec = { key: 'net.ipv4.ip_forward', value: '1', persist: true, persistOnly: true };
        const { diff } = await converge(sysctlProvider, handle, spec);
        expect(diff).toEqual({ action: 'create', fields: [{ path: 'persisted', before: null, after: '1' }] });
        expect(await fs.readFile(`${handle.realRoot}/etc/sysctl.d/99-capstan-net.ipv4.ip_forward.conf`, 'utf8')).toMatch(/^net\.ipv4\.ip_forward = 1$/m);
        expect((await inHost(['sysctl', '-n', 'net.ipv4.ip_forward'])).trim()).toBe('0');
        expect((await converge(sysctlProvider, handle, spec)).diff.action).toBe('noop');
      } finally {
        await cleanup();
      }
    });
  });

  runProviderConformance({
    name: 'Route provider conformance over ssh',
    provider: routeProvider,
    connect: () => connect(undefined, [['ip', 'route', 'flush', 'table', '100']]),
    create: { destination: '198.19.251.0/24', dev: 'lo', table: 100, type: 'unicast', family: 'ipv4' },
    update: { destination: '198.19.251.0/24', type: 'blackhole', table: 100, family: 'ipv4' },
    invalidSpecs: [{ spec: { destination: '198.19.251.1/24', dev: 'lo' }, message: /host bits/ }],
    makeDrift: async () => {
      await inHost(['ip', 'route', 'replace', 'unreachable', '198.19.251.0/24', 'table', '100']);
    },
    driftedField: 'type',
  });

  runProviderConformance({
    name: 'Package provider conformance over ssh',
    provider: packageProvider,
    connect: () =>
      connect(async (root) => {
        await fs.mkdir(path.join(root, 'debs'));
        await buildDeb(path.join(root, 'debs'), { name: 'capstan-ssh', version: '1.0-1' });
        await buildDeb(path.join(root, 'debs'), { name: 'capstan-ssh', version: '2.0-1' });
      }),
    create: { name: 'capstan-ssh', state: 'present', deb: '/debs/capstan-ssh_1.0-1.deb', version: '1.0-1', purge: false, updateCache: false, cacheValidTime: 0 },
    update: { name: 'capstan-ssh', state: 'present', deb: '/debs/capstan-ssh_2.0-1.deb', version: '2.0-1', purge: false, updateCache: false, cacheValidTime: 0 },
    invalidSpecs: [{ spec: { name: 'Bad' }, message: /Debian package name/ }],
    // Someone downgrades the package by hand.
    makeDrift: (handle) => dpkgInRoot(handle.realRoot, ['-i', `${handle.realRoot}/debs/capstan-ssh_1.0-1.deb`]),
    driftedField: 'version',
  });

  describe('Package over ssh', () => {
    it('purges the config files a removal left behind, with dpkg --purge', async () => {
      const { handle, cleanup } = await connect(async (root) => {
        await fs.mkdir(path.join(root, 'debs'));
        await buildDeb(path.join(root, 'debs'), { name: 'capstan-conf', version: '1.0-1', files: { '/etc/capstan-conf.conf': 'x=1\n' }, conffiles: ['/etc/capstan-conf.conf'] });
      });
      try {
        const base = { name: 'capstan-conf', updateCache: false, cacheValidTime: 0 };
        await converge(packageProvider, handle, { ...base, state: 'present', purge: false, deb: '/debs/capstan-conf_1.0-1.deb' });
        await converge(packageProvider, handle, { ...base, state: 'absent', purge: false });
        await fs.access(`${handle.realRoot}/etc/capstan-conf.conf`);
        const { diff } = await converge(packageProvider, handle, { ...base, state: 'absent', purge: true });
        expect(diff.fields).toEqual([{ path: 'state', before: 'config-files', after: 'purged' }]);
        await expect(fs.access(`${handle.realRoot}/etc/capstan-conf.conf`)).rejects.toThrow();
      } finally {
        await cleanup();
      }
    });
  });

  runProviderConformance({
    name: 'User provider conformance over ssh',
    provider: userProvider,
    connect: () => connect(populateAccounts),
    create: { name: 'deploy', uid: 3001, shell: '/bin/sh', appendGroups: false, removeHome: false, createHome: false },
    // The options of issue 19 too: a gid in groups (added, others kept), a crypt hash through chpasswd, expiry, lock, a home created for the existing user.
    update: {
      name: 'deploy',
      uid: 3001,
      shell: '/bin/bash',
      groups: [65534],
      appendGroups: true,
      removeHome: true,
      createHome: true,
      password: '$6$capstan1$qX/0le/cOU3Wl4sI8MYdFYtLmLyYubj8GTJXCqXggv/dFHoVCbFbWWpW08k9K2GGSgqs5gE4Fu3KOrX6Vr4FL.',
      expires: '2031-01-01',
      locked: true,
      authorizedKeys: ['ssh-ed25519 AAAAC3Nzb deploy@ci'],
    },
    invalidSpecs: [{ spec: { name: 'Deploy' }, message: /lowercase/ }],
    makeDrift: (handle) => fs.chmod(`${handle.realRoot}/home/deploy/.ssh/authorized_keys`, 0o644),
    driftedField: 'authorizedKeys.mode',
  });

  describe('A File owned by a User and Group of the Host\'s root, over ssh', () => {
    it('chowns it to the ids of <root>/etc/passwd and <root>/etc/group, which the fleet host itself lacks, and reads back as converged', async () => {
      const { handle, cleanup } = await connect(populateAccounts);
      try {
        await converge(groupProvider, handle, groupProvider.schema.parse({ name: 'capst-ssh-grp', gid: 43_210 }));
        await converge(userProvider, handle, userProvider.schema.parse({ name: 'capst-ssh-own', uid: 43_211, group: 'capst-ssh-grp', createHome: false }));
        const spec = fileProvider.schema.parse({ path: '/etc/owned.conf', content: 'x=1\n', mode: '0640', owner: 'capst-ssh-own', group: 'capst-ssh-grp' });
        const { diff } = await converge(fileProvider, handle, spec);
        expect(diff.action).toBe('create');
        const st = await fs.stat(`${handle.realRoot}/etc/owned.conf`);
        expect({ uid: st.uid, gid: st.gid }).toEqual({ uid: 43_211, gid: 43_210 });
        expect((await converge(fileProvider, handle, spec)).diff.action).toBe('noop');
      } finally {
        await cleanup();
      }
    });
  });

  runProviderConformance({
    name: 'Group provider conformance over ssh',
    provider: groupProvider,
    connect: () => connect(populateAccounts),
    create: { name: 'deployers', nonUnique: false, force: false },
    // A gid nogroup already has: the group is then the primary group of nobody, and deleting it needs force.
    update: { name: 'deployers', gid: 65534, nonUnique: true, force: true },
    invalidSpecs: [{ spec: { name: 'Deployers' }, message: /lowercase/ }],
    makeDrift: async (handle) => {
      const file = `${handle.realRoot}/etc/group`;
      await fs.writeFile(file, (await fs.readFile(file, 'utf8')).replace(/^deployers:x:65534:/m, 'deployers:x:3600:'));
    },
    driftedField: 'gid',
  });

  runProviderConformance({
    name: 'Exec provider conformance over ssh',
    provider: execProvider,
    connect: () => connect((root) => fs.mkdir(path.join(root, 'work'))),
    create: { command: ['touch', 'done-1'], cwd: '/work', creates: '/work/done-1', undo: ['rm', '-f', 'done-1'], shell: false, timeout: '10s', refreshOnly: false },
    update: {
      command: "touch done-2 && echo \"it's $HOME\" > note",
      cwd: '/work',
      creates: '/work/done-2',
      undo: 'rm -f done-1 done-2',
      shell: true,
      timeout: '10s',
      refreshOnly: false,
    },
    invalidSpecs: [{ spec: { command: 'true' }, message: /shell: true/ }],
    makeDrift: (handle) => fs.rm(`${handle.realRoot}/work/done-2`),
    driftedField: 'run',
    isAbsent: (live: ExecLive | null) => live === null || live.guardsAllow,
  });
}
