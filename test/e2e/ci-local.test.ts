/** scripts/ci-local.sh: the CI templates' steps in a temporary clone, printing the comment CI would post. */
import { execa } from 'execa';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, CAPSTAN, fileDoc, git, hostDoc, ROOT, workspace, type Workspace } from './harness.js';

const SCRIPT = path.join(ROOT, 'scripts/ci-local.sh');
const MARKER = '<!-- capstan-plan -->';
/** The capstan the script runs (it reads $CAPSTAN too): this checkout's, or another build given in $CAPSTAN. */
const PROGRAM = process.env.CAPSTAN ?? CAPSTAN;

let ws: Workspace;
beforeAll(assertBuilt);
afterEach(async () => ws?.cleanup());

async function has(args: string[], pattern: RegExp): Promise<boolean> {
  const r = await execa('node', [PROGRAM, ...args], { reject: false, all: true });
  return pattern.test(r.all ?? '');
}

/** A spec repository of two commits: a host with one file, then a second file. */
async function twoCommitRepo(second: string): Promise<void> {
  ws = await workspace();
  await git(ws.repo, 'init', '-q');
  await ws.write('hosts.yaml', hostDoc('h1', ws.root));
  await ws.write('motd.yaml', fileDoc('motd', 'h1', { path: '/etc/motd', content: 'hello\n' }));
  await git(ws.repo, 'add', '-A');
  await git(ws.repo, 'commit', '-qm', 'first');
  await ws.write('issue.yaml', second);
  await git(ws.repo, 'add', '-A');
  await git(ws.repo, 'commit', '-qm', 'second');
}

function runScript(): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  return execa('bash', [SCRIPT, '.'], { env: { CI_LOCAL_REPO: ws.repo, CAPSTAN: PROGRAM }, reject: false, stdin: 'ignore' }).then((r) => ({ exitCode: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr }));
}

function comment(stdout: string): string {
  const match = /----- comment -----\n([\s\S]*)\n----- end of comment -----/.exec(stdout);
  if (!match?.[1]) throw new Error(`no comment in the output:\n${stdout}`);
  return match[1];
}

describe('scripts/ci-local.sh', () => {
  it('validates, tests and plans the last commit against the one before in a clone, and prints the comment (the marker first when plan --format markdown exists)', async () => {
    await twoCommitRepo(fileDoc('issue', 'h1', { path: '/etc/issue', content: 'welcome\n' }));
    const r = await runScript();
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('Valid: 2 resource(s) on 1 target(s)');
    expect(r.stdout).toContain('== capstan test .');
    const body = comment(r.stdout);
    expect(body).toContain('File/issue');
    if (await has(['plan', '--help'], /--format/)) {
      expect(body.split('\n')[0]).toBe(MARKER);
    } else {
      expect(r.stdout).toContain('this capstan has no `plan --format markdown`: the comment below wraps the text plan');
      expect(body.split('\n')[0]).toBe('```');
    }
    expect(r.stdout).toContain(
      (await has(['policy', 'test', '--help'], /^Usage: capstan policy test/m))
        ? 'skipped: no PolicyTest documents under . (as in the CI templates)'
        : 'skipped: this capstan has no `policy test` command',
    );
    // The clone was temporary, and the repository itself was not written to.
    expect(await git(ws.repo, 'status', '--porcelain')).toBe('');
  });

  it('stops with the validator\'s FILE:LINE:COL when the last commit breaks the spec, and prints no comment', async () => {
    await twoCommitRepo('kind: File\nname: issue\ntarget: h1\nspec:\n  path: relative/issue\n  content: x\n');
    const r = await runScript();
    expect(r.exitCode).not.toBe(0);
    expect(`${r.stdout}\n${r.stderr}`).toMatch(/issue\.yaml:\d+:\d+/);
    expect(r.stdout).not.toContain('----- comment -----');
  });
});
