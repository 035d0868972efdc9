import * as fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diffSysctl, editSharedFile, parseSysctlOutput, persistPath, sysctlProvider, sysctlSchema, type SysctlLive, type SysctlSpec } from './sysctl.js';
import { testResource } from '../host/testing/sandbox.js';
import { namespaceExists } from './testing/netns.js';
import { converge, ctx, openTestHost, remove, schemaErrors, type TestHost } from './testing/hosts.js';

const spec = (input: Record<string, unknown>): SysctlSpec => sysctlSchema.parse({ key: 'net.ipv4.ip_forward', ...input });
const live = (overrides: Partial<SysctlLive> = {}): SysctlLive => ({
  key: 'net.ipv4.ip_forward',
  value: '1',
  persisted: '1',
  persistedExact: true,
  ...overrides,
});

describe('Sysctl schema and parsing', () => {
  it('takes numbers and strings, and collapses whitespace the way the kernel prints it', () => {
    expect(spec({ value: 1 })).toEqual({ key: 'net.ipv4.ip_forward', value: '1', persist: true, persistOnly: false });
    expect(spec({ key: 'net.ipv4.ip_local_port_range', value: ' 32768\t 60999 ' }).value).toBe('32768 60999');
  });

  it('refuses a key that is not a dotted name', () => {
    expect(schemaErrors(sysctlSchema, { key: 'net..ipv4', value: 1 })).toMatch(/dotted kernel parameter name/);
    expect(schemaErrors(sysctlSchema, { key: 'kernel', value: 1 })).toMatch(/dotted kernel parameter name/);
  });

  it('parses `key = value` lines, tabs included', () => {
    expect([...parseSysctlOutput('net.ipv4.ip_forward = 1\nnet.ipv4.ip_local_port_range = 32768\t60999\n').entries()]).toEqual([
      ['net.ipv4.ip_forward', '1'],
      ['net.ipv4.ip_local_port_range', '32768 60999'],
    ]);
  });
});

describe('Sysctl shared file', () => {
  it('replaces the first line that sets the key, drops later ones, appends when none, and keeps the rest', () => {
    const text = '# net\nnet.ipv4.ip_forward=0\nvm.swappiness = 10\n-net/ipv4/ip_forward = 0\n';
    expect(editSharedFile(text, 'net.ipv4.ip_forward', '1')).toBe('# net\nnet.ipv4.ip_forward = 1\nvm.swappiness = 10\n');
    expect(editSharedFile('vm.swappiness = 10\n', 'net.ipv4.ip_forward', '1')).toBe('vm.swappiness = 10\nnet.ipv4.ip_forward = 1\n');
    expect(editSharedFile(text, 'net.ipv4.ip_forward', null)).toBe('# net\nvm.swappiness = 10\n');
    expect(editSharedFile('', 'net.ipv4.ip_forward', '1')).toBe('net.ipv4.ip_forward = 1\n');
  });

  it('orders Sysctls that share a file by key, so one rewrites it at a time', () => {
    const mk = (name: string, input: Record<string, unknown>) => testResource('Sysctl', name, spec({ value: 1, ...input }));
    const a = mk('a', { key: 'net.ipv4.ip_forward', file: '/etc/sysctl.d/60-net.conf' });
    const b = mk('b', { key: 'net.ipv4.conf.all.rp_filter', file: '/etc/sysctl.d/60-net.conf' });
    const c = mk('c', { key: 'net.core.somaxconn' });
    expect(sysctlProvider.implicitDependencies!(a, [a, b, c])).toEqual(['Sysctl/b']);
    expect(sysctlProvider.implicitDependencies!(b, [a, b, c])).toEqual([]);
  });
});

describe('Sysctl diff', () => {
  it('leaves the running value alone with persistOnly', () => {
    expect(diffSysctl(spec({ value: 1, persistOnly: true }), live({ value: '0' }), null).action).toBe('noop');
  });

  it('creates the file when nothing of Capstan exists yet, even if the value is already right', () => {
    expect(diffSysctl(spec({ value: 1 }), live({ persisted: null, persistedExact: false }), null)).toEqual({
      action: 'create',
      fields: [{ path: 'persisted', before: null, after: '1' }],
    });
  });

  it('removes the file when persist is turned off', () => {
    expect(diffSysctl(spec({ value: 1, persist: false }), live(), spec({ value: 1 }))).toEqual({
      action: 'update',
      fields: [{ path: 'persisted', before: '1', after: null }],
    });
  });

  it('sees a hand-edited file as drift even when it sets the same value', () => {
    expect(diffSysctl(spec({ value: 1 }), live({ persistedExact: false }), null).fields.map((f) => f.path)).toEqual(['persisted']);
  });
});

