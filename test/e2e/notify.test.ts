/**
 * `notify:` end to end, through the built CLI: a File notifies a refreshOnly
 * Exec on two local hosts of a group; the command runs once per host after the
 * file changed, never when nothing changed, and a failed handler runs next time.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, capstan, hostDoc, workspace, type Workspace } from './harness.js';

let ws: Workspace;
beforeAll(assertBuilt);
afterEach(async () => ws?.cleanup());

async function writeStack(config: string, handlerCommand?: string): Promise<void> {
  const log = path.join(ws.root, 'reloads.log');
  const command = handlerCommand ?? `echo reloaded >> ${log}`;
  await ws.write('hosts.yaml', [hostDoc('web-1', path.join(ws.root, 'web-1'), ['web']), hostDoc('web-2', path.join(ws.root, 'web-2'), ['web'])].join('---\n'));
  await ws.write(
    'app.yaml',
    `kind: File
name: conf
target: group:web
notify: [Exec/reload]
spec: { path: /app.conf, content: ${JSON.stringify(config)} }
---
kind: Exec
name: reload
target: group:web
spec:
  command: ${JSON.stringify(command)}
  shell: true
  refreshOnly: true
`,
  );
}

async function reloads(): Promise<string[]> {
  try {
    return (await readFile(path.join(ws.root, 'reloads.log'), 'utf8')).split('\n').filter(Boolean).sort();
  } catch {
    return [];
  }
}

describe('notify: handlers', () => {
  it('runs the handler once per host after its file changed, and not again when nothing changed', async () => {
    ws = await workspace();
    await writeStack('v1\n');
    const first = await capstan(['apply', ws.repo, '--state', ws.state, '--yes']);
    expect(first.stderr).toBe('');
    expect(first.exitCode).toBe(0);
    expect(await reloads()).toHaveLength(2);

    const again = await capstan(['plan', ws.repo, '--state', ws.state, '--detailed-exitcode']);
    expect(again.stdout).toContain('No changes');
    expect(again.exitCode).toBe(0);

    await writeStack('v2\n');
    const plan = await capstan(['plan', ws.repo, '--state', ws.state]);
    expect(plan.stdout).toContain('# Exec/reload@web-1 will be refreshed (notified by File/conf@web-1)');
    expect(plan.stdout).toContain('notifies Exec/reload@web-2');
    const second = await capstan(['apply', ws.repo, '--state', ws.state, '--yes']);
    expect(second.exitCode).toBe(0);
    expect(await reloads()).toHaveLength(4);
    expect((await capstan(['plan', ws.repo, '--state', ws.state, '--detailed-exitcode'])).exitCode).toBe(0);
  }, 120_000);

  it('a handler that fails stays pending and runs on the next apply, though its file no longer changes', async () => {
    ws = await workspace();
    await writeStack('v1\n');
    expect((await capstan(['apply', ws.repo, '--state', ws.state, '--yes'])).exitCode).toBe(0);

    await writeStack('v2\n', 'exit 3');
    const failed = await capstan(['apply', ws.repo, '--state', ws.state, '--yes']);
    expect(failed.exitCode).toBe(1);
    expect(failed.stderr + failed.stdout).toMatch(/Exec\/reload@web-1/);

    await writeStack('v2\n');
    const plan = await capstan(['plan', ws.repo, '--state', ws.state, '--json']);
    const changes = (JSON.parse(plan.stdout) as { changes: { address: string; action: string; refresh?: boolean; reason?: string }[] }).changes;
    expect(changes.filter((c) => c.action !== 'noop').map((c) => c.address)).toEqual(['Exec/reload@web-1', 'Exec/reload@web-2']);
    expect(changes.find((c) => c.address === 'Exec/reload@web-1')!.reason).toMatch(/notified by File\/conf@web-1 in run \d+, not yet refreshed/);
    const before = (await reloads()).length;
    expect((await capstan(['apply', ws.repo, '--state', ws.state, '--yes'])).exitCode).toBe(0);
    expect((await reloads()).length).toBe(before + 2);
  }, 120_000);
});
