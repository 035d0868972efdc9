/**
 * Sysctl through the built CLI on a local Host, without touching this
 * machine's kernel settings: the CLI runs under `ip netns exec` in a network
 * namespace of its own, so the per-namespace keys it sets (net.ipv4.*) change
 * that namespace only, and the Host has a sandbox `root:`, so the sysctl.d
 * files go there. `sysctl -w` writes the namespace's /proc/sys: the running
 * value is never under the root, only the file is. `afterAll` deletes the
 * namespace.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { assertBuilt, CAPSTAN, hostDoc, ROOT, workspace, type Workspace } from './harness.js';

const run = promisify(execFile);

// Each test runs the CLI several times; on a loaded 2-core machine one call can take seconds.
vi.setConfig({ testTimeout: 240_000 });

const NS = `capst-sysctl-${randomBytes(3).toString('hex')}`;
let ws: Workspace | undefined;

beforeAll(async () => {
  assertBuilt();
  await run('ip', ['netns', 'add', NS]);
});
afterAll(async () => {
  await ws?.cleanup();
  await run('ip', ['netns', 'delete', NS]);
});

/** The built CLI inside the namespace. */
async function capstanInNs(args: string[]): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  return run('ip', ['netns', 'exec', NS, 'node', CAPSTAN, ...args], { cwd: ROOT, env: { ...process.env, NO_COLOR: '1' } }).then(
    (r) => ({ exitCode: 0, stdout: r.stdout, stderr: r.stderr }),
    (err: { code?: number; stdout?: string; stderr?: string }) => ({ exitCode: err.code ?? -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' }),
  );
}

const inNs = async (key: string) => (await run('ip', ['netns', 'exec', NS, 'sysctl', '-n', key])).stdout.trim();
const onMachine = async (key: string) => (await run('sysctl', ['-n', key])).stdout.trim();

describe('Sysctl through the built CLI in a network namespace, on a Host with a sandbox root', () => {
  it('sets per-namespace keys and writes their sysctl.d files under the root; file: keeps other lines; persistOnly leaves the running value', async () => {
    const w = (ws = await workspace());
    const machineBefore = { forward: await onMachine('net.ipv4.ip_forward'), ttl: await onMachine('net.ipv4.ip_default_ttl') };
    expect(await inNs('net.ipv4.conf.all.forwarding')).toBe('0');
    expect(await inNs('net.ipv4.ip_default_ttl')).toBe('64');
    await w.write('host.yaml', hostDoc('box', w.root));
    // A hand-written line in the shared file stays.
    await w.write('seed.yaml', 'kind: File\nname: seed\ntarget: box\nspec: { path: /etc/sysctl.d/60-net.conf, content: "net.ipv4.tcp_syncookies = 1\\n", force: false }\n');
    await w.write(
      'stack.yaml',
      [
        'kind: Sysctl\nname: forwarding\ntarget: box\ndependsOn: [File/seed]\nspec: { key: net.ipv4.conf.all.forwarding, value: 1, file: /etc/sysctl.d/60-net.conf }\n',
        'kind: Sysctl\nname: ttl\ntarget: box\nspec: { key: net.ipv4.ip_default_ttl, value: 77, persistOnly: true }\n',
      ].join('---\n'),
    );

    const planned = await capstanInNs(['plan', w.repo, '--state', w.state]);
    expect(planned.exitCode).toBe(0);
    expect(planned.stdout).toContain('Plan: 3 to create');

    const applied = await capstanInNs(['apply', w.repo, '--state', w.state, '--yes']);
    expect(applied.stderr).toBe('');
    expect(applied.exitCode).toBe(0);

    // Set in the namespace (ip_forward is the same switch as conf.all.forwarding); persistOnly left alone.
    expect(await inNs('net.ipv4.conf.all.forwarding')).toBe('1');
    expect(await inNs('net.ipv4.ip_forward')).toBe('1');
    expect(await inNs('net.ipv4.ip_default_ttl')).toBe('64');
    // Both files under the root; the shared one keeps its other line.
    const shared = await readFile(path.join(w.root, 'etc/sysctl.d/60-net.conf'), 'utf8');
    expect(shared).toMatch(/^net\.ipv4\.tcp_syncookies = 1$/m);
    expect(shared).toMatch(/^net\.ipv4\.conf\.all\.forwarding = 1$/m);
    expect(await readFile(path.join(w.root, 'etc/sysctl.d/99-capstan-net.ipv4.ip_default_ttl.conf'), 'utf8')).toMatch(/^net\.ipv4\.ip_default_ttl = 77$/m);
    // The machine's own values and its /proc/sys never changed.
    expect({ forward: await onMachine('net.ipv4.ip_forward'), ttl: await onMachine('net.ipv4.ip_default_ttl') }).toEqual(machineBefore);

    const again = await capstanInNs(['plan', w.repo, '--state', w.state, '--detailed-exitcode']);
    expect(again.stdout).toContain('No changes');
    expect(again.exitCode).toBe(0);

    // Someone resets the running value in the namespace: drift, healed by the next apply.
    await run('ip', ['netns', 'exec', NS, 'sysctl', '-w', 'net.ipv4.conf.all.forwarding=0']);
    const drift = await capstanInNs(['plan', w.repo, '--state', w.state]);
    expect(drift.stdout).toMatch(/Sysctl\/forwarding[\s\S]*value/);
    expect(drift.stdout).toContain('Plan: 0 to create, 1 to update');
    expect((await capstanInNs(['apply', w.repo, '--state', w.state, '--yes'])).exitCode).toBe(0);
    expect(await inNs('net.ipv4.conf.all.forwarding')).toBe('1');
    expect(await inNs('net.ipv4.ip_default_ttl')).toBe('64');
  });
});
