/**
 * Policies under `capstan serve` (docs/policies.md): a commit whose plan a policy
 * denies is not applied; the API shows the stack "denied by policy" and a
 * `plan.denied` event; a commit that passes is applied.
 */
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { api, createToken, fileYaml, gitRemote, hostYaml, killAll, serve, serveConfig, stackYaml, waitFor, type GitRemote } from './controller-harness.js';
import { assertBuilt, ROOT } from './harness.js';

vi.setConfig({ testTimeout: 240_000 });

let remote: GitRemote;
beforeAll(assertBuilt);
afterEach(async () => {
  await killAll();
  await remote?.cleanup();
});

const sudoersFile = (mode: string) => `kind: File\nname: deploy\ntarget: web-1\nspec:\n  path: /etc/sudoers.d/deploy\n  content: "deploy ALL=(ALL) NOPASSWD: ALL\\n"\n  mode: "${mode}"\n`;

describe('capstan serve with policies', () => {
  it('does not apply a denied plan: status denied by policy and a plan.denied event; the fixed commit applies', async () => {
    remote = await gitRemote();
    const { config, state, root } = await serveConfig(remote, stackYaml('web', { path: 'stack', policy: 'auto', interval: '2s' }));
    const policy = await readFile(path.join(ROOT, 'examples/policies/sudoers.yaml'), 'utf8');
    const c1 = await remote.push({ 'stack/hosts.yaml': hostYaml('web-1', root), 'stack/policies.yaml': policy, 'stack/sudoers.yaml': sudoersFile('0644') }, 'sudoers 0644');
    const viewer = await createToken(state, 'viewer', 'vera');
    const served = await serve(config);

    type StackView = { name: string; status: string; error: string | null; lastAppliedCommit: string | null; headCommit: string | null };
    const stackOf = async () => (await api<StackView[]>(served, '/api/stacks', { token: viewer })).body.find((s) => s.name === 'web')!;
    const denied = await waitFor('the stack denied by policy', async () => {
      const s = await stackOf();
      return s.status === 'denied' ? s : undefined;
    });
    expect(denied.error).toBe('denied by policy: File/deploy: files under /etc/sudoers.d must be mode 0440');
    expect(denied.lastAppliedCommit).toBeNull();
    expect(denied.headCommit).toBe(c1);
    expect(existsSync(path.join(root, 'etc/sudoers.d/deploy'))).toBe(false);
    const events = await api<{ type: string; message: string }[]>(served, '/api/stacks/web/events', { token: viewer });
    const event = events.body.find((e) => e.type === 'plan.denied');
    expect(event?.message).toMatch(/^the plan of commit [0-9a-f]+ is denied by policy: File\/deploy: files under \/etc\/sudoers.d must be mode 0440 \(Policy\/sudoers-mode\)$/);

    const c2 = await remote.push({ 'stack/sudoers.yaml': sudoersFile('0440') }, 'sudoers 0440');
    await waitFor('the fixed commit applied', async () => (await stackOf()).lastAppliedCommit === c2);
    expect((await stat(path.join(root, 'etc/sudoers.d/deploy'))).mode & 0o777).toBe(0o440);
  });
});

describe('capstan serve: policies see the stack labels and the approver', () => {
  it('an approved plan of a stack labelled prod is denied with one approver, and not applied', async () => {
    remote = await gitRemote();
    const { config, state, root } = await serveConfig(remote, stackYaml('payments', { path: 'stack', policy: 'approve', interval: '2s', labels: '{ prod: "" }' }));
    const policy = await readFile(path.join(ROOT, 'examples/policies/prod-approvals.yaml'), 'utf8');
    await remote.push({ 'stack/hosts.yaml': hostYaml('web-1', root), 'stack/policies.yaml': policy, 'stack/motd.yaml': fileYaml('motd', 'web-1', '/etc/motd', 'hello\n') }, 'motd');
    const viewer = await createToken(state, 'viewer', 'vera');
    const operator = await createToken(state, 'operator', 'otto');
    const served = await serve(config);

    type StackView = { name: string; status: string; error: string | null; lastAppliedCommit: string | null };
    const stackOf = async () => (await api<StackView[]>(served, '/api/stacks', { token: viewer })).body.find((s) => s.name === 'payments')!;
    await waitFor('the plan awaiting approval', async () => (await stackOf()).status === 'awaiting-approval');
    expect((await api(served, '/api/stacks/payments/approve', { method: 'POST', token: operator, body: {} })).status).toBe(202);
    const denied = await waitFor('the approved plan denied by policy', async () => {
      const s = await stackOf();
      return s.status === 'denied' ? s : undefined;
    });
    expect(denied.error).toBe('denied by policy: stack payments is labelled prod: File/motd needs two distinct approvers');
    expect(denied.lastAppliedCommit).toBeNull();
    expect(existsSync(path.join(root, 'etc/motd'))).toBe(false);
    const events = await api<{ type: string; message: string }[]>(served, '/api/stacks/payments/events', { token: viewer });
    expect(events.body.find((e) => e.type === 'plan.denied')?.message).toMatch(/^the approved plan \w+ is denied by policy: /);
  });
});
