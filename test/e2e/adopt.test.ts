/** A file that is already there is adopted, not created; removed from the spec, it is forgotten unless `--prune adopted`. */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, capstan, fileDoc, hostDoc, workspace, type Workspace } from './harness.js';

let ws: Workspace;
beforeAll(assertBuilt);
afterEach(async () => ws?.cleanup());

describe('adopting existing files', () => {
  it('plans "adopt", records it as adopted, forgets it when removed from the spec, deletes it only with --prune adopted', async () => {
    ws = await workspace();
    await mkdir(path.join(ws.root, 'etc'), { recursive: true });
    await writeFile(path.join(ws.root, 'etc/motd'), 'hello\n');
    await ws.write('hosts.yaml', hostDoc('web-1', ws.root));
    await ws.write('motd.yaml', fileDoc('motd', 'web-1', { path: '/etc/motd', content: 'hello\n' }));
    await ws.write('issue.yaml', fileDoc('issue', 'web-1', { path: '/etc/issue', content: 'made\n' }));

    const plan = await capstan(['plan', ws.repo, '--state', ws.state]);
    expect(plan.stdout).toMatch(/^ {2}adopt File\/motd \S*\/etc\/motd on Host\/web-1$/m);
    expect(plan.stdout).toContain('1 to adopt.');
    const json = JSON.parse((await capstan(['plan', ws.repo, '--state', ws.state, '--json'])).stdout) as { changes: { address: string; action: string; adopt?: boolean }[] };
    expect(json.changes.find((c) => c.address === 'File/motd')).toMatchObject({ action: 'noop', adopt: true });
    expect((await capstan(['apply', ws.repo, '--state', ws.state, '--yes'])).exitCode).toBe(0);

    await ws.remove('motd.yaml');
    await ws.remove('issue.yaml');
    await ws.write('other.yaml', fileDoc('other', 'web-1', { path: '/etc/other', content: 'x\n' }));
    const removed = await capstan(['plan', ws.repo, '--state', ws.state]);
    expect(removed.stdout).toMatch(/^ {2}forget File\/motd .* on Host\/web-1$/m);
    expect(removed.stdout).toMatch(/^ {2}- File\/issue /m);
    const pruned = await capstan(['plan', ws.repo, '--state', ws.state, '--prune', 'adopted', '--json']);
    expect((JSON.parse(pruned.stdout) as { changes: { address: string; action: string }[] }).changes.find((c) => c.address === 'File/motd')?.action).toBe('delete');
    expect((await capstan(['plan', ws.repo, '--state', ws.state, '--prune', 'everything'])).stderr).toContain('--prune takes "adopted"');

    const applied = await capstan(['apply', ws.repo, '--state', ws.state, '--yes', '--allow-mass-delete']);
    expect(applied.exitCode).toBe(0);
    expect(await readFile(path.join(ws.root, 'etc/motd'), 'utf8')).toBe('hello\n');
    const after = await capstan(['plan', ws.repo, '--state', ws.state]);
    expect(after.stdout).toContain('No changes');
  }, 60_000);
});
