import * as fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diffPackage, packageProvider, packageSchema, parsePolicy, versionMatches, type PackageLive, type PackageSpec } from './package.js';
import { buildDeb, dpkgInRoot } from './testing/debs.js';
import { converge, ctx, openTestHost, remove, schemaErrors, scriptedHost, type TestHost } from './testing/hosts.js';

const spec = (input: Record<string, unknown>): PackageSpec => packageSchema.parse(input);
const installed = (overrides: Partial<PackageLive> = {}): PackageLive => ({
  name: 'nginx',
  version: '1.22.1-9',
  architecture: 'amd64',
  status: 'installed',
  ...overrides,
});

describe('Package schema', () => {
  it('defaults to present and accepts arch-qualified names and epochs', () => {
    expect(spec({ name: 'libc6:amd64', version: '1:2.36-9' })).toEqual({ name: 'libc6:amd64', state: 'present', version: '1:2.36-9', purge: false, updateCache: false, cacheValidTime: 0 });
    expect(spec({ name: 'nginx', updateCache: true, cacheValidTime: '6h' }).cacheValidTime).toBe(21_600);
  });

  it.each([
    [{ name: 'nginx', state: 'absent', deb: '/x.deb' }, /deb makes no sense for a package that must be absent/],
    [{ name: 'n' }, /Debian package name/],
    [{ name: 'nginx', version: '-1' }, /Debian version/],
    [{}, /name must be a package name/],
  ])('refuses %j', (input, message) => {
    expect(schemaErrors(packageSchema, input)).toMatch(message);
  });
});

describe('apt-cache policy and version patterns', () => {
  it('reads the candidate and the version table of each package', () => {
    const out = [
      'nginx:',
      '  Installed: 1.22.1-9',
      '  Candidate: 1.24.0-1',
      '  Version table:',
      '     1.24.0-1 500',
      '        500 file:/srv/repo ./ Packages',
      ' *** 1.22.1-9 100',
      '        100 /var/lib/dpkg/status',
      'ghost:',
      '  Installed: (none)',
      '  Candidate: (none)',
      '  Version table:',
      '',
    ].join('\n');
    expect([...parsePolicy(out)]).toEqual([
      ['nginx', { candidate: '1.24.0-1', versions: ['1.24.0-1', '1.22.1-9'] }],
      ['ghost', { candidate: null, versions: [] }],
    ]);
  });

  it('matches "*" as any run of characters, and nothing else as special', () => {
    expect(versionMatches('2.*', '2.4.1-1')).toBe(true);
    expect(versionMatches('2.*', '12.0-1')).toBe(false);
    expect(versionMatches('1:2.*', '1:2.0')).toBe(true);
    expect(versionMatches('2.1+*', '2.10')).toBe(false);
  });
});

describe('Package diff', () => {
  it('updates to the version apt resolved for latest or a pattern, and purges what only left config files', () => {
    expect(diffPackage(spec({ name: 'nginx', state: 'latest' }), installed({ resolvedVersion: '1.24.0-1' }), null)).toEqual({
      action: 'update',
      fields: [{ path: 'version', before: '1.22.1-9', after: '1.24.0-1' }],
    });
    expect(diffPackage(spec({ name: 'nginx', version: '1.*' }), installed({ resolvedVersion: '1.22.1-9' }), null).action).toBe('noop');
    expect(diffPackage(spec({ name: 'nginx', state: 'absent', purge: true }), installed({ status: 'config-files' }), null).fields).toEqual([
      { path: 'state', before: 'config-files', after: 'purged' },
    ]);
  });

  it('creates a missing package, naming the version it will get', () => {
    expect(diffPackage(spec({ name: 'nginx', version: '1.22.1-9' }), null, null)).toEqual({
      action: 'create',
      fields: [{ path: 'version', before: null, after: '1.22.1-9' }],
    });
    expect(diffPackage(spec({ name: 'nginx' }), null, null).fields[0]?.after).toBe('candidate');
  });

  it('is a no-op for any installed version when none is pinned, and updates a pinned one', () => {
    expect(diffPackage(spec({ name: 'nginx' }), installed(), null).action).toBe('noop');
    expect(diffPackage(spec({ name: 'nginx', version: '1.24.0-1' }), installed(), null)).toEqual({
      action: 'update',
      fields: [{ path: 'version', before: '1.22.1-9', after: '1.24.0-1' }],
    });
  });

  it('reinstalls a package a failed run left half-configured', () => {
    const diff = diffPackage(spec({ name: 'nginx' }), installed({ status: 'half-configured' }), null);
    expect(diff.action).toBe('update');
    expect(diff.reason).toMatch(/half-configured/);
  });

  it('removes a package that must be absent, and leaves a missing one alone', () => {
    expect(diffPackage(spec({ name: 'telnet', state: 'absent' }), installed({ name: 'telnet' }), null)).toEqual({
      action: 'update',
      fields: [{ path: 'state', before: 'present', after: 'absent' }],
    });
    expect(diffPackage(spec({ name: 'telnet', state: 'absent' }), null, null).action).toBe('noop');
  });

  it('replaces when the package name changes', () => {
    const diff = diffPackage(spec({ name: 'nginx-full' }), null, spec({ name: 'nginx' }));
    expect(diff.action).toBe('replace');
    expect(diff.reason).toMatch(/nginx, which is removed/);
  });
});

