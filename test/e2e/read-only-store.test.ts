/** history and drift only read the store: they work when the database sits on a read-only filesystem. */
import { execa } from 'execa';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, capstan, fileDoc, hostDoc, workspace, type Workspace } from './harness.js';

let ws: Workspace;
let mounted: string | undefined;
beforeAll(assertBuilt);
afterEach(async () => {
  if (mounted) await execa('umount', [mounted]).catch(() => undefined);
  mounted = undefined;
  await ws?.cleanup();
});

describe('a read-only state store', () => {
  it('history and drift read it; apply says it cannot write', async () => {
    ws = await workspace();
    await ws.write('hosts.yaml', hostDoc('web-1', ws.root));
    await ws.write('motd.yaml', fileDoc('motd', 'web-1', { path: '/etc/motd', content: 'hello\n' }));
    const stateDir = path.join(path.dirname(ws.repo), 'state');
    await mkdir(stateDir);
    expect((await capstan(['apply', ws.repo, '--state', `sqlite:${stateDir}/state.db`, '--yes'])).exitCode).toBe(0);

    // root ignores file modes: a read-only bind mount is a real read-only filesystem.
    const ro = path.join(path.dirname(ws.repo), 'state-ro');
    await mkdir(ro);
    await execa('mount', ['--bind', stateDir, ro]);
    mounted = ro;
    await execa('mount', ['-o', 'remount,ro,bind', ro]);
    const state = `sqlite:${ro}/state.db`;

    const history = await capstan(['history', '--state', state]);
    expect(history.stderr).toBe('');
    expect(history.stdout).toMatch(/^#1 .* succeeded /m);
    expect(history.exitCode).toBe(0);
    const drift = await capstan(['drift', ws.repo, '--state', state]);
    expect(drift.stdout).toContain('Drift: 0 drifted, 1 in sync');
    expect(drift.exitCode).toBe(0);
    const apply = await capstan(['apply', ws.repo, '--state', state, '--yes']);
    expect(apply.exitCode).toBe(1);
    expect(apply.stderr).toMatch(/^Error: cannot open the state database .*state-ro\/state\.db/m);
  }, 60_000);
});
