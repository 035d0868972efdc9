import * as fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diffExec, displayCommand, execProvider, execSchema, timeoutMs, type ExecLive, type ExecSpec } from './exec.js';
import { Sensitive } from '../../secrets/sensitive.js';
import { converge, ctx, openTestHost, type TestHost } from './testing/hosts.js';

const exec = (input: Record<string, unknown>): ExecSpec => execSchema.parse({ cwd: '/work', ...input });
const allows: ExecLive = { creates: 'absent', onlyIf: null, unless: null, guardsAllow: true };
const blocks: ExecLive = { creates: 'present', onlyIf: null, unless: null, guardsAllow: false };

describe('Exec schema', () => {
  it('normalises timeouts to a duration that parses to itself', () => {
    expect(exec({ command: ['true'], timeout: 90 }).timeout).toBe('90s');
    expect(exec({ command: ['true'], timeout: '1.5m' }).timeout).toBe('90s');
    expect(timeoutMs(exec({ command: ['true'], timeout: '500ms' }))).toBe(500);
    expect(exec({ command: ['true'] }).timeout).toBe('5m');
    expect(execSchema.parse(exec({ command: ['true'], timeout: '2h' })).timeout).toBe('120m');
  });

  it('shows argument arrays quoted as a shell would need them', () => {
    expect(displayCommand(['sh', '-c', "echo 'hi' > /tmp/x"])).toBe(`sh -c 'echo '\\''hi'\\'' > /tmp/x'`);
    expect(displayCommand('systemctl reload nginx')).toBe('systemctl reload nginx');
  });
});

describe('Exec diff', () => {
  it('runs a guarded command when the guards allow, and explains why', () => {
    const spec = exec({ command: ['make', 'install'], creates: '/work/done' });
    expect(diffExec(spec, allows, null)).toEqual({
      action: 'create',
      fields: [{ path: 'run', before: null, after: 'make install' }],
      reason: 'will run: /work/done does not exist',
    });
    expect(diffExec(spec, blocks, null)).toEqual({ action: 'noop', fields: [] });
  });

  it('runs an unguarded command once, then again only when the command changes', () => {
    const spec = exec({ command: ['migrate'] });
    const none: ExecLive = { creates: null, onlyIf: null, unless: null, guardsAllow: true };
    expect(diffExec(spec, none, null).action).toBe('create');
    expect(diffExec(spec, none, spec).action).toBe('noop');
    const changed = diffExec(exec({ command: ['migrate'], environment: { LEVEL: '2' } }), none, spec);
    expect([changed.action, changed.reason]).toEqual(['update', 'will run: the command changed']);
  });

  it('never plans a refreshOnly handler by itself', () => {
    expect(diffExec(exec({ command: ['systemctl', 'reload', 'nginx'], refreshOnly: true }), allows, null)).toEqual({ action: 'noop', fields: [] });
  });
});