describe('Package on a Host with a root (dpkg --root)', () => {
  let host: TestHost;

  beforeAll(async () => {
    host = await openTestHost();
    await fs.mkdir(host.real('/debs'));
    await buildDeb(host.real('/debs'), { name: 'capstan-lib', version: '1.0-1' });
    await buildDeb(host.real('/debs'), { name: 'capstan-app', version: '1.0-1', depends: 'capstan-lib' });
    await buildDeb(host.real('/debs'), { name: 'capstan-other', version: '3.0-1' });
    await buildDeb(host.real('/debs'), { name: 'capstan-up', version: '1.0-1' });
    await buildDeb(host.real('/debs'), { name: 'capstan-up', version: '2.0-1' });
  });
  afterAll(() => host?.cleanup());

  it('installs into the root, not the machine, and reads a whole batch with one dpkg-query', async () => {
    await converge(packageProvider, host.handle, spec({ name: 'capstan-lib', deb: '/debs/capstan-lib_1.0-1.deb' }));
    expect(await fs.readFile(host.real('/usr/share/capstan-lib/version'), 'utf8')).toBe('1.0-1\n');
    await expect(fs.access('/usr/share/capstan-lib')).rejects.toThrow();

    host.recorder.reset();
    const lives = await packageProvider.read(host.handle, [spec({ name: 'capstan-lib' }), spec({ name: 'capstan-app' }), spec({ name: 'capstan-nope' })], ctx);
    expect(lives).toEqual([{ name: 'capstan-lib', version: '1.0-1', architecture: 'all', status: 'installed' }, null, null]);
    expect(host.recorder.execs).toHaveLength(1);
    expect(host.recorder.execs[0]).toEqual(expect.arrayContaining(['dpkg-query', `--admindir=${host.root}/var/lib/dpkg`, 'capstan-lib', 'capstan-app', 'capstan-nope']));
  });

  it('takes the version of a deb: file as the desired one: a newer .deb is an upgrade', async () => {
    await converge(packageProvider, host.handle, spec({ name: 'capstan-up', deb: '/debs/capstan-up_1.0-1.deb' }));
    const { diff, live } = await converge(packageProvider, host.handle, spec({ name: 'capstan-up', deb: '/debs/capstan-up_2.0-1.deb' }));
    expect(diff).toEqual({ action: 'update', fields: [{ path: 'version', before: '1.0-1', after: '2.0-1' }] });
    expect(live).toMatchObject({ version: '2.0-1', resolvedVersion: '2.0-1' });
    expect((await converge(packageProvider, host.handle, spec({ name: 'capstan-up', deb: '/debs/capstan-up_2.0-1.deb' }))).diff.action).toBe('noop');
  });

  it('refuses apt-get on a Host with a root, naming the host and the package', async () => {
    await expect(converge(packageProvider, host.handle, spec({ name: 'capstan-nope' }))).rejects.toThrow(
      /cannot install package capstan-nope \(Package\/test\) on Host\/test \(root .*\): apt-get would install into the real system.*set deb:/,
    );
  });

  it('names the host and the package when the .deb file does not exist', async () => {
    await expect(converge(packageProvider, host.handle, spec({ name: 'capstan-nope', deb: '/debs/capstan-nope_1.0.deb' }))).rejects.toThrow(
      /cannot install package capstan-nope \(Package\/test\) on Host\/test .*: \/debs\/capstan-nope_1\.0\.deb does not exist/,
    );
  });

  it('refuses a .deb that holds another package or another version', async () => {
    await expect(converge(packageProvider, host.handle, spec({ name: 'capstan-app', deb: '/debs/capstan-other_3.0-1.deb' }))).rejects.toThrow(
      /capstan-other_3\.0-1\.deb holds package capstan-other, not capstan-app/,
    );
    await expect(
      converge(packageProvider, host.handle, spec({ name: 'capstan-other', version: '4.0-1', deb: '/debs/capstan-other_3.0-1.deb' })),
    ).rejects.toThrow(/holds version 3\.0-1/);
  });

  it('refuses to remove a package others depend on, and says which', async () => {
    await converge(packageProvider, host.handle, spec({ name: 'capstan-app', deb: '/debs/capstan-app_1.0-1.deb' }));
    await expect(remove(packageProvider, host.handle, spec({ name: 'capstan-lib' }))).rejects.toThrow(
      /removing package capstan-lib \(Package\/test\) on Host\/test .*capstan-app depends on capstan-lib/s,
    );
    await remove(packageProvider, host.handle, spec({ name: 'capstan-app' }));
    expect(await remove(packageProvider, host.handle, spec({ name: 'capstan-lib' }))).toBeNull();
    const lives = await packageProvider.read(host.handle, [spec({ name: 'capstan-lib' }), spec({ name: 'capstan-app' })], ctx);
    expect(lives).toEqual([null, null]);
  });

  it('refuses latest and patterns on a Host with a root, which never uses apt', async () => {
    await expect(packageProvider.read(host.handle, [spec({ name: 'capstan-lib', state: 'latest' })], ctx)).rejects.toThrow(
      /cannot resolve package capstan-lib on Host\/test .*need apt, which a Host with a root does not use/,
    );
  });

  it('purges a package whose config files were left behind by a removal', async () => {
    await buildDeb(host.real('/debs'), { name: 'capstan-conf', version: '1.0-1', files: { '/etc/capstan-conf.conf': 'x=1\n' }, conffiles: ['/etc/capstan-conf.conf'] });
    await dpkgInRoot(host.root, ['-i', host.real('/debs/capstan-conf_1.0-1.deb')]);
    await dpkgInRoot(host.root, ['--remove', 'capstan-conf']);
    expect((await converge(packageProvider, host.handle, spec({ name: 'capstan-conf', state: 'absent' }))).diff.action).toBe('noop');
    const { diff, live } = await converge(packageProvider, host.handle, spec({ name: 'capstan-conf', state: 'absent', purge: true }));
    expect(diff.fields).toEqual([{ path: 'state', before: 'config-files', after: 'purged' }]);
    expect(live).toBeNull();
    await expect(fs.access(host.real('/etc/capstan-conf.conf'))).rejects.toThrow();
  });

  it('makes a present package absent with state: absent, and then plans no-op', async () => {
    await dpkgInRoot(host.root, ['-i', host.real('/debs/capstan-other_3.0-1.deb')]);
    const { diff } = await converge(packageProvider, host.handle, spec({ name: 'capstan-other', state: 'absent' }));
    expect(diff.action).toBe('update');
    expect((await converge(packageProvider, host.handle, spec({ name: 'capstan-other', state: 'absent' }))).diff.action).toBe('noop');
  });
});

