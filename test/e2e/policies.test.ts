/**
 * Policies through the built CLI (docs/policies.md): `plan` shows the verdicts,
 * `apply` refuses a denied plan and changes nothing, a warning does not stop it,
 * and `capstan policy test` runs the examples and fails on a wrong expectation.
 */
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { assertBuilt, capstan, fileDoc, hostDoc, ROOT, workspace, type Workspace } from './harness.js';

vi.setConfig({ testTimeout: 240_000 });

let ws: Workspace;
beforeAll(assertBuilt);
afterEach(async () => ws?.cleanup());

const sudoersPolicy = () => readFile(path.join(ROOT, 'examples/policies/sudoers.yaml'), 'utf8');

describe('policies on plan and apply', () => {
  it('apply refuses a plan a deny policy fails, changing nothing; the fixed spec applies', async () => {
    ws = await workspace();
    await ws.write('hosts.yaml', hostDoc('web-1', ws.root));
    await ws.write('policies/sudoers.yaml', await sudoersPolicy());
    await ws.write('app.yaml', fileDoc('deploy', 'web-1', { path: '/etc/sudoers.d/deploy', content: 'deploy ALL=(ALL) NOPASSWD: ALL\n', mode: '0644' }));

    const plan = await capstan(['plan', ws.repo, '--state', ws.state]);
    expect(plan.exitCode).toBe(1);
    expect(plan.stderr).toMatch(/DENY File\/deploy \(create\): File\/deploy: files under \/etc\/sudoers.d must be mode 0440 \[Policy\/sudoers-mode at policies\/sudoers\.yaml:\d+:\d+\]/);

    const refused = await capstan(['apply', ws.repo, '--state', ws.state, '--yes']);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toContain('Apply refused: a policy denies this plan; nothing was changed.');
    expect(existsSync(path.join(ws.root, 'etc/sudoers.d/deploy'))).toBe(false);

    await ws.write('app.yaml', fileDoc('deploy', 'web-1', { path: '/etc/sudoers.d/deploy', content: 'deploy ALL=(ALL) NOPASSWD: ALL\n', mode: '0440' }));
    const applied = await capstan(['apply', ws.repo, '--state', ws.state, '--yes']);
    expect(applied.stderr).not.toContain('DENY');
    expect(applied.exitCode).toBe(0);
    expect((await stat(path.join(ws.root, 'etc/sudoers.d/deploy'))).mode & 0o777).toBe(0o440);
  });

  it('a warn policy is shown and does not stop the apply', async () => {
    ws = await workspace();
    await ws.write('hosts.yaml', hostDoc('web-1', ws.root));
    await ws.write(
      'policy.yaml',
      'kind: Policy\nname: motd-short\nspec:\n  match: { kinds: [File] }\n  rule: "size(after.content) < 10"\n  effect: warn\n  message: "{name} on {target}: keep the motd short"\n',
    );
    await ws.write('app.yaml', fileDoc('motd', 'web-1', { path: '/etc/motd', content: 'a long message of the day\n' }));
    const applied = await capstan(['apply', ws.repo, '--state', ws.state, '--yes']);
    expect(applied.stderr).toContain('WARN File/motd (create): motd on Host/web-1: keep the motd short');
    expect(applied.exitCode).toBe(0);
    expect(await readFile(path.join(ws.root, 'etc/motd'), 'utf8')).toBe('a long message of the day\n');
  });

  it('a rule that is not CEL, or names an unknown variable, is an error at the rule, and nothing is planned', async () => {
    ws = await workspace();
    await ws.write('hosts.yaml', hostDoc('web-1', ws.root));
    await ws.write('policy.yaml', 'kind: Policy\nname: broken\nspec:\n  rule: "after.mode == \'0440\' &&"\n---\nkind: Policy\nname: typo\nspec:\n  rule: "afterr.mode == \'0440\'"\n');
    await ws.write('app.yaml', fileDoc('motd', 'web-1', { path: '/etc/motd', content: 'hi\n' }));
    const plan = await capstan(['plan', ws.repo, '--state', ws.state]);
    expect(plan.exitCode).toBe(1);
    expect(plan.stderr).toMatch(/policy\.yaml:4:9: Policy\/broken: the rule of Policy broken is not valid CEL: Unexpected token: EOF/);
    expect(plan.stderr).toMatch(/policy\.yaml:9:9: Policy\/typo: the rule of Policy typo is not valid CEL: Unknown variable: afterr/);
  });
});

describe('capstan policy test', () => {
  it('passes on the examples and names FILE:LINE:COL of a failing case, exiting 1', async () => {
    const examples = await capstan(['policy', 'test', path.join(ROOT, 'examples/policies')]);
    expect(examples.stdout).toContain('14 passed, 0 failed (4 policies)');
    expect(examples.exitCode).toBe(0);

    ws = await workspace();
    await ws.write('sudoers.yaml', await sudoersPolicy());
    await ws.write(
      'wrong.yaml',
      'kind: PolicyTest\nname: wrong\nspec:\n  cases:\n    - name: right\n      changes: [{ address: File/a@web-1, action: create, after: { path: /etc/sudoers.d/a, mode: "0440" } }]\n      expect: { sudoers-mode: pass }\n    - name: wrongly expects a pass\n      changes: [{ address: File/a@web-1, action: create, after: { path: /etc/sudoers.d/a, mode: "0600" } }]\n      expect: { sudoers-mode: pass }\n',
    );
    const run = await capstan(['policy', 'test', ws.repo]);
    expect(run.stdout).toContain('FAIL wrong.yaml:8:7: PolicyTest/wrong: wrongly expects a pass');
    expect(run.stdout).toContain('Policy/sudoers-mode: expected pass, got deny (File/a@web-1: files under /etc/sudoers.d must be mode 0440)');
    expect(run.stdout).toContain('PASS PolicyTest/wrong: right');
    expect(run.exitCode).toBe(1);
  });
});
