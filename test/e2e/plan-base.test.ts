import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, capstan, fileDoc, git, hostDoc, workspace, type Workspace } from './harness.js';

beforeAll(assertBuilt);

let ws: Workspace | undefined;
afterEach(async () => {
  await ws?.cleanup();
  ws = undefined;
});

/** 1,000 File resources in one file; f1 depends on f0; `changed` get other content. */
function fleetYaml(changed: readonly string[] = []): string {
  const docs: string[] = [];
  for (let i = 0; i < 1000; i++) {
    const name = `f${i}`;
    docs.push(fileDoc(name, 'web-1', { path: `/${name}`, content: changed.includes(name) ? `${name} v2\n` : `${name}\n` }, name === 'f1' ? ['File/f0'] : []));
  }
  return docs.join('---\n');
}

async function commit(repo: string, message: string): Promise<string> {
  await git(repo, 'add', '-A');
  await git(repo, '-c', 'user.name=T', '-c', 'user.email=t@example.com', 'commit', '-q', '-m', message);
  return (await git(repo, 'rev-parse', 'HEAD')).trim();
}

describe('capstan plan --base REF', () => {
  it('plans only the 3 files a commit changed and the 1 that depends on them, and does not read the other 996', async () => {
    ws = await workspace();
    await ws.write('hosts.yaml', hostDoc('web-1', ws.root));
    await ws.write('files.yaml', fleetYaml());
    await git(ws.repo, 'init', '-q');
    const base = await commit(ws.repo, 'a thousand files');
    const applied = await capstan(['apply', ws.repo, '--state', ws.state, '--yes']);
    expect(applied.exitCode, applied.stderr).toBe(0);

    await ws.write('files.yaml', fleetYaml(['f0', 'f500', 'f999']));
    await commit(ws.repo, 'three files change');
    // Drift on a file the commit did not touch: a plan that read it would show it.
    await writeFile(path.join(ws.root, 'f300'), 'edited by hand\n');

    const scoped = await capstan(['plan', ws.repo, '--state', ws.state, '--base', base, '--json']);
    expect(scoped.exitCode, scoped.stderr).toBe(0);
    const plan = JSON.parse(scoped.stdout) as { scope: Record<string, unknown>; changes: { address: string; action: string }[] };
    expect(plan.scope).toEqual({ base: { ref: base, commit: base }, changed: 3, dependents: 1, planned: 4, total: 1000, skipped: 996 });
    expect(plan.changes.map((c) => `${c.action} ${c.address}`)).toEqual(['update File/f0', 'noop File/f1', 'update File/f500', 'update File/f999']);

    const text = await capstan(['plan', ws.repo, '--state', ws.state, '--base', 'HEAD~1']);
    expect(text.exitCode, text.stderr).toBe(0);
    expect(text.stdout).toContain(`Planned 4 of 1,000 resources: 3 changed between HEAD~1 (${base.slice(0, 12)}) and HEAD, 1 depends on them; 996 not read`);
    expect(text.stdout).not.toContain('f300');

    // Both flags at once: the same scope, against the recorded state.
    const both = await capstan(['plan', ws.repo, '--state', ws.state, '--base', base, '--offline', '--json']);
    expect(both.exitCode, both.stderr).toBe(0);
    const offline = JSON.parse(both.stdout) as { offline?: boolean; scope: { skipped: number }; changes: { address: string; action: string }[] };
    expect(offline.offline).toBe(true);
    expect(offline.scope.skipped).toBe(996);
    expect(offline.changes.map((c) => `${c.action} ${c.address}`)).toEqual(['update File/f0', 'noop File/f1', 'update File/f500', 'update File/f999']);

    // Without --base every file is read, and the drifted one shows.
    const full = await capstan(['plan', ws.repo, '--state', ws.state, '--json']);
    const all = JSON.parse(full.stdout) as { scope?: unknown; changes: { address: string; action: string }[] };
    expect(all.scope).toBeUndefined();
    expect(all.changes.filter((c) => c.action !== 'noop').map((c) => c.address)).toEqual(['File/f0', 'File/f300', 'File/f500', 'File/f999']);
  }, 600_000);

  it('refuses a base ref that names no commit, and a spec directory outside git, changing nothing', async () => {
    ws = await workspace();
    await ws.write('hosts.yaml', hostDoc('web-1', ws.root));
    await ws.write('f.yaml', fileDoc('f', 'web-1', { path: '/f', content: 'x\n' }));
    const outside = await capstan(['plan', ws.repo, '--state', ws.state, '--base', 'main']);
    expect(outside.exitCode).toBe(1);
    expect(outside.stderr).toContain('--base needs the spec directory in a git repository');

    await git(ws.repo, 'init', '-q');
    await commit(ws.repo, 'one file');
    const unknown = await capstan(['plan', ws.repo, '--state', ws.state, '--base', 'no-such-branch']);
    expect(unknown.exitCode).toBe(1);
    expect(unknown.stderr).toContain('base ref "no-such-branch" does not name a commit');
    const dashed = await capstan(['plan', ws.repo, '--state', ws.state, '--base', '--upload-pack=x']);
    expect(dashed.exitCode).toBe(1);
  }, 120_000);
});
