/**
 * Read-only commands change nothing: validate, plan, drift, history and
 * render --dry-run, run in a fresh stack, leave every byte of it as it was and
 * create no state store, no `.capstan/` and no host root.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, capstan, fileDoc, git, hostDoc, workspace, type Workspace } from './harness.js';

let ws: Workspace;
beforeAll(assertBuilt);
afterEach(async () => ws?.cleanup());

/** Every path under `dir` with its type, mode and content digest: equal snapshots mean an unchanged tree. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (rel: string): Promise<void> => {
    const abs = path.join(dir, rel);
    const st = await lstat(abs);
    const mode = (st.mode & 0o7777).toString(8);
    if (st.isDirectory()) {
      out[rel || '.'] = `dir ${mode}`;
      for (const name of (await readdir(abs)).sort()) await walk(path.join(rel, name));
    } else if (st.isSymbolicLink()) out[rel] = `link ${await readlink(abs)}`;
    else out[rel] = `file ${mode} ${createHash('sha256').update(await readFile(abs)).digest('hex')}`;
  };
  await walk('');
  return out;
}

async function stackWithObservability(): Promise<Workspace> {
  const w = await workspace();
  await w.write('hosts.yaml', hostDoc('web-1', w.root));
  await w.write('motd.yaml', fileDoc('motd', 'web-1', { path: '/etc/motd', content: 'hello\n', mode: '0644' }));
  await w.write(
    'slo.yaml',
    [
      'kind: SLO',
      'name: api-availability',
      'spec:',
      '  service: api',
      '  objective: 99.9',
      '  window: 30d',
      '  sli:',
      '    errorQuery: sum(rate(http_requests_total{job="api",code=~"5.."}[{{window}}]))',
      '    totalQuery: sum(rate(http_requests_total{job="api"}[{{window}}]))',
      '',
    ].join('\n'),
  );
  return w;
}

const NO_STORE = /no state store at \S*\.capstan\/state\.db yet: nothing has been applied from here; `capstan apply` creates it/;

describe('read-only commands in a stack that was never applied', () => {
  const cases: { title: string; args: string[]; check: (r: { exitCode: number; stdout: string; stderr: string }) => void }[] = [
    { title: 'capstan validate leaves the stack byte-identical', args: ['validate'], check: (r) => expect([r.exitCode, r.stdout]).toEqual([0, expect.stringContaining('Valid: 2 resource(s)')]) },
    // Nothing was applied: everything is to create, and that is no error.
    { title: 'capstan plan leaves the stack byte-identical: everything is to create', args: ['plan'], check: (r) => expect([r.exitCode, r.stdout]).toEqual([0, expect.stringContaining('Plan: 1 to create')]) },
    { title: 'capstan plan --json leaves the stack byte-identical', args: ['plan', '--json'], check: (r) => expect([r.exitCode, JSON.parse(r.stdout).changes.map((c: { action: string }) => c.action)]).toEqual([0, ['create']]) },
    { title: 'capstan plan --detailed-exitcode leaves the stack byte-identical and exits 2', args: ['plan', '--detailed-exitcode'], check: (r) => expect(r.exitCode).toBe(2) },
    // History has nothing to list and says why; it is not an error.
    { title: 'capstan history leaves the stack byte-identical and says no store exists yet (exit 0)', args: ['history'], check: (r) => expect([r.exitCode, r.stdout]).toEqual([0, expect.stringMatching(NO_STORE)]) },
    { title: 'capstan history --json leaves the stack byte-identical: [] and the message on stderr', args: ['history', '--json'], check: (r) => expect([r.exitCode, JSON.parse(r.stdout), r.stderr]).toEqual([0, [], expect.stringMatching(NO_STORE)]) },
    // Drift cannot compare with an apply that never happened: an error, not "in sync" (a mistyped --state must not pass a check).
    { title: 'capstan drift leaves the stack byte-identical and refuses a missing store (exit 1)', args: ['drift'], check: (r) => expect([r.exitCode, r.stdout, r.stderr]).toEqual([1, '', expect.stringMatching(NO_STORE)]) },
    { title: 'capstan render --dry-run leaves the stack byte-identical and lists what it would write', args: ['render', '--dry-run', '--out', 'out'], check: (r) => expect([r.exitCode, r.stdout]).toEqual([0, expect.stringMatching(/^Would write 4 file\(s\) to out:(\n  out\/\S+){4}$/)]) },
  ];

  for (const { title, args, check } of cases) {
    it(title, async () => {
      ws = await stackWithObservability();
      const before = await snapshot(ws.repo);
      const r = await capstan(args, { cwd: ws.repo });
      check(r);
      expect(await snapshot(ws.repo)).toEqual(before);
      expect(existsSync(ws.root), 'the host root is created by apply only').toBe(false);
    }, 60_000);
  }

  it('in a git work tree, validate, plan, history and drift touch nothing under .git either (no index refresh)', async () => {
    ws = await stackWithObservability();
    await git(ws.repo, 'init', '-q');
    await git(ws.repo, 'add', '-A');
    await git(ws.repo, '-c', 'user.name=t', '-c', 'user.email=t@example.com', 'commit', '-qm', 'first');
    const before = await snapshot(ws.repo);
    for (const args of [['validate'], ['plan'], ['history'], ['drift']]) await capstan(args, { cwd: ws.repo });
    expect(await snapshot(ws.repo)).toEqual(before);
  }, 60_000);

  it('after an apply, plan, drift and history read the store it created', async () => {
    ws = await stackWithObservability();
    expect((await capstan(['apply', '--yes'], { cwd: ws.repo })).exitCode).toBe(0);
    const before = await snapshot(ws.repo);
    expect((await capstan(['plan', '--detailed-exitcode'], { cwd: ws.repo })).exitCode).toBe(0);
    expect((await capstan(['drift'], { cwd: ws.repo })).stdout).toContain('Drift: 0 drifted, 1 in sync');
    expect((await capstan(['history'], { cwd: ws.repo })).stdout).toMatch(/^#1 .* succeeded /m);
    expect(await snapshot(ws.repo)).toEqual(before);
  }, 60_000);
});
