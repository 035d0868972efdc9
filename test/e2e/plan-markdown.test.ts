/**
 * `capstan plan --format markdown` through the built CLI, on real plans of a
 * real git repository and a sandbox root, compared with golden files in
 * testdata/golden/plan-markdown/. Only what changes from run to run is
 * normalised: the commit sha and the temp directory.
 *
 * To update the golden files after an intended change of the output:
 *   UPDATE_GOLDEN=1 npx vitest run test/e2e/plan-markdown.test.ts
 * and review the diff of testdata/golden/ before committing it.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, capstan, fileDoc, git, hostDoc, ROOT, workspace, type CliResult, type Workspace } from './harness.js';
import { leakSearch } from './leak-search.js';

const GOLDEN = path.join(ROOT, 'testdata/golden/plan-markdown');
const COMMENT_LIMIT = 65_536;

let ws: Workspace | undefined;
beforeAll(assertBuilt);
afterEach(async () => {
  await ws?.cleanup();
  ws = undefined;
});

async function commit(w: Workspace, stack: string, message: string): Promise<string> {
  await w.write('stack.yaml', stack);
  if (!existsSync(path.join(w.repo, '.git'))) await git(w.repo, 'init', '-q');
  await git(w.repo, 'add', '-A');
  await git(w.repo, 'commit', '-q', '-m', message);
  return (await git(w.repo, 'rev-parse', 'HEAD')).trim();
}

function plan(w: Workspace, ...args: string[]): Promise<CliResult> {
  return capstan(['plan', '.', '--state', w.state, ...args], { cwd: w.repo });
}

/** The commit sha and the temp directory are different on every run; nothing else is touched. */
function normalise(text: string, w: Workspace, sha: string): string {
  return text.replaceAll(sha, '<commit>').replaceAll(path.dirname(w.repo), '<tmp>');
}

async function expectGolden(name: string, actual: string): Promise<void> {
  const file = path.join(GOLDEN, name);
  if (process.env.UPDATE_GOLDEN === '1') {
    await mkdir(GOLDEN, { recursive: true });
    await writeFile(file, actual);
  }
  expect(actual).toBe(await readFile(file, 'utf8'));
}

