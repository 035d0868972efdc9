/**
 * The system providers' conformance suite over the SSH transport, against a
 * real sshd in its own network namespace (test/e2e/fleet/netns.ts): the same
 * commands as locally, but through SshTransport. The namespace is the one sshd
 * runs in, so sysctl, nft and ip change it and nothing else; files live under
 * the Host's root on the shared filesystem. The Firewall case is the real thing:
 * the table denies everything but the SSH port Capstan is connected through,
 * and the session goes on working.
 *
 * Not wired into a test file yet: it passes (73 tests, about 18 s), but under
 * CPU load SshTransport loses about 1 command in 150 ("lost while a command
 * ran", reproduced with `exec(['true'])` alone), which makes a suite of a few
 * hundred commands flaky. Once the transport is fixed, enable it with a test
 * file holding one line: `runSystemConformanceOverSsh();`.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createFleet, type Fleet } from '../../../../test/e2e/fleet/netns.js';
import { hostSchema, hostTarget, type HostHandle } from '../../host/host.js';
import { testResource } from '../../host/testing/sandbox.js';
import { runProviderConformance } from '../../testing/conformance.js';
import { execProvider, type ExecLive } from '../exec.js';
import { firewallProvider } from '../firewall.js';
import { packageProvider } from '../package.js';
import { routeProvider } from '../route.js';
import { sysctlProvider, type SysctlLive } from '../sysctl.js';
import { userProvider } from '../user.js';
import { populateAccounts } from './accounts.js';
import { buildDeb, dpkgInRoot } from './debs.js';
import { ctx } from './hosts.js';

let fleet: Promise<Fleet> | undefined;
const getFleet = () => (fleet ??= createFleet({ size: 1, hashSome: false }));

let roots = 0;
/** An ssh Host on the fleet's host, rooted in a fresh directory of it. */
async function connect(prepare?: (root: string) => Promise<void>) {
  const f = await getFleet();
  const h = f.hosts[0]!;
  const root = path.join(h.root, `system-${++roots}`);
  await fs.mkdir(root, { recursive: true });
  await prepare?.(root);
  const spec = hostSchema.parse({ transport: 'ssh', address: h.address, identityFile: f.identityFile, knownHostsFile: f.knownHostsFile, root });
  const handle: HostHandle = await hostTarget.connect(testResource('Host', h.name, spec), ctx);
  return { handle, cleanup: () => handle.close() };
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
    connect: () => connect(),
    create: { family: 'inet', table: 'capstan_ssh', force: false, chains: { input: { hook: 'input', type: 'filter', priority: 0, policy: 'accept', rules: ['tcp dport 8080 drop'] } } },
    update: {
      family: 'inet',
      table: 'capstan_ssh',
      force: false,
      chains: { input: { hook: 'input', type: 'filter', priority: 0, policy: 'drop', rules: ['ct state established,related accept', 'iif lo accept', 'tcp dport 22 accept'] } },
    },
    invalidSpecs: [{ spec: { table: 'capstan_ssh' }, message: /either chains/ }],
    makeDrift: async () => {
      await inHost(['nft', 'add', 'rule', 'inet', 'capstan_ssh', 'input', 'tcp', 'dport', '9999', 'accept']);
    },
    driftedField: 'chains.input',
  });

  describe('Firewall over ssh', () => {
    it('refuses a table that would cut the SSH session, before touching anything', async () => {
      const { handle, cleanup } = await connect();
      try {
        const spec = { family: 'inet' as const, table: 'capstan_lockout', force: false, chains: { input: { hook: 'input' as const, policy: 'drop' as const, rules: ['tcp dport 2222 accept'] } } };
        await expect(firewallProvider.read(handle, [spec], ctx)).rejects.toThrow(/tcp port 22, the port Capstan's SSH connection to this host uses/);
        expect(await inHost(['nft', 'list', 'tables'])).not.toMatch(/capstan_lockout/);
      } finally {
        await cleanup();
      }
    });
  });

  runProviderConformance({
    name: 'Sysctl provider conformance over ssh',
    provider: sysctlProvider,
    connect: () => connect(),
    create: { key: 'net.ipv4.ip_forward', value: '1', persist: true },
    update: { key: 'net.ipv4.ip_forward', value: '0', persist: true },
    invalidSpecs: [{ spec: { key: 'net/ipv4', value: 1 }, message: /dotted/ }],
    makeDrift: async () => {
      await inHost(['sysctl', '-w', 'net.ipv4.ip_forward=1']);
    },
    driftedField: 'value',
    isAbsent: (live: SysctlLive | null) => live === null || live.persisted === null,
  });

  runProviderConformance({
    name: 'Route provider conformance over ssh',
    provider: routeProvider,
    connect: () => connect(),
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
    create: { name: 'capstan-ssh', state: 'present', deb: '/debs/capstan-ssh_1.0-1.deb', version: '1.0-1' },
    update: { name: 'capstan-ssh', state: 'present', deb: '/debs/capstan-ssh_2.0-1.deb', version: '2.0-1' },
    invalidSpecs: [{ spec: { name: 'Bad' }, message: /Debian package name/ }],
    // Someone downgrades the package by hand.
    makeDrift: (handle) => dpkgInRoot(handle.realRoot, ['-i', `${handle.realRoot}/debs/capstan-ssh_1.0-1.deb`]),
    driftedField: 'version',
  });

  runProviderConformance({
    name: 'User provider conformance over ssh',
    provider: userProvider,
    connect: () => connect(populateAccounts),
    create: { name: 'deploy', uid: 3001, shell: '/bin/sh', authorizedKeys: ['ssh-ed25519 AAAAC3Nza deploy@ci'] },
    update: { name: 'deploy', uid: 3001, shell: '/bin/bash', groups: ['nogroup'], authorizedKeys: ['ssh-ed25519 AAAAC3Nzb deploy@ci'] },
    invalidSpecs: [{ spec: { name: 'Deploy' }, message: /lowercase/ }],
    makeDrift: (handle) => fs.chmod(`${handle.realRoot}/home/deploy/.ssh/authorized_keys`, 0o644),
    driftedField: 'authorizedKeys.mode',
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
