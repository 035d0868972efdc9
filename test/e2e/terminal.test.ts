/**
 * What `apply`, `drift`, `plan` and `history` show a person at a terminal,
 * through the built CLI: results as they finish under a bar (forced with
 * --progress, and under a real pseudo-terminal with script(1)), plain lines
 * elsewhere, drift's content diff, the plan's words in the apply summary, and
 * rollbacks marked in the history.
 */
import { execa } from 'execa';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, CAPSTAN, capstan, fileDoc, git, hostDoc, workspace, type Workspace } from './harness.js';

let ws: Workspace;
beforeAll(assertBuilt);
afterEach(async () => ws?.cleanup());

const ESCAPE = /\u001b\[|\r/;

async function stack(extra = ''): Promise<void> {
  await mkdir(ws.root, { recursive: true }); // an Exec runs in the root: it must exist
  await ws.write('hosts.yaml', hostDoc('h', ws.root));
  await ws.write('files.yaml', [fileDoc('a', 'h', { path: '/a.txt', content: 'one\ntwo\nthree\n' }), fileDoc('b', 'h', { path: '/b.txt', content: 'b\n' })].join('---\n') + extra);
}

/** An Exec that takes a while, so that the bar is drawn at least once. */
const SLOW = `---\nkind: Exec\nname: slow\ntarget: h\nspec:\n  command: [sleep, "1"]\n`;

describe('apply progress', () => {
  it('--progress: each result with its duration on stderr, under a bar; stdout keeps the plan and the summary', async () => {
    ws = await workspace();
    await stack(SLOW);
    const r = await capstan(['apply', ws.repo, '--state', ws.state, '--yes', '--progress']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/File\/a: created \(\d+ms\)\n/);
    expect(r.stderr).toMatch(/File\/b: created \(\d+ms\)\n/);
    expect(r.stderr).toMatch(/Exec\/slow: created \((\d+ms|1\.\ds)\)\n/);
    // The bar, redrawn in place: `[####----] 2/3  running: Exec/slow`.
    expect(r.stderr).toMatch(/\r\u001b\[K\[[#-]{20}\] [0-3]\/3/);
    expect(r.stderr).toMatch(/running: Exec\/slow/);
    expect(r.stdout).not.toMatch(/: created \(/);
    expect(r.stdout).toMatch(/Apply complete \(run 1\): 3 created, 0 updated, 0 replaced, 0 deleted, 0 failed, 0 skipped\./);
  }, 60_000);

  it('under a pseudo-terminal (script -qc) without any flag, the same display', async () => {
    ws = await workspace();
    await stack(SLOW);
    const command = [process.execPath, CAPSTAN, 'apply', ws.repo, '--state', ws.state, '--yes'].map((a) => `'${a}'`).join(' ');
    const r = await execa('script', ['-qec', command, '/dev/null'], { reject: false, env: { NO_COLOR: '1' }, stdin: 'ignore' });
    expect(r.exitCode, r.stdout).toBe(0);
    expect(r.stdout).toMatch(/File\/a: created \(\d+ms\)\r?\n/);
    expect(r.stdout).toMatch(/\r\u001b\[K\[[#-]{20}\] [0-3]\/3/);
  }, 60_000);

  it('not on a terminal: one plain line per result on stdout, no escape codes', async () => {
    ws = await workspace();
    await stack(SLOW);
    const r = await capstan(['apply', ws.repo, '--state', ws.state, '--yes']);
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/\nApplying 3 change\(s\) \(run 1\)\n(.+: created \(.+\)\n){3}/);
    expect(r.stdout + r.stderr).not.toMatch(ESCAPE);
  }, 60_000);
});

describe('drift', () => {
  it('shows the content diff like plan does', async () => {
    ws = await workspace();
    await stack();
    expect((await capstan(['apply', ws.repo, '--state', ws.state, '--yes'])).exitCode).toBe(0);
    await writeFile(path.join(ws.root, 'a.txt'), 'one\nTWO\nthree\n');
    const r = await capstan(['drift', ws.repo, '--state', ws.state]);
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toContain('~ File/a: content drifted\n');
    expect(r.stdout).toMatch(/\n +~ content:\n +@@ -1,3 \+1,3 @@\n +one\n +-TWO\n +\+two\n +three\n/);
    expect(r.stdout).not.toMatch(ESCAPE);
  });
});

describe('the plan and the apply use the same words', () => {
  it('an Exec without undo leaving the spec is forgotten, not deleted, in the plan and in the apply', async () => {
    ws = await workspace();
    await stack(`---\nkind: Exec\nname: once\ntarget: h\nspec:\n  command: ["true"]\n`);
    expect((await capstan(['apply', ws.repo, '--state', ws.state, '--yes'])).exitCode).toBe(0);
    await stack();
    const plan = await capstan(['plan', ws.repo, '--state', ws.state]);
    expect(plan.stdout).toContain('# Exec/once will be forgotten, not deleted (removed from the spec; deleting it would change nothing on the target');
    expect(plan.stdout).toContain('Plan: 0 to create, 0 to update, 0 to replace, 0 to delete, 1 to forget.');
    const apply = await capstan(['apply', ws.repo, '--state', ws.state, '--yes']);
    expect(apply.exitCode).toBe(0);
    expect(apply.stdout).toContain('0 created, 0 updated, 0 replaced, 0 deleted, 1 forgotten, 0 failed, 0 skipped.');
    expect((await capstan(['plan', ws.repo, '--state', ws.state])).stdout).toContain('No changes.');
  });

  it('a notified handler is "to refresh" in the plan and "refreshed" in the apply, not "updated"', async () => {
    ws = await workspace();
    const write = (content: string) =>
      ws.write('app.yaml', `${hostDoc('h', ws.root)}---\nkind: File\nname: conf\ntarget: h\nnotify: [Exec/reload]\nspec: { path: /app.conf, content: "${content}" }\n---\nkind: Exec\nname: reload\ntarget: h\nspec:\n  command: ["true"]\n  refreshOnly: true\n`);
    await mkdir(ws.root, { recursive: true });
    await write('v1');
    expect((await capstan(['apply', ws.repo, '--state', ws.state, '--yes'])).exitCode).toBe(0);
    await write('v2');
    expect((await capstan(['plan', ws.repo, '--state', ws.state])).stdout).toContain('Plan: 0 to create, 1 to update, 1 to refresh, 0 to replace, 0 to delete.');
    const apply = await capstan(['apply', ws.repo, '--state', ws.state, '--yes']);
    expect(apply.stdout).toContain('Exec/reload: refreshed (');
    expect(apply.stdout).toContain('0 created, 1 updated, 1 refreshed, 0 replaced, 0 deleted, 0 failed, 0 skipped.');
  });
});

describe('history', () => {
  it('marks a run that went back to an older commit as a rollback', async () => {
    ws = await workspace();
    await git(ws.repo, 'init', '-q');
    await stack();
    await git(ws.repo, 'add', '-A');
    await git(ws.repo, 'commit', '-qm', 'first');
    const first = (await git(ws.repo, 'rev-parse', 'HEAD')).trim();
    await ws.write('files.yaml', fileDoc('a', 'h', { path: '/a.txt', content: 'changed\n' }));
    await git(ws.repo, 'commit', '-qam', 'second');
    const apply = (ref: string) => capstan(['apply', '--repo', ws.repo, '--ref', ref, '--state', ws.state, '--yes']);
    expect((await apply(first)).exitCode).toBe(0);
    expect((await apply('HEAD')).exitCode).toBe(0);
    expect((await apply(first)).exitCode).toBe(0);
    const h = await capstan(['history', '--state', ws.state]);
    const lines = h.stdout.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(new RegExp(`^#3 .*"first"  ROLLBACK to ${first.slice(0, 12)} \\(as run #1\\) from [0-9a-f]{12}$`));
    expect(lines[1]).not.toContain('ROLLBACK');
    expect(lines[2]).not.toContain('ROLLBACK');
    const json = JSON.parse((await capstan(['history', '--state', ws.state, '--json'])).stdout) as { id: number; rollback?: { previousRun: number } }[];
    expect(json.map((r) => r.rollback?.previousRun ?? null)).toEqual([1, null, null]);
  }, 60_000);
});