describe('Exec on a Host', () => {
  let host: TestHost;

  beforeAll(async () => {
    host = await openTestHost();
    await fs.mkdir(host.real('/work'));
  });
  afterAll(() => host?.cleanup());

  it('kills a command that outlives its timeout, naming the host and the resource', async () => {
    const started = performance.now();
    await expect(converge(execProvider, host.handle, exec({ command: ['sleep', '30'], timeout: '1s' }))).rejects.toThrow(
      /^Exec\/test on Host\/test \(root .*\): sleep 30 timed out after 1s and was killed/,
    );
    expect(performance.now() - started).toBeLessThan(10_000);
  });

  it('kills a guard that hangs, naming the guard and the host', async () => {
    await expect(execProvider.read(host.handle, [exec({ command: ['true'], onlyIf: ['sleep', '30'], timeout: '500ms' })], ctx)).rejects.toThrow(
      /onlyIf of the Exec "true" on Host\/test .* timed out after 500ms/,
    );
  });

  it('reports a failing command with its status and error output', async () => {
    await expect(converge(execProvider, host.handle, exec({ command: 'echo broken >&2; exit 3', shell: true }))).rejects.toThrow(
      /Exec\/test on Host\/test .*: echo broken >&2; exit 3 exited with status 3: broken/,
    );
  });

  it('names a missing working directory and the host, not spawn ENOENT', async () => {
    await expect(converge(execProvider, host.handle, exec({ command: ['/bin/echo', 'hi'], cwd: '/missing' }))).rejects.toThrow(
      /^Exec\/test on Host\/test \(root .*\) could not start \/bin\/echo hi: cannot run \/bin\/echo: working directory \S*\/missing does not exist$/,
    );
  });

  it('runs in the working directory below the root, with its environment, and only with a shell when asked', async () => {
    await converge(execProvider, host.handle, exec({ command: ['sh', '-c', 'printf "%s" "$GREETING" > greeting'], environment: { GREETING: 'hello; rm -rf /' } }));
    expect(await fs.readFile(host.real('/work/greeting'), 'utf8')).toBe('hello; rm -rf /');
    await converge(execProvider, host.handle, exec({ command: 'echo "$0" > shell-name', shell: true }));
    expect((await fs.readFile(host.real('/work/shell-name'), 'utf8')).trim()).toBe('/bin/sh');
  });

  it('gives a secret environment value to the command, and masks it in the output an error shows', async () => {
    const token = new Sensitive('tok-3c1e9f', 'hmac-sha256:1');
    await converge(execProvider, host.handle, exec({ command: ['sh', '-c', 'printf "%s" "$TOKEN" > token'], environment: { TOKEN: token } }));
    expect(await fs.readFile(host.real('/work/token'), 'utf8')).toBe('tok-3c1e9f');
    const failing = exec({ command: ['sh', '-c', 'echo "token=$TOKEN" >&2; exit 3'], environment: { TOKEN: token } });
    const err = await execProvider.apply(host.handle, { action: 'create', address: 'Exec/x', desired: failing, prior: null, live: null }, ctx).catch((e: Error) => e);
    expect((err as Error).message).toMatch(/exited with status 3: token=\(sensitive\)/);
    expect((err as Error).message).not.toContain('tok-3c1e9f');
  });

  it('runs again when a secret of its environment changes (compared by digest, also against the stored spec)', () => {
    const before = exec({ command: ['migrate'], environment: { TOKEN: new Sensitive('a', 'hmac-sha256:1') } });
    const stored = JSON.parse(JSON.stringify(before)) as ExecSpec;
    expect(diffExec(exec({ command: ['migrate'], environment: { TOKEN: new Sensitive('a', 'hmac-sha256:1') } }), null, stored).action).toBe('noop');
    expect(diffExec(exec({ command: ['migrate'], environment: { TOKEN: new Sensitive('b', 'hmac-sha256:2') } }), null, stored).action).toBe('update');
  });

  it('evaluates creates for a whole batch with one inspect, and runs guard commands only when needed', async () => {
    await fs.writeFile(host.real('/work/present'), '');
    host.recorder.reset();
    const lives = await execProvider.read(
      host.handle,
      [
        exec({ command: ['true'], creates: '/work/present', onlyIf: ['false'] }),
        exec({ command: ['true'], creates: '/work/absent' }),
        exec({ command: ['true'], creates: '/work/absent', unless: ['test', '-e', 'present'] }),
      ],
      ctx,
    );
    expect(lives).toEqual([
      { creates: 'present', onlyIf: null, unless: null, guardsAllow: false },
      { creates: 'absent', onlyIf: null, unless: null, guardsAllow: true },
      { creates: 'absent', onlyIf: null, unless: 0, guardsAllow: false },
    ]);
    expect(host.recorder.inspects).toBe(1);
    expect(host.recorder.execs).toEqual([['test', '-e', 'present']]);
  });

  it('refuses a command whose guard still asks for it after it ran', async () => {
    await expect(converge(execProvider, host.handle, exec({ command: ['true'], creates: '/work/never-made' }))).rejects.toThrow(
      /succeeded, but its guards still say it should run \(\/work\/never-made does not exist\)/,
    );
  });

  it('runs a refreshOnly handler when refreshed, and not when its guards say no', async () => {
    const handler = exec({ command: ['sh', '-c', 'echo run >> refreshed'], refreshOnly: true });
    expect((await converge(execProvider, host.handle, handler)).diff.action).toBe('noop');
    await expect(fs.access(host.real('/work/refreshed'))).rejects.toThrow();

    const [live] = await execProvider.read(host.handle, [handler], ctx);
    await execProvider.refresh(host.handle, { address: 'Exec/reload', desired: handler, live: live ?? null, notifiedBy: ['File/nginx-conf'] }, ctx);
    expect(await fs.readFile(host.real('/work/refreshed'), 'utf8')).toBe('run\n');

    const guarded = exec({ command: ['sh', '-c', 'echo run >> refreshed'], refreshOnly: true, creates: '/work/refreshed' });
    await execProvider.refresh(host.handle, { address: 'Exec/reload', desired: guarded, live: null, notifiedBy: ['File/nginx-conf'] }, ctx);
    expect(await fs.readFile(host.real('/work/refreshed'), 'utf8')).toBe('run\n');
  });

  it('says which notifier triggered a handler that fails', async () => {
    const handler = exec({ command: ['false'], refreshOnly: true });
    await expect(
      execProvider.refresh(host.handle, { address: 'Exec/reload', desired: handler, live: null, notifiedBy: ['File/a', 'Package/b'] }, ctx),
    ).rejects.toThrow(/^Exec\/reload on Host\/test .* \(notified by File\/a, Package\/b\): false exited with status 1/);
  });

  it('runs undo on delete, and nothing when there is none', async () => {
    await fs.writeFile(host.real('/work/made'), '');
    const spec = exec({ command: ['touch', 'made'], creates: '/work/made', undo: ['rm', 'made'] });
    expect(await execProvider.apply(host.handle, { action: 'delete', address: 'Exec/x', desired: null, prior: spec, live: null }, ctx)).toBeNull();
    await expect(fs.access(host.real('/work/made'))).rejects.toThrow();
    host.recorder.reset();
    await execProvider.apply(host.handle, { action: 'delete', address: 'Exec/x', desired: null, prior: exec({ command: ['true'] }), live: null }, ctx);
    expect(host.recorder.execs).toEqual([]);
  });
});

describe('Exec notified without refreshOnly', () => {
  let host: TestHost;

  beforeAll(async () => {
    host = await openTestHost();
    await fs.mkdir(host.real('/work'));
  });
  afterAll(() => host?.cleanup());

  it('runs when notified while its guards allow, and not once they say no', async () => {
    const spec = exec({ command: ['sh', '-c', 'echo run >> log; touch stop'], unless: ['test', '-e', 'stop'] });
    const notification = { address: 'Exec/x', desired: spec, live: null, notifiedBy: ['File/a'] };
    expect(await execProvider.refresh(host.handle, notification, ctx)).toEqual({ creates: null, onlyIf: null, unless: 0, guardsAllow: false });
    await execProvider.refresh(host.handle, notification, ctx);
    expect(await fs.readFile(host.real('/work/log'), 'utf8')).toBe('run\n');
  });
});