describe('Sysctl in a network namespace', () => {
  let host: TestHost;

  beforeAll(async () => {
    host = await openTestHost({ netns: 'sysctl-unit' });
  });
  afterAll(async () => {
    const name = host?.namespace?.name;
    await host?.cleanup();
    if (name) expect(namespaceExists(name), 'the namespace is removed').toBe(false);
  });

  it('reads every key of a batch with one sysctl call and one inspect', async () => {
    const lives = await sysctlProvider.read(
      host.handle,
      [spec({ value: 1 }), spec({ key: 'net.ipv4.ip_local_port_range', value: '1024 65000' }), spec({ value: 0 })],
      ctx,
    );
    expect(lives.map((l) => l?.key)).toEqual(['net.ipv4.ip_forward', 'net.ipv4.ip_local_port_range', 'net.ipv4.ip_forward']);
    expect(host.recorder.execs).toEqual([['sysctl', '--', 'net.ipv4.ip_forward', 'net.ipv4.ip_local_port_range']]);
    expect(host.recorder.inspects).toBe(1);
  });

  it('names the host and the key when the kernel has no such parameter', async () => {
    await expect(sysctlProvider.read(host.handle, [spec({ key: 'net.ipv4.no_such_thing', value: 1 })], ctx)).rejects.toThrow(
      /unknown kernel parameter net\.ipv4\.no_such_thing on Host\/test \(root .*\): sysctl: cannot stat/,
    );
  });

  it('sets a multi-value parameter, persists it, and then plans a no-op', async () => {
    const desired = spec({ key: 'net.ipv4.ip_local_port_range', value: '20000 30000' });
    const { live: after } = await converge(sysctlProvider, host.handle, desired);
    expect(after).toEqual({ key: 'net.ipv4.ip_local_port_range', value: '20000 30000', persisted: '20000 30000', persistedExact: true });
    expect(await fs.readFile(host.real(persistPath(desired.key)), 'utf8')).toMatch(/^net\.ipv4\.ip_local_port_range = 20000 30000$/m);
    expect((await converge(sysctlProvider, host.handle, desired, desired)).diff.action).toBe('noop');
  });

  it('passes on the kernel refusing a value, naming key, value and host', async () => {
    await expect(converge(sysctlProvider, host.handle, spec({ key: 'net.ipv4.ip_local_port_range', value: '30000 20000' }))).rejects.toThrow(
      /setting net\.ipv4\.ip_local_port_range to "30000 20000" \(Sysctl\/test\) on Host\/test .* failed: sysctl exited with status \d+/,
    );
  });

  it('with persist: false, sets the value and removes the file', async () => {
    const desired = spec({ key: 'net.ipv4.ip_local_port_range', value: '20000 30000', persist: false });
    const { diff } = await converge(sysctlProvider, host.handle, desired, spec({ key: 'net.ipv4.ip_local_port_range', value: '20000 30000' }));
    expect(diff.fields.map((f) => f.path)).toEqual(['persisted']);
    await expect(fs.access(host.real(persistPath(desired.key)))).rejects.toThrow();
  });

  it('leaves the running value alone on delete, removing only the file', async () => {
    const desired = spec({ value: 1 });
    await converge(sysctlProvider, host.handle, desired);
    expect(await remove(sysctlProvider, host.handle, desired)).toBeNull();
    const [after] = await sysctlProvider.read(host.handle, [desired], ctx);
    expect(after).toMatchObject({ value: '1', persisted: null });
  });

  it('keeps the value in a file of the user\'s choice, managing only its line, and takes only that line away on delete', async () => {
    const file = '/etc/sysctl.d/60-net.conf';
    await fs.mkdir(host.real('/etc/sysctl.d'), { recursive: true });
    await fs.writeFile(host.real(file), '# hand-written\nnet.core.somaxconn = 1024\nnet.ipv4.ip_forward=0\n', { mode: 0o640 });
    const desired = spec({ value: 1, file });
    const { diff, live: after } = await converge(sysctlProvider, host.handle, desired);
    expect(diff.fields).toContainEqual({ path: 'persisted', before: '0', after: '1' });
    expect(after).toMatchObject({ value: '1', persisted: '1', persistedExact: true });
    expect(await fs.readFile(host.real(file), 'utf8')).toBe('# hand-written\nnet.core.somaxconn = 1024\nnet.ipv4.ip_forward = 1\n');
    expect((await fs.stat(host.real(file))).mode & 0o777).toBe(0o640);
    await expect(fs.access(host.real(persistPath(desired.key)))).rejects.toThrow();
    expect((await converge(sysctlProvider, host.handle, desired, desired)).diff.action).toBe('noop');
    await remove(sysctlProvider, host.handle, desired);
    expect(await fs.readFile(host.real(file), 'utf8')).toBe('# hand-written\nnet.core.somaxconn = 1024\n');
  });

  it('moves the setting when the file changes', async () => {
    const desired = spec({ value: 1, file: '/etc/sysctl.d/61-net.conf' });
    const { diff } = await converge(sysctlProvider, host.handle, desired, spec({ value: 1 }));
    expect(diff.action).toBe('replace');
    expect(diff.fields).toContainEqual({ path: 'file', before: persistPath(desired.key), after: '/etc/sysctl.d/61-net.conf' });
    await expect(fs.access(host.real(persistPath(desired.key)))).rejects.toThrow();
    await remove(sysctlProvider, host.handle, desired);
    await expect(fs.access(host.real('/etc/sysctl.d/61-net.conf'))).rejects.toThrow();
  });

  it('writes only the file with persistOnly: the running value stays', async () => {
    host.namespace!.run(['sysctl', '-w', 'net.ipv4.ip_forward=0']);
    const desired = spec({ value: 1, persistOnly: true });
    const { live: after } = await converge(sysctlProvider, host.handle, desired);
    expect(after).toMatchObject({ value: '0', persisted: '1' });
    expect(host.namespace!.run(['sysctl', '-n', 'net.ipv4.ip_forward']).trim()).toBe('0');
    expect((await converge(sysctlProvider, host.handle, desired, desired)).diff.action).toBe('noop');
  });
});