describe('capstan plan --format markdown', () => {
  it('renders a small plan as the golden comment, and --format json as --json with formatVersion 1', async () => {
    ws = await workspace();
    const sha = await commit(
      ws,
      `${hostDoc('web-1', ws.root)}---\n${fileDoc('motd', 'web-1', { path: '/etc/motd', content: 'Welcome\n' })}---\n${fileDoc('app', 'web-1', { path: '/etc/app.conf', content: 'port = 8080\nworkers = 4\n', mode: '0640' })}`,
      'two files',
    );
    const md = await plan(ws, '--format', 'markdown');
    expect(md.exitCode, md.stderr).toBe(0);
    expect(md.stdout.split('\n')[0]).toBe('<!-- capstan-plan -->');
    expect(md.stdout).toContain(sha);
    await expectGolden('small.md', normalise(md.stdout, ws, sha));

    const json = await plan(ws, '--format', 'json');
    const legacy = await plan(ws, '--json');
    const withoutTime = (s: string) => ({ ...(JSON.parse(s) as Record<string, unknown>), createdAt: null });
    expect(withoutTime(json.stdout)).toEqual(withoutTime(legacy.stdout));
    expect(JSON.parse(json.stdout)).toMatchObject({ formatVersion: 1, stack: 'default', source: { commit: sha } });

    const both = await plan(ws, '--json', '--format', 'markdown');
    expect(both.exitCode).toBe(1);
    expect(both.stderr).toMatch(/--json asks for JSON, --format for markdown/);
  }, 120_000);

  it('redacts a changed sensitive File and warns about deletions (golden)', async () => {
    ws = await workspace();
    const OLD = 'LeakCanary-MdOld-3e1f';
    const NEW = 'LeakCanary-MdNew-9b2c';
    const stack = (token: string, keep: boolean) =>
      `${hostDoc('web-1', ws!.root)}---\n${fileDoc('token', 'web-1', { path: '/etc/token', content: token, mode: '0600' })}  sensitive: true\n` +
      (keep ? `---\n${fileDoc('old', 'web-1', { path: '/etc/old.conf', content: 'legacy\n' })}---\n${fileDoc('older', 'web-1', { path: '/etc/older.conf', content: 'legacy\n' })}` : '') +
      `---\n${fileDoc('motd', 'web-1', { path: '/etc/motd', content: keep ? 'v1\n' : 'v2\n' })}`;
    await commit(ws, stack(OLD, true), 'first');
    const applied = await capstan(['apply', '.', '--yes', '--state', ws.state], { cwd: ws.repo });
    expect(applied.exitCode, applied.stderr).toBe(0);
    const sha = await commit(ws, stack(NEW, false), 'rotate the token, drop the old files');

    const artefact = path.join(path.dirname(ws.repo), 'plan.json');
    const md = await plan(ws, '--format', 'markdown', '--out-json', artefact);
    expect(md.exitCode, md.stderr).toBe(0);
    expect(md.stdout).toContain('~ content: (sensitive value changed)');
    expect(md.stdout).toMatch(/> \[!WARNING\]\n> This plan deletes 2 resources:\n> - \*\*delete\*\* `File\/old`/);
    const hits = leakSearch([OLD, NEW]);
    expect([...hits('markdown', md.stdout), ...hits('artefact', await readFile(artefact))]).toEqual([]);
    expect(JSON.parse(await readFile(artefact, 'utf8'))).toMatchObject({ formatVersion: 1, source: { commit: sha } });
    await expectGolden('secret-and-deletions.md', normalise(md.stdout, ws, sha));
  }, 120_000);

  it('puts the errors of an invalid spec at the top of the comment and exits 1', async () => {
    ws = await workspace();
    await commit(ws, `${hostDoc('web-1', ws.root)}---\n${fileDoc('motd', 'web-1', { path: '/etc/motd', content: 'hi\n', mode: '9999' })}`, 'a bad mode');
    const md = await plan(ws, '--format', 'markdown');
    expect(md.exitCode).toBe(1);
    expect(md.stdout).toMatch(/^<!-- capstan-plan -->\n/);
    expect(md.stdout).toMatch(/> \[!CAUTION\]\n> The plan has 1 error\.\n\n```text\nstack\.yaml:\d+:\d+: File\/motd: .*mode/);
    expect(md.stdout).toContain('The plan has errors: nothing can be applied until they are fixed.');
    expect(md.stdout).not.toContain('#### Resources');
  }, 120_000);

  it('shortens a plan of 3,000 Files past the comment limit, naming the JSON artefact (golden)', async () => {
    ws = await workspace();
    const files = Array.from({ length: 3_000 }, (_, i) =>
      fileDoc(`f${String(i).padStart(4, '0')}`, 'web-1', { path: `/srv/conf/f${String(i).padStart(4, '0')}.conf`, content: `id = ${i}\nname = "file ${i}"\nenabled = true\n` }),
    );
    const sha = await commit(ws, [hostDoc('web-1', ws.root), ...files].join('---\n'), '3,000 files');
    const md = await plan(ws, '--format', 'markdown', '--out-json', 'plan.json');
    expect(md.exitCode, md.stderr).toBe(0);
    expect(md.stdout.length).toBeLessThanOrEqual(COMMENT_LIMIT);
    expect(md.stdout).toContain('This plan was shortened to fit in one comment; the full plan is in the JSON artefact `plan.json`.');
    expect(md.stdout).toContain('**Plan: 3000 to create, 0 to update, 0 to replace, 0 to delete.**');
    expect(md.stdout).toContain('| `default` | `File` | 3000 | 0 | 0 | 0 | 0 |');
    const full = JSON.parse(await readFile(path.join(ws.repo, 'plan.json'), 'utf8')) as { changes: unknown[] };
    expect(full.changes).toHaveLength(3_000);
    await expectGolden('large.md', normalise(md.stdout, ws, sha));
  }, 300_000);
});
