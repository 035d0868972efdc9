import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ProviderError } from '../provider.js';
import { ProviderRegistry } from '../registry.js';
import { hostSchema, hostTarget } from './host.js';
import { hostProviders } from './index.js';
import { LocalTransport } from '../../transport/local.js';
import { ctx, testResource } from './testing/sandbox.js';

const messages = (input: unknown): string =>
  hostSchema.safeParse(input).error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('\n') ?? '';

describe('Host schema', () => {
  it('fills defaults for a local host', () => {
    expect(hostSchema.parse({ transport: 'local' })).toEqual({ transport: 'local', root: '/', groups: [], vars: {} });
    expect(hostSchema.parse({ transport: 'local', root: '/srv/sandbox/web-1/', groups: ['web'], vars: { a: 1 } })).toEqual({
      transport: 'local',
      root: '/srv/sandbox/web-1',
      groups: ['web'],
      vars: { a: 1 },
    });
  });

  it('fills defaults for an ssh host and accepts its connection fields', () => {
    expect(hostSchema.parse({ transport: 'ssh', address: '10.20.0.2' })).toEqual({
      transport: 'ssh',
      address: '10.20.0.2',
      port: 22,
      user: 'root',
      root: '/',
      groups: [],
      vars: {},
    });
    const full = hostSchema.parse({
      transport: 'ssh',
      address: 'web-2.example.com',
      port: 2222,
      user: 'deploy',
      identityFile: 'keys/deploy',
      knownHostsFile: 'known_hosts',
      jump: { address: 'bastion.example.com' },
      groups: ['web'],
      vars: { listen_port: 8080 },
    });
    expect(full).toMatchObject({ port: 2222, user: 'deploy', jump: { address: 'bastion.example.com', port: 22, user: 'root' } });
  });

  it.each([
    [{}, /transport must be "local" or "ssh"/],
    [{ transport: 'telnet' }, /transport must be "local" or "ssh"/],
    [{ transport: 'ssh' }, /address: address must be a host name/],
    [{ transport: 'ssh', address: '-oProxyCommand=sh' }, /not starting with "-"/],
    [{ transport: 'ssh', address: 'h', port: 70000 }, /port: port must be from 1 to 65535/],
    [{ transport: 'ssh', address: 'h', user: 'root; rm' }, /user: user must be a login name/],
    [{ transport: 'ssh', address: 'h', jump: { address: '-x' } }, /jump.address/],
    [{ transport: 'local', address: '10.0.0.1' }, /address/],
    [{ transport: 'local', root: 'relative' }, /root: root must be absolute/],
    [{ transport: 'local', root: '/srv/../etc' }, /root must not contain "\.\." segments/],
    [{ transport: 'local', groups: ['Web'] }, /groups.0: group names are lowercase/],
  ])('refuses %j', (input, message) => {
    expect(messages(input)).toMatch(message);
  });

  it('gives the groups a host belongs to', () => {
    expect(hostTarget.groupsOf(hostSchema.parse({ transport: 'local', groups: ['web', 'eu'] }))).toEqual(['web', 'eu']);
  });
});

describe('Host connect', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fs.realpath(await fs.mkdtemp(join(tmpdir(), 'capstan-hostc-')));
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('opens a local host without creating its root', async () => {
    const root = join(dir, 'missing', 'root');
    const handle = await hostTarget.connect(testResource('Host', 'web-1', hostSchema.parse({ transport: 'local', root })), ctx);
    try {
      expect(handle).toMatchObject({ address: 'Host/web-1', hostName: 'web-1', root, realRoot: root });
      expect(handle.transport).toBeInstanceOf(LocalTransport);
      expect(await fs.readdir(dir)).toEqual([]);
    } finally {
      await handle.close();
    }
  });

  it('resolves a root reached through a symbolic link', async () => {
    await fs.mkdir(join(dir, 'real'));
    await fs.symlink(join(dir, 'real'), join(dir, 'alias'));
    const spec = hostSchema.parse({ transport: 'local', root: join(dir, 'alias') });
    const handle = await hostTarget.connect(testResource('Host', 'web-1', spec), ctx);
    expect(handle.realRoot).toBe(join(dir, 'real'));
    await handle.close();
  });

  it('opens an ssh Host with key files relative to the repository, naming the host when it cannot', async () => {
    const spec = hostSchema.parse({ transport: 'ssh', address: '198.18.0.2', identityFile: 'keys/deploy', knownHostsFile: 'known_hosts' });
    const resource = testResource('Host', 'web-2', spec);
    const noRepo = hostTarget.connect(resource, ctx);
    await expect(noRepo).rejects.toThrow(ProviderError);
    await expect(noRepo).rejects.toThrow(/cannot connect to Host\/web-2: identityFile keys\/deploy is relative to the repository/);
    // With the repository known, the files are looked for there (and are missing here), before any connection.
    await fs.writeFile(join(dir, 'known_hosts'), '');
    const inRepo = hostTarget.connect(resource, { ...ctx, repoDir: dir });
    await expect(inRepo).rejects.toThrow(ProviderError);
    await expect(inRepo).rejects.toThrow(`cannot read the identityFile ${join(dir, 'keys/deploy')} for Host/web-2 (ssh root@198.18.0.2:22)`);
  });

  it('refuses an ssh Host with neither a key nor an agent, naming it', async () => {
    const saved = process.env.SSH_AUTH_SOCK;
    delete process.env.SSH_AUTH_SOCK;
    try {
      await fs.writeFile(join(dir, 'known_hosts'), '');
      const spec = hostSchema.parse({ transport: 'ssh', address: '198.18.0.2', knownHostsFile: join(dir, 'known_hosts') });
      await expect(hostTarget.connect(testResource('Host', 'web-3', spec), ctx)).rejects.toThrow(
        /no key to log in to Host\/web-3 .*no identityFile and no SSH agent/,
      );
    } finally {
      if (saved !== undefined) process.env.SSH_AUTH_SOCK = saved;
    }
  });
});

describe('hostProviders', () => {
  it('registers the Host target and the kinds that live on it', () => {
    const registry = new ProviderRegistry(hostProviders);
    expect(registry.kinds()).toEqual(['Directory', 'File', 'Host', 'Symlink']);
    expect(registry.target('Host')).toBe(hostTarget);
    for (const kind of ['Directory', 'File', 'Symlink']) expect(registry.resource(kind)?.targetKind).toBe('Host');
  });
});
