import { chmod, lstat, mkdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { assertBuilt, capstan, fileDoc, git, hostDoc, workspace, type Workspace } from './harness.js';

interface PlanJson {
  changes: { address: string; action: string; fields: { path: string }[] }[];
  diagnostics: { summary: string }[];
  source: { commit: string | null };
}

// Each test runs the CLI a dozen times; on a loaded 2-core machine one call can take seconds.
vi.setConfig({ testTimeout: 240_000 });

let ws: Workspace;
beforeAll(assertBuilt);
afterEach(async () => ws?.cleanup());

async function planJson(extra: string[] = []): Promise<PlanJson> {
  const r = await capstan(['plan', ws.repo, '--state', ws.state, '--json', ...extra]);
  expect(r.stderr).toBe('');
  return JSON.parse(r.stdout) as PlanJson;
}

function actions(plan: PlanJson): Record<string, string> {
  return Object.fromEntries(plan.changes.filter((c) => c.action !== 'noop').map((c) => [c.address, c.action]));
}

const apply = (...extra: string[]) => capstan(['apply', ws.repo, '--state', ws.state, '--yes', ...extra]);

describe('validate, plan, apply, drift, history on a local host', () => {
  it('creates, reports no changes, updates, and deletes what it manages', async () => {
    ws = await workspace();
    await ws.write('hosts.yaml', hostDoc('web-1', ws.root));
    await ws.write('app.yaml', [
      'kind: Directory\nname: app\ntarget: web-1\nspec: { path: /srv/app, mode: "0755" }\n',
      fileDoc('motd', 'web-1', { path: '/srv/app/motd', content: 'hello\n', mode: '0644' }),
      fileDoc('extra', 'web-1', { path: '/srv/app/extra', content: 'one\ntwo\nthree\n' }),
    ].join('---\n'));

    expect((await capstan(['validate', ws.repo])).exitCode).toBe(0);
    const first = await planJson();
    expect(actions(first)).toEqual({ 'Directory/app': 'create', 'File/motd': 'create', 'File/extra': 'create' });

    const applied = await apply();
    expect(applied.stderr).toBe('');
    expect(applied.exitCode).toBe(0);
    expect(await readFile(path.join(ws.root, 'srv/app/motd'), 'utf8')).toBe('hello\n');
    expect((await stat(path.join(ws.root, 'srv/app/motd'))).mode & 0o777).toBe(0o644);

    // A second plan right after apply has nothing to do.
    const again = await capstan(['plan', ws.repo, '--state', ws.state, '--detailed-exitcode']);
    expect(again.stdout).toContain('No changes');
    expect(again.exitCode).toBe(0);

    // Update: content diff shown as a unified diff, mode change shown.
    await ws.write('app.yaml', [
      'kind: Directory\nname: app\ntarget: web-1\nspec: { path: /srv/app, mode: "0755" }\n',
      fileDoc('motd', 'web-1', { path: '/srv/app/motd', content: 'hello\nworld\n', mode: '0600' }),
    ].join('---\n'));
    const text = await capstan(['plan', ws.repo, '--state', ws.state, '--detailed-exitcode']);
    expect(text.exitCode).toBe(2);
    expect(text.stdout).toMatch(/~ File\/motd/);
    expect(text.stdout).toContain('+world');
    expect(text.stdout).toMatch(/mode: "0644" -> "0600"/);
    expect(text.stdout).toMatch(/- File\/extra/);
    expect(text.stdout).toContain('Plan: 0 to create, 1 to update, 0 to replace, 1 to delete.');

    expect((await apply()).exitCode).toBe(0);
    expect(await readFile(path.join(ws.root, 'srv/app/motd'), 'utf8')).toBe('hello\nworld\n');
    expect((await stat(path.join(ws.root, 'srv/app/motd'))).mode & 0o777).toBe(0o600);
    expect(existsSync(path.join(ws.root, 'srv/app/extra'))).toBe(false);
    expect((await capstan(['plan', ws.repo, '--state', ws.state, '--detailed-exitcode'])).exitCode).toBe(0);

    const history = JSON.parse((await capstan(['history', ws.repo, '--state', ws.state, '--json'])).stdout) as { status: string; counts: Record<string, number> }[];
    expect(history.map((r) => r.status)).toEqual(['succeeded', 'succeeded']);
    expect(history[0]!.counts).toMatchObject({ update: 1, delete: 1 });
    expect(history[1]!.counts).toMatchObject({ create: 3 });
  });

  it('changes ownership and reports drift of content, mode and owner, then heals it', async () => {
    ws = await workspace();
    await ws.write('hosts.yaml', hostDoc('web-1', ws.root));
    await ws.write('f.yaml', fileDoc('conf', 'web-1', { path: '/etc/conf', content: 'a=1\n', mode: '0644', owner: 'nobody', group: 'nogroup' }));
    expect((await apply()).exitCode).toBe(0);
    const file = path.join(ws.root, 'etc/conf');
    const st = await stat(file);
    expect(st.uid).toBe(65534);
    expect(st.gid).toBe(65534);

    const clean = await capstan(['drift', ws.repo, '--state', ws.state]);
    expect(clean.exitCode).toBe(0);

    await writeFile(file, 'a=2\n');
    await chmod(file, 0o666);
    const drift = await capstan(['drift', ws.repo, '--state', ws.state, '--json']);
    expect(drift.exitCode).toBe(2);
    const report = JSON.parse(drift.stdout) as { resources: { address: string; status: string; fields: { path: string }[] }[] };
    const conf = report.resources.find((r) => r.address === 'File/conf')!;
    expect(conf.status).toBe('drifted');
    expect(conf.fields.map((f) => f.path).sort()).toEqual(['content', 'mode']);

    expect((await apply()).exitCode).toBe(0);
    expect(await readFile(file, 'utf8')).toBe('a=1\n');
    expect((await stat(file)).mode & 0o777).toBe(0o644);
    expect((await capstan(['drift', ws.repo, '--state', ws.state])).exitCode).toBe(0);
  });

  it('prunes only what it manages, and refuses mass deletes without the flag', async () => {
    ws = await workspace();
    await ws.write('hosts.yaml', hostDoc('web-1', ws.root));
    const docs = ['a', 'b', 'c', 'd'].map((n) => fileDoc(n, 'web-1', { path: `/data/${n}`, content: `${n}\n` }));
    await ws.write('files.yaml', docs.join('---\n'));
    expect((await apply()).exitCode).toBe(0);
    await writeFile(path.join(ws.root, 'data/unmanaged'), 'mine\n');

    // Remove one of four: allowed, and the unmanaged file stays.
    await ws.write('files.yaml', docs.slice(0, 3).join('---\n'));
    expect(actions(await planJson())).toEqual({ 'File/d': 'delete' });
    expect((await apply()).exitCode).toBe(0);
    expect(existsSync(path.join(ws.root, 'data/d'))).toBe(false);
    expect(existsSync(path.join(ws.root, 'data/unmanaged'))).toBe(true);

    // Remove two of three (67%): refused unless --allow-mass-delete.
    await ws.write('files.yaml', docs[0]!);
    const refused = await apply();
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toMatch(/deletes 2 of 3 managed resources.*--allow-mass-delete/);
    expect(existsSync(path.join(ws.root, 'data/b'))).toBe(true);
    expect((await apply('--allow-mass-delete')).exitCode).toBe(0);
    expect(existsSync(path.join(ws.root, 'data/b'))).toBe(false);

    // A broken spec never counts as "nothing desired".
    await ws.write('files.yaml', 'kind: File\nname: a\ntarget: web-1\nspec: [not, a, map\n');
    const broken = await apply('--allow-mass-delete');
    expect(broken.exitCode).toBe(1);
    expect(broken.stderr).toMatch(/files\.yaml:\d+:\d+/);
    expect(existsSync(path.join(ws.root, 'data/a'))).toBe(true);
  });

  it('refuses a saved plan once the spec, the live state or the state store moved', async () => {
    ws = await workspace();
    await ws.write('hosts.yaml', hostDoc('web-1', ws.root));
    await ws.write('f.yaml', fileDoc('f', 'web-1', { path: '/f', content: 'v1\n' }));
    const planFile = path.join(ws.root, '..', 'plan.json');

    // Fresh saved plan: applies without asking.
    expect((await capstan(['plan', ws.repo, '--state', ws.state, '--out', planFile])).exitCode).toBe(0);
    const ok = await capstan(['apply', ws.repo, '--state', ws.state, '--plan', planFile]);
    expect(ok.exitCode).toBe(0);
    expect(await readFile(path.join(ws.root, 'f'), 'utf8')).toBe('v1\n');

    // Spec moved.
    await ws.write('f.yaml', fileDoc('f', 'web-1', { path: '/f', content: 'v2\n' }));
    expect((await capstan(['plan', ws.repo, '--state', ws.state, '--out', planFile])).exitCode).toBe(0);
    await ws.write('f.yaml', fileDoc('f', 'web-1', { path: '/f', content: 'v3\n' }));
    const specMoved = await capstan(['apply', ws.repo, '--state', ws.state, '--plan', planFile]);
    expect(specMoved.exitCode).toBe(1);
    expect(specMoved.stderr).toMatch(/stale.*\n.*spec changed/);
    expect(await readFile(path.join(ws.root, 'f'), 'utf8')).toBe('v1\n');

    // Live moved.
    await ws.write('f.yaml', fileDoc('f', 'web-1', { path: '/f', content: 'v2\n' }));
    expect((await capstan(['plan', ws.repo, '--state', ws.state, '--out', planFile])).exitCode).toBe(0);
    await writeFile(path.join(ws.root, 'f'), 'edited by hand\n');
    const liveMoved = await capstan(['apply', ws.repo, '--state', ws.state, '--plan', planFile]);
    expect(liveMoved.exitCode).toBe(1);
    expect(liveMoved.stderr).toMatch(/live state changed since the plan was made: File\/f/);
    expect(await readFile(path.join(ws.root, 'f'), 'utf8')).toBe('edited by hand\n');

    // State moved: another apply ran after the plan was made.
    expect((await capstan(['plan', ws.repo, '--state', ws.state, '--out', planFile])).exitCode).toBe(0);
    await ws.write('g.yaml', fileDoc('g', 'web-1', { path: '/g', content: 'g\n' }));
    expect((await apply()).exitCode).toBe(0);
    await ws.remove('g.yaml');
    await ws.write('g.yaml', fileDoc('g', 'web-1', { path: '/g', content: 'g\n' }));
    const stateMoved = await capstan(['apply', ws.repo, '--state', ws.state, '--plan', planFile]);
    expect(stateMoved.exitCode).toBe(1);
    expect(stateMoved.stderr).toMatch(/state of stack "default" changed/);
  });

  it('skips the dependents of a failed resource and applies the rest', async () => {
    ws = await workspace();
    await ws.write('hosts.yaml', hostDoc('web-1', ws.root));
    await mkdir(ws.root, { recursive: true });
    await writeFile(path.join(ws.root, 'blocker'), 'a regular file where a directory is wanted\n');
    await ws.write('app.yaml', [
      'kind: Directory\nname: sub\ntarget: web-1\nspec: { path: /blocker/sub }\n',
      fileDoc('inside', 'web-1', { path: '/blocker/sub/inside', content: 'x\n' }),
      fileDoc('after', 'web-1', { path: '/after', content: 'y\n' }, ['File/inside']),
      fileDoc('independent', 'web-1', { path: '/independent', content: 'z\n' }),
    ].join('---\n'));
    const r = await apply();
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/Directory\/sub/);
    expect(r.stdout + r.stderr).toMatch(/File\/inside: skipped: Directory\/sub did not succeed/);
    expect(r.stdout + r.stderr).toMatch(/File\/after: skipped: File\/inside did not succeed/);
    expect(await readFile(path.join(ws.root, 'independent'), 'utf8')).toBe('z\n');
    expect(existsSync(path.join(ws.root, 'after'))).toBe(false);
    const runs = JSON.parse((await capstan(['history', ws.repo, '--state', ws.state, '--json'])).stdout) as { status: string; counts: Record<string, number> }[];
    expect(runs[0]).toMatchObject({ status: 'failed', counts: { create: 1, failed: 1, skipped: 2 } });
  });

  it('reports cycles and unknown references with file, line and address, and changes nothing', async () => {
    ws = await workspace();
    await ws.write('hosts.yaml', hostDoc('web-1', ws.root));
    await ws.write('a.yaml', [
      fileDoc('a', 'web-1', { path: '/a', content: 'a' }, ['File/b']),
      fileDoc('b', 'web-1', { path: '/b', content: 'b' }, ['File/a']),
      fileDoc('c', 'web-1', { path: '/c', content: 'c' }, ['File/nope']),
      fileDoc('d', 'web-9', { path: '/d', content: 'd' }),
    ].join('---\n'));
    const r = await capstan(['validate', ws.repo]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/a\.yaml:\d+:\d+: File\/a: .*cycle.*File\/a -> File\/b -> File\/a/);
    expect(r.stderr).toMatch(/a\.yaml:\d+:\d+: File\/c: .*File\/nope/);
    expect(r.stderr).toMatch(/a\.yaml:\d+:\d+: File\/d: .*web-9/);
    expect((await apply()).exitCode).toBe(1);
    expect(existsSync(ws.root)).toBe(false);
  });

  it('never writes outside a host root, through .. or through a symlink', async () => {
    ws = await workspace();
    const outside = path.join(ws.root, '..', 'outside');
    await mkdir(outside, { recursive: true });
    await mkdir(ws.root, { recursive: true });
    await symlink(outside, path.join(ws.root, 'escape'));
    await ws.write('hosts.yaml', hostDoc('web-1', ws.root));

    await ws.write('f.yaml', fileDoc('dots', 'web-1', { path: '/../outside/pwned', content: 'x' }));
    const dots = await apply();
    expect(dots.exitCode).toBe(1);
    expect(dots.stderr).toMatch(/f\.yaml:\d+:\d+: File\/dots: .*\.\./);

    await ws.write('f.yaml', fileDoc('link', 'web-1', { path: '/escape/pwned', content: 'x' }));
    const link = await apply();
    expect(link.exitCode).toBe(1);
    expect(link.stdout + link.stderr).toMatch(/File\/link: .*outside the root through the symbolic link \/escape/);
    expect(existsSync(path.join(outside, 'pwned'))).toBe(false);
    expect((await lstat(path.join(ws.root, 'escape'))).isSymbolicLink()).toBe(true);
  });

  it('records the commit, author and message of a git source', async () => {
    ws = await workspace();
    await ws.write('hosts.yaml', hostDoc('web-1', ws.root));
    await ws.write('f.yaml', fileDoc('f', 'web-1', { path: '/f', content: 'from git\n' }));
    await git(ws.repo, 'init', '-q');
    await git(ws.repo, 'add', '-A');
    await git(ws.repo, 'commit', '-q', '-m', 'Add the f file');
    const sha = (await git(ws.repo, 'rev-parse', 'HEAD')).trim();
    const cache = path.join(ws.root, '..', 'cache');
    const r = await capstan(['apply', '--repo', ws.repo, '--ref', 'main', '--state', ws.state, '--yes'], { env: { XDG_CACHE_HOME: cache } });
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(await readFile(path.join(ws.root, 'f'), 'utf8')).toBe('from git\n');
    const runs = JSON.parse((await capstan(['history', '--state', ws.state, '--json'])).stdout) as { commit: string; author: string; message: string }[];
    expect(runs[0]).toMatchObject({ commit: sha, author: 'Ada Lovelace <ada@example.com>', message: 'Add the f file' });

    const bad = await capstan(['plan', '--repo=--upload-pack=touch /tmp/capstan-pwned', '--state', ws.state], { env: { XDG_CACHE_HOME: cache } });
    expect(bad.exitCode).toBe(1);
    expect(existsSync('/tmp/capstan-pwned')).toBe(false);
  });
});
