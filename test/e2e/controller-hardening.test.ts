/**
 * `capstan serve` against hostile or careless input, end to end: a branch
 * force-pushed to an older commit, a rollback to a commit of an unmerged
 * branch, `capstan token` on a config whose webhook secret is not set. A real
 * bare git repository, the built CLI, real HTTP, real files.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { api, createToken, fileYaml, gitRemote, hostYaml, killAll, serve, serveConfig, waitFor, type GitRemote, type Served } from './controller-harness.js';
import { assertBuilt, capstan, git } from './harness.js';

interface StackView {
  name: string;
  status: string;
  lastAppliedCommit: string | null;
  headCommit: string | null;
  branchMovedBackwards: { branch: string; from: string; to: string; message: string } | null;
}

let remote: GitRemote;
beforeAll(assertBuilt);
afterEach(async () => {
  await killAll();
  await remote?.cleanup();
});

async function setup(stack: string): Promise<{ config: string; state: string; root: string }> {
  remote = await gitRemote();
  return serveConfig(remote, stack);
}

async function stackView(served: Served, token: string): Promise<StackView> {
  return (await api<StackView>(served, '/api/stacks/web', { token })).body;
}

const work = (): string => path.join(remote.base, 'work');

describe('capstan serve: history that moves under it', () => {
  it('a branch force-pushed to an older commit: the API says it moved backwards, and policy auto waits for approval before deleting', async () => {
    const { config, state, root } = await setup('  - { name: web, repo: remote.git, branch: main, path: stack, policy: auto, interval: 1h }\n');
    const c1 = await remote.push({ 'stack/hosts.yaml': hostYaml('web-1', root), 'stack/a.yaml': fileYaml('a', 'web-1', '/a.txt', 'a\n') }, 'a');
    const operator = await createToken(state, 'operator', 'otto');
    const served = await serve(config);
    await waitFor('a applied', async () => existsSync(path.join(root, 'a.txt')));
    const c2 = await remote.push({ 'stack/b.yaml': fileYaml('b', 'web-1', '/b.txt', 'b\n') }, 'b');
    expect((await api(served, '/api/stacks/web/sync', { method: 'POST', token: operator })).status).toBe(202);
    await waitFor('b applied', async () => (await stackView(served, operator)).lastAppliedCommit === c2);
    expect(existsSync(path.join(root, 'b.txt'))).toBe(true);

    await git(work(), 'push', '--quiet', '--force', 'origin', `${c1}:refs/heads/main`);
    expect((await api(served, '/api/stacks/web/sync', { method: 'POST', token: operator })).status).toBe(202);
    const held = await waitFor('the plan held back', async () => {
      const s = await stackView(served, operator);
      return s.status === 'awaiting-approval' ? s : undefined;
    });
    expect(held).toMatchObject({ headCommit: c1, lastAppliedCommit: c2, branchMovedBackwards: { branch: 'main', from: c2, to: c1 } });
    expect(held.branchMovedBackwards!.message).toBe(`the branch main moved backwards from ${c2.slice(0, 12)} to ${c1.slice(0, 12)}`);
    const plan = await api<{ id: string; state: string; counts: Record<string, number>; branchMovedBackwards: unknown; text: string }>(served, '/api/stacks/web/plan', { token: operator });
    expect(plan.body).toMatchObject({ state: 'pending', counts: { delete: 1 }, branchMovedBackwards: { from: c2, to: c1 } });
    expect(plan.body.text).toContain(`warning: the branch main moved backwards from ${c2.slice(0, 12)} to ${c1.slice(0, 12)}`);
    const events = await api<{ type: string; message: string }[]>(served, '/api/stacks/web/events', { token: operator });
    expect(events.body.some((e) => e.type === 'branch.moved-backwards')).toBe(true);
    expect(existsSync(path.join(root, 'b.txt'))).toBe(true);

    expect((await api(served, '/api/stacks/web/approve', { method: 'POST', token: operator, body: { planId: plan.body.id } })).status).toBe(202);
    await waitFor('the older commit applied', async () => !existsSync(path.join(root, 'b.txt')) && (await stackView(served, operator)).lastAppliedCommit === c1);
    expect(await readFile(path.join(root, 'a.txt'), 'utf8')).toBe('a\n');
    const [run] = (await api<{ id: number; commit: string; actor: string }[]>(served, '/api/stacks/web/runs', { token: operator })).body;
    expect(run).toMatchObject({ commit: c1, actor: 'otto' });
    const detail = await api<{ events: { type: string; message: string }[] }>(served, `/api/runs/${run!.id}`, { token: operator });
    expect(detail.body.events.find((e) => e.type === 'branch.moved-backwards')?.message).toMatch(/moved backwards/);
    expect(await served.stop()).toBe(0);
  });

  it('rollback: refused (400, audited) to a commit of an unmerged branch; accepted to an ancestor of the head', async () => {
    const { config, state, root } = await setup('  - { name: web, repo: remote.git, branch: main, path: stack, policy: auto, interval: 1h }\n');
    const c1 = await remote.push({ 'stack/hosts.yaml': hostYaml('web-1', root), 'stack/a.yaml': fileYaml('a', 'web-1', '/a.txt', 'v1\n') }, 'v1');
    const c2 = await remote.push({ 'stack/a.yaml': fileYaml('a', 'web-1', '/a.txt', 'v2\n') }, 'v2');
    // An unmerged branch, pushed to the same remote: the mirror holds its commit.
    await git(work(), 'checkout', '--quiet', '-b', 'evil', c1);
    await writeFile(path.join(work(), 'stack/a.yaml'), fileYaml('a', 'web-1', '/a.txt', 'evil\n'));
    await git(work(), 'commit', '--quiet', '-am', 'evil');
    await git(work(), 'push', '--quiet', 'origin', 'evil');
    const evil = (await git(work(), 'rev-parse', 'HEAD')).trim();
    const [operator, admin] = [await createToken(state, 'operator', 'otto'), await createToken(state, 'admin', 'ada')];
    const served = await serve(config);
    await waitFor('v2 applied', async () => existsSync(path.join(root, 'a.txt')) && (await readFile(path.join(root, 'a.txt'), 'utf8')) === 'v2\n');
    await waitFor('synced at c2', async () => (await stackView(served, operator)).lastAppliedCommit === c2);

    for (const commit of [evil, evil.slice(0, 10)]) {
      const refused = await api<{ error: string }>(served, '/api/stacks/web/rollback', { method: 'POST', token: operator, body: { commit } });
      expect(refused.status).toBe(400);
      expect(refused.body.error).toContain(`it is not on the history of branch main (head ${c2}) and this stack never applied it`);
    }
    expect((await api(served, '/api/stacks/web/rollback', { method: 'POST', token: operator, body: { commit: '-c0ffee' } })).status).toBe(400);
    const audit = await api<{ action: string; outcome: string; detail: { commit?: string; refused?: string } }[]>(served, '/api/audit', { token: admin });
    expect(audit.body[1]).toMatchObject({ action: 'stack.rollback', outcome: 'refused (400)', detail: { commit: evil, refused: expect.stringContaining('never applied') } });

    expect((await api(served, '/api/stacks/web/rollback', { method: 'POST', token: operator, body: { commit: c1 } })).status).toBe(202);
    await waitFor('rolled back to v1', async () => (await readFile(path.join(root, 'a.txt'), 'utf8')) === 'v1\n');
    expect(await readFile(path.join(root, 'a.txt'), 'utf8')).not.toBe('evil\n');
    expect(await served.stop()).toBe(0);
  });
});

describe('capstan token', () => {
  it('creates a token from a serve config whose webhook secret variable is not set', async () => {
    const { config, state } = await setup('  - { name: web, repo: remote.git, branch: main, webhookSecret: { env: CAPSTAN_E2E_UNSET_SECRET } }\n');
    const created = await capstan(['token', 'create', '--role', 'viewer', '--name', 'ci', '--config', config], { env: { CAPSTAN_E2E_UNSET_SECRET: '' } });
    expect(created.stderr).toMatch(/shown only this once/);
    expect(created.exitCode).toBe(0);
    expect(created.stdout.trim()).toMatch(/^capstan_[0-9a-f]{16}_/);
    const listed = await capstan(['token', 'list', '--json', '--state', state]);
    expect(JSON.parse(listed.stdout)).toEqual([expect.objectContaining({ name: 'ci', role: 'viewer' })]);
    // serve itself still refuses to start without it, naming the file and line.
    const served = await capstan(['serve', '--config', config], { env: { CAPSTAN_E2E_UNSET_SECRET: '' } });
    expect(served.exitCode).toBe(1);
    expect(served.stderr).toMatch(new RegExp(`serve.yaml:6:\\d+: stacks.0.webhookSecret: the environment variable CAPSTAN_E2E_UNSET_SECRET is not set`));
  });
});
