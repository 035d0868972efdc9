/**
 * `capstan serve` end to end: a real bare git repository as the remote, the
 * built CLI in a child process, real HTTP, real files on disk.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { api, createToken, createTokenWithCli, fileYaml, gitRemote, githubWebhook, hostYaml, killAll, pushPayload, serve, serveConfig, stackYaml, waitFor, type GitRemote, type Served } from './controller-harness.js';
import { assertBuilt, capstan } from './harness.js';

const SECRET = 'e2e-webhook-secret-0123456789';

interface StackView {
  name: string;
  status: string;
  lastAppliedCommit: string | null;
  headCommit: string | null;
  drifted: number;
  owner: string | null;
  error: string | null;
  lastRun: { id: number; kind: string; status: string; commit: string } | null;
}

let remote: GitRemote;
beforeAll(assertBuilt);
afterEach(async () => {
  await killAll();
  await remote?.cleanup();
});

async function setup(stacks: string, extra = ''): Promise<{ config: string; state: string; root: string }> {
  remote = await gitRemote();
  return serveConfig(remote, stacks, extra);
}

async function stackOf(served: Served, token: string, name: string): Promise<StackView> {
  const r = await api<StackView[]>(served, '/api/stacks', { token });
  expect(r.status).toBe(200);
  const s = r.body.find((x) => x.name === name);
  if (!s) throw new Error(`no stack ${name}`);
  return s;
}

describe('capstan serve', () => {
  it('applies a push announced by a signed GitHub webhook; refuses forged, unsigned and replayed ones; enforces tokens', async () => {
    const { config, state, root } = await setup(stackYaml('web', { path: 'stack', policy: 'auto', interval: '10m', webhookSecret: '{ env: HOOK_SECRET }' }));
    const motd = path.join(root, 'etc/motd');
    const c1 = await remote.push({ 'stack/hosts.yaml': hostYaml('web-1', root), 'stack/motd.yaml': fileYaml('motd', 'web-1', '/etc/motd', 'v1\n') }, 'first');
    const viewer = await createTokenWithCli(state, 'viewer', 'vera');
    const operator = await createToken(state, 'operator', 'otto');
    const admin = await createToken(state, 'admin', 'ada');
    const served = await serve(config, { HOOK_SECRET: SECRET });

    await waitFor('the first commit applied', async () => (await stackOf(served, viewer, 'web')).lastAppliedCommit === c1);
    expect(await readFile(motd, 'utf8')).toBe('v1\n');

    // Listen to the event stream while the next push is applied.
    const stream = await fetch(`${served.url}/api/events?stack=web`, { headers: { authorization: `Bearer ${viewer}` } });
    expect(stream.status).toBe(200);
    expect(stream.headers.get('content-type')).toContain('text/event-stream');
    const reader = stream.body!.getReader();
    let sse = '';
    const reading = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        sse += Buffer.from(value).toString('utf8');
      }
    })().catch(() => undefined);

    const c2 = await remote.push({ 'stack/motd.yaml': fileYaml('motd', 'web-1', '/etc/motd', 'v2\n') }, 'second');
    const body = pushPayload(remote.remote, c2);
    expect((await githubWebhook(served, body, 'not-the-secret')).status).toBe(401);
    expect((await githubWebhook(served, body, null)).status).toBe(401);
    const delivery = randomUUID();
    const accepted = await githubWebhook(served, body, SECRET, delivery);
    expect(accepted).toEqual({ status: 202, body: { status: 'accepted', delivery, stacks: ['web'] } });
    await waitFor('the pushed commit applied', async () => (await readFile(motd, 'utf8')) === 'v2\n');
    const replay = await githubWebhook(served, body, SECRET, delivery);
    expect(replay).toEqual({ status: 200, body: { status: 'duplicate', delivery } });

    const web = await waitFor('the stack synced at c2', async () => {
      const s = await stackOf(served, viewer, 'web');
      return s.lastAppliedCommit === c2 && s.status === 'synced' ? s : undefined;
    });
    expect(web).toMatchObject({ headCommit: c2, drifted: 0, lastRun: { kind: 'apply', status: 'succeeded', commit: c2 } });
    const run = await api<{ results: { address: string; action: string; status: string }[]; commit: string }>(served, `/api/runs/${web.lastRun!.id}`, { token: viewer });
    expect(run.body.commit).toBe(c2);
    expect(run.body.results).toEqual([expect.objectContaining({ address: 'File/motd', action: 'update', status: 'succeeded' })]);
    const runs = await api<{ commit: string }[]>(served, '/api/stacks/web/runs', { token: viewer });
    expect(runs.body.map((r) => r.commit)).toEqual([c2, c1]);
    const plan = await api<string>(served, '/api/stacks/web/plan?format=text', { token: viewer });
    expect(plan.body).toContain('File/motd');

    await waitFor('apply events on the stream', async () => sse.includes('event: apply.finished') && sse.includes('"address":"File/motd"'));
    await reader.cancel();
    await reading;

    // Tokens: none → 401, viewer → 403 on a mutating call, operator → 202; token holders' calls audited, anonymous ones counted.
    expect((await api(served, '/api/stacks')).status).toBe(401);
    expect((await api(served, '/api/stacks/web/sync', { method: 'POST', token: viewer })).status).toBe(403);
    expect((await api(served, '/api/stacks/web/sync', { method: 'POST' })).status).toBe(401);
    expect((await api(served, '/api/stacks/web/sync', { method: 'POST', token: operator })).status).toBe(202);
    const audit = await api<{ actor: string; action: string; outcome: string }[]>(served, '/api/audit', { token: admin });
    expect(audit.body.slice(0, 3).map((e) => `${e.actor.split(' ')[0]} ${e.action} ${e.outcome}`)).toEqual([
      'otto stack.sync ok',
      'vera stack.sync refused (403)',
      'webhook:github webhook.push ok',
    ]);

    const metrics = await (await fetch(`${served.url}/metrics`)).text();
    expect(metrics).toContain(`capstan_stack_last_applied_info{stack="web",commit="${c2}"} 1`);
    expect(metrics).toMatch(/capstan_webhook_deliveries_total\{provider="github",result="unauthorized"\} 2/);
    expect(metrics).toMatch(/capstan_webhook_deliveries_total\{provider="github",result="duplicate"\} 1/);
    expect(metrics).toMatch(/capstan_http_rejected_total\{reason="unauthenticated_missing"\} [2-9]/);
    expect((await fetch(`${served.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${served.url}/readyz`)).status).toBe(200);
    expect(await (await fetch(`${served.url}/`)).text()).toContain('<title>Capstan</title>');

    // Every reconcile log line carries the pass's run id; no secret or token is ever logged.
    const reconcileLines = served.logs().filter((l) => l.stack === 'web' && typeof l.msg === 'string' && /pass|apply/.test(l.msg as string));
    expect(reconcileLines.length).toBeGreaterThan(0);
    for (const l of reconcileLines) expect(l.runId).toMatch(/^pass-[0-9a-f]{8}$/);
    const allLogs = JSON.stringify(served.logs());
    for (const secret of [SECRET, viewer, operator, admin]) expect(allLogs).not.toContain(secret);

    // Rollback: the spec of an earlier commit is applied as a new run, and stays until the next push.
    expect((await api(served, '/api/stacks/web/rollback', { method: 'POST', token: viewer, body: { commit: c1 } })).status).toBe(403);
    const rollback = await api<{ commit: string }>(served, '/api/stacks/web/rollback', { method: 'POST', token: operator, body: { commit: c1.slice(0, 12) } });
    expect(rollback).toMatchObject({ status: 202, body: { commit: c1 } });
    await waitFor('the rollback applied', async () => (await readFile(motd, 'utf8')) === 'v1\n');
    const rolledBack = await waitFor('recorded', async () => {
      const s = await stackOf(served, viewer, 'web');
      return s.lastAppliedCommit === c1 && s.lastRun?.commit === c1 ? s : undefined;
    });
    expect(rolledBack).toMatchObject({ headCommit: c2, lastRun: { kind: 'apply', status: 'succeeded' } });
    expect((await api<unknown[]>(served, '/api/stacks/web/runs', { token: viewer })).body).toHaveLength(3);

    expect(await served.stop()).toBe(0);
  });

  it('heals drift with selfHeal, and only reports it under plan-only', async () => {
    const { config, state, root } = await setup(
      stackYaml('healed', { path: 'healed', policy: 'auto', selfHeal: 'true', interval: '10m', driftInterval: '1s' }) +
        stackYaml('watched', { path: 'watched', policy: 'plan-only', selfHeal: 'true', interval: '10m', driftInterval: '1s' }),
    );
    const healedFile = path.join(root, 'healed/etc/app.conf');
    const watchedFile = path.join(root, 'watched/etc/app.conf');
    const commit = await remote.push({
      'healed/all.yaml': hostYaml('h', path.join(root, 'healed')) + '---\n' + fileYaml('conf', 'h', '/etc/app.conf', 'port=80\n'),
      'watched/all.yaml': hostYaml('w', path.join(root, 'watched')) + '---\n' + fileYaml('conf', 'w', '/etc/app.conf', 'port=80\n'),
    });
    // The plan-only stack was applied once by hand (the CLI), at the same commit.
    const cli = await capstan(['apply', '--repo', remote.remote, '--ref', 'main', '--path', 'watched', '--state', state, '--stack', 'watched', '--yes']);
    expect(cli.stderr).toBe('');
    expect(cli.exitCode).toBe(0);
    const viewer = await createToken(state, 'viewer', 'vera');
    const served = await serve(config);

    await waitFor('both stacks synced', async () => {
      const [h, w] = [await stackOf(served, viewer, 'healed'), await stackOf(served, viewer, 'watched')];
      return h.status === 'synced' && w.status === 'synced' && h.lastAppliedCommit === commit && w.lastAppliedCommit === commit;
    });
    await writeFile(healedFile, 'port=6666\n');
    await writeFile(watchedFile, 'port=6666\n');

    await waitFor('the drift healed', async () => (await readFile(healedFile, 'utf8')) === 'port=80\n');
    const watched = await waitFor('the drift reported', async () => {
      const s = await stackOf(served, viewer, 'watched');
      return s.status === 'drifted' ? s : undefined;
    });
    expect(watched.drifted).toBe(1);
    expect(await readFile(watchedFile, 'utf8')).toBe('port=6666\n');
    const events = await api<{ type: string }[]>(served, '/api/stacks/healed/events', { token: viewer });
    expect(events.body.map((e) => e.type)).toContain('drift.detected');
    const metrics = await (await fetch(`${served.url}/metrics`)).text();
    expect(metrics).toContain('capstan_stack_drifted_resources{stack="watched"} 1');
    // Under plan-only nothing was ever applied by the controller: the only run is the CLI's.
    const runs = await api<{ actor: string }[]>(served, '/api/stacks/watched/runs', { token: viewer });
    expect(runs.body).toHaveLength(1);
    expect(await served.stop()).toBe(0);
  });

  it('a broken commit produces a failed plan and changes nothing; the next good commit goes through', async () => {
    const { config, state, root } = await setup(stackYaml('web', { path: 'stack', policy: 'auto', interval: '10m' }));
    const motd = path.join(root, 'etc/motd');
    const c1 = await remote.push({ 'stack/hosts.yaml': hostYaml('web-1', root), 'stack/motd.yaml': fileYaml('motd', 'web-1', '/etc/motd', 'v1\n') });
    const operator = await createToken(state, 'operator', 'otto');
    const served = await serve(config);
    await waitFor('first commit applied', async () => (await stackOf(served, operator, 'web')).lastAppliedCommit === c1);

    // A typo'd field and a second file removed: an invalid spec must never read as "delete everything".
    const bad = await remote.push({ 'stack/motd.yaml': 'kind: File\nname: motd\ntarget: web-1\nspec:\n  pth: /etc/motd\n  content: "v2\\n"\n' }, 'broken');
    expect((await api(served, '/api/stacks/web/sync', { method: 'POST', token: operator })).status).toBe(202);
    const web = await waitFor('the failed plan', async () => {
      const s = await stackOf(served, operator, 'web');
      return s.status === 'invalid' ? s : undefined;
    });
    expect(web.lastRun).toMatchObject({ kind: 'plan', status: 'failed', commit: bad });
    expect(web.error).toMatch(/motd\.yaml:\d+:\d+/);
    expect(web.lastAppliedCommit).toBe(c1);
    expect(await readFile(motd, 'utf8')).toBe('v1\n');
    const run = await api<{ events: { type: string; message: string }[] }>(served, `/api/runs/${web.lastRun!.id}`, { token: operator });
    expect(run.body.events.some((e) => e.type === 'diagnostic' && /motd\.yaml:\d+:\d+/.test(e.message))).toBe(true);

    const fixed = await remote.push({ 'stack/motd.yaml': fileYaml('motd', 'web-1', '/etc/motd', 'v3\n') }, 'fixed');
    expect((await api(served, '/api/stacks/web/sync', { method: 'POST', token: operator })).status).toBe(202);
    // The file is written during the apply; the stack's status moves when the run has been recorded.
    await waitFor('the fix applied', async () => (await stackOf(served, operator, 'web')).lastAppliedCommit === fixed);
    expect(await readFile(motd, 'utf8')).toBe('v3\n');

    // Deleting every managed resource is refused without allowMassDelete on the stack.
    await remote.push({ 'stack/motd.yaml': null }, 'remove motd');
    expect((await api(served, '/api/stacks/web/sync', { method: 'POST', token: operator })).status).toBe(202);
    const refused = await waitFor('the mass delete refused', async () => {
      const s = await stackOf(served, operator, 'web');
      return s.status === 'failed' ? s : undefined;
    });
    expect(refused.error).toMatch(/deletes 1 of 1 managed resources.*allowMassDelete: true/);
    expect(await readFile(motd, 'utf8')).toBe('v3\n');
    expect(await served.stop()).toBe(0);
  });

  it('approve policy waits for an operator; a viewer cannot approve', async () => {
    const { config, state, root } = await setup(stackYaml('gated', { path: 'stack', policy: 'approve', interval: '10m' }));
    const motd = path.join(root, 'etc/motd');
    const c1 = await remote.push({ 'stack/hosts.yaml': hostYaml('web-1', root), 'stack/motd.yaml': fileYaml('motd', 'web-1', '/etc/motd', 'v1\n') });
    const viewer = await createToken(state, 'viewer', 'vera');
    const operator = await createToken(state, 'operator', 'otto');
    const served = await serve(config);
    const pending = await waitFor('a pending plan', async () => {
      const r = await api<{ state: string; id: string; commit: string; counts: Record<string, number> }>(served, '/api/stacks/gated/plan', { token: viewer });
      return r.status === 200 && r.body.state === 'pending' ? r.body : undefined;
    });
    expect(pending).toMatchObject({ commit: c1, counts: { create: 1 } });
    expect((await stackOf(served, viewer, 'gated')).status).toBe('awaiting-approval');
    expect(existsSync(motd)).toBe(false);

    expect((await api(served, '/api/stacks/gated/approve', { method: 'POST', token: viewer })).status).toBe(403);
    expect((await api(served, '/api/stacks/gated/approve', { method: 'POST' })).status).toBe(401);
    expect(existsSync(motd)).toBe(false);
    const approved = await api(served, '/api/stacks/gated/approve', { method: 'POST', token: operator, body: { planId: pending.id } });
    expect(approved.status).toBe(202);
    await waitFor('the approved plan applied', async () => existsSync(motd) && (await readFile(motd, 'utf8')) === 'v1\n');
    const gated = await waitFor('synced', async () => {
      const s = await stackOf(served, viewer, 'gated');
      return s.status === 'synced' ? s : undefined;
    });
    const runs = await api<{ actor: string; commit: string }[]>(served, '/api/stacks/gated/runs', { token: viewer });
    expect(runs.body[0]).toMatchObject({ actor: 'otto', commit: c1 });
    expect(gated.lastAppliedCommit).toBe(c1);
    expect(await served.stop()).toBe(0);
  });

});