describe('Package through apt-get on a Host with root /', () => {
  it('installs the pinned version without recommends, non-interactively, never removing other packages', async () => {
    let installedNow = false;
    const { handle, transport } = scriptedHost((argv) => {
      if (argv[0] === 'apt-get') {
        installedNow = true;
        return {};
      }
      return installedNow ? { stdout: 'nginx\tnginx\t1.22.1-9\tamd64\tii \n' } : { exitCode: 1, stderr: 'dpkg-query: no packages found matching nginx\n' };
    });
    const { live } = await converge(packageProvider, handle, spec({ name: 'nginx', version: '1.22.1-9' }));
    expect(live).toEqual(installed());
    const apt = transport.execs.find((e) => e.argv[0] === 'apt-get')!;
    expect(apt.argv).toEqual(expect.arrayContaining(['install', '-y', '--no-install-recommends', '--no-remove', 'nginx=1.22.1-9']));
    expect(apt.argv.indexOf('--')).toBe(apt.argv.length - 2);
    expect(apt.options.env).toEqual({ DEBIAN_FRONTEND: 'noninteractive' });
  });

  it('says a package that apt does not know does not exist, naming the host and the package', async () => {
    const { handle } = scriptedHost((argv) =>
      argv[0] === 'apt-get'
        ? { exitCode: 100, stderr: 'E: Unable to locate package nginxx\n' }
        : { exitCode: 1, stderr: 'dpkg-query: no packages found matching nginxx\n' },
    );
    await expect(converge(packageProvider, handle, spec({ name: 'nginxx' }))).rejects.toThrow(
      /package nginxx \(Package\/test\) does not exist on Host\/fake: apt knows no such package/,
    );
  });

  it('names a version apt cannot install', async () => {
    const { handle } = scriptedHost((argv) =>
      argv[0] === 'apt-get'
        ? { exitCode: 100, stderr: "E: Version '9.9' for 'nginx' was not found\n" }
        : { exitCode: 1, stderr: 'dpkg-query: no packages found matching nginx\n' },
    );
    await expect(converge(packageProvider, handle, spec({ name: 'nginx', version: '9.9' }))).rejects.toThrow(/nginx .* has no version 9\.9 on Host\/fake/);
  });

  it('refuses a removal that would take dependent packages with it', async () => {
    const { handle, transport } = scriptedHost((argv) =>
      argv[0] === 'apt-get'
        ? { stdout: 'Remv nginx [1.22.1-9]\nRemv nginx-extras [1.22.1-9]\n' }
        : { stdout: 'nginx\tnginx\t1.22.1-9\tamd64\tii \n' },
    );
    await expect(remove(packageProvider, handle, spec({ name: 'nginx' }))).rejects.toThrow(
      /refusing to remove package nginx .* apt-get would also remove nginx-extras/,
    );
    expect(transport.execs.filter((e) => e.argv.includes('remove') && !e.argv.includes('-s'))).toEqual([]);
  });

  it('reports a dpkg-query failure that is not "not installed"', async () => {
    const { handle } = scriptedHost(() => ({ exitCode: 2, stderr: 'dpkg-query: error: parsing file /var/lib/dpkg/status near line 3\n' }));
    await expect(packageProvider.read(handle, [spec({ name: 'nginx' })], ctx)).rejects.toThrow(/reading packages on Host\/fake failed: .*parsing file/);
  });
});
