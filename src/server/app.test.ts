import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Secret, type ControllerConfig, type StackConfig } from '../reconcile/config.js';
import { Controller } from '../reconcile/controller.js';
import { EventBus } from '../reconcile/events.js';
import { FakeClock, settle } from '../reconcile/testing/fake-clock.js';
import { FakeEngine } from '../reconcile/testing/fake-engine.js';
import { SqliteStore } from '../state/sqlite/sqlite-store.js';
import { controllerStoreOf, type ControllerStore } from '../state/store.js';
import { buildServer } from './app.js';
import { createApiToken } from './auth.js';
import { ControllerMetrics } from './metrics.js';

const SECRET = 'webhook-secret-for-tests';

function stack(overrides: Partial<StackConfig>): StackConfig {
  return {
    name: 'prod',
    repo: '/srv/git/infra.git',
    branch: 'main',
    path: '.',
    policy: 'auto',
    intervalMs: 60_000,
    driftIntervalMs: 300_000,
    selfHeal: false,
    allowMassDelete: false,
    pruneAdopted: false,
    parallelism: 4,
    webhookSecret: new Secret(SECRET),
    labels: {},
    ...overrides,
  };
}

let store: SqliteStore;
let cs: ControllerStore;
let engine: FakeEngine;
let controller: Controller;
let app: FastifyInstance;
let metrics: ControllerMetrics;
let tokens: Record<'viewer' | 'operator' | 'admin', string>;
/** The file the server was "started with": `POST /api/stacks/reload` re-reads it. */
let configDir: string;
let configFile: string;

beforeEach(async () => {
  store = await SqliteStore.open(':memory:');
  cs = controllerStoreOf(store);
  engine = new FakeEngine(store);
  const stacks = [stack({}), stack({ name: 'gated', policy: 'approve', repo: '/srv/git/gated.git' }), stack({ name: 'quiet', repo: '/srv/git/infra.git', branch: 'other' })];
  configDir = mkdtempSync(path.join(os.tmpdir(), 'capstan-app-'));
  configFile = path.join(configDir, 'serve.yaml');
  const config: ControllerConfig = {
    file: configFile,
    listen: { host: '127.0.0.1', port: 0 },
    state: 'sqlite::memory:',
    cacheDir: undefined,
    concurrency: 2,
    passTimeoutMs: 60_000,
    shutdownGraceMs: 1_000,
    trustProxy: false,
    webhookRateLimit: 20,
    // Above the 10 parallel signed deliveries of the real-HTTP test below (they all come from 127.0.0.1).
    webhookConcurrency: 32,
    webhookMaxBytes: 4096,
    audit: { retentionMs: null, maxRows: null },
    stacks,
  };
  const events = new EventBus();
  metrics = new ControllerMetrics('test');
  const logger = pino({ level: 'silent' });
  controller = new Controller({
    stacks,
    store,
    controllerStore: cs,
    engine,
    events,
    clock: new FakeClock(),
    logger,
    actor: { user: 'controller', host: os.hostname(), pid: process.pid },
    replicaId: 'test',
    concurrency: 2,
    passTimeoutMs: 60_000,
    observer: metrics,
  });
  app = await buildServer({ config, controller, store, controllerStore: cs, engine, events, metrics, logger, checkResponses: true });
  tokens = {
    viewer: (await createApiToken(cs, { role: 'viewer', name: 'vera' })).token,
    operator: (await createApiToken(cs, { role: 'operator', name: 'otto' })).token,
    admin: (await createApiToken(cs, { role: 'admin', name: 'ada' })).token,
  };
  engine.commit('c1', { a: '1' });
});

afterEach(async () => {
  await controller.stop(0);
  await app.close();
  await store.close();
  rmSync(configDir, { recursive: true, force: true });
});

const auth = (role: keyof typeof tokens) => ({ authorization: `Bearer ${tokens[role]}` });

function push(ref = 'refs/heads/main', repo = '/srv/git/infra.git'): string {
  return JSON.stringify({ ref, after: 'f'.repeat(40), repository: { clone_url: repo, default_branch: 'main' } });
}

function github(body: string, delivery: string, secret = SECRET) {
  return {
    method: 'POST' as const,
    url: '/api/webhooks/github',
    payload: body,
    headers: {
      'content-type': 'application/json',
      'x-github-event': 'push',
      'x-github-delivery': delivery,
      'x-hub-signature-256': `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`,
    },
  };
}

describe('API auth and audit', () => {
  it('401 without a valid token, 403 for a role that may not, and audits mutating calls', async () => {
    expect((await app.inject({ url: '/api/stacks' })).statusCode).toBe(401);
    const malformed = await app.inject({ url: '/api/stacks', headers: { authorization: 'Bearer capstan_nope' } });
    expect(malformed.statusCode).toBe(401);
    expect(malformed.json().error).toBe('authentication required (malformed token): send Authorization: Bearer <token>; make one with `capstan token create --config <serve config> --role viewer`');
    const list = await app.inject({ url: '/api/stacks', headers: auth('viewer') });
    expect(list.statusCode).toBe(200);
    expect(list.json().map((s: { name: string }) => s.name)).toEqual(['prod', 'gated', 'quiet']);
    expect(list.json()[0]).toMatchObject({ name: 'prod', status: 'pending', lastAppliedCommit: null, policy: 'auto', drifted: 0, lastRun: null });

    expect((await app.inject({ method: 'POST', url: '/api/stacks/prod/sync', headers: auth('viewer') })).statusCode).toBe(403);
    expect((await app.inject({ method: 'POST', url: '/api/stacks/gated/approve', headers: auth('viewer') })).statusCode).toBe(403);
    expect((await app.inject({ method: 'POST', url: '/api/stacks/prod/sync' })).statusCode).toBe(401);
    expect((await app.inject({ method: 'POST', url: '/api/stacks/prod/sync', headers: auth('operator') })).statusCode).toBe(202);
    expect((await app.inject({ url: '/api/audit', headers: auth('operator') })).statusCode).toBe(403);
    expect((await app.inject({ method: 'POST', url: '/api/tokens', headers: auth('operator'), payload: { role: 'admin' } })).statusCode).toBe(403);

    const audit = await app.inject({ url: '/api/audit', headers: auth('admin') });
    const entries = audit.json() as { actor: string; action: string; outcome: string; ip: string; target: string }[];
    expect(entries.map((e) => [e.actor.split(' ')[0], e.action, e.outcome])).toEqual([
      ['otto', 'token.create', 'refused (403)'],
      ['otto', 'stack.sync', 'ok'],
      ['vera', 'stack.approve', 'refused (403)'],
      ['vera', 'stack.sync', 'refused (403)'],
    ]);
    expect(entries[1]).toMatchObject({ target: 'prod', ip: '127.0.0.1' });
  });

  it('admins create, list and revoke tokens; a revoked token stops working; the token is never listed', async () => {
    const created = await app.inject({ method: 'POST', url: '/api/tokens', headers: auth('admin'), payload: { role: 'viewer', name: 'grafana', expires: '30d' } });
    expect(created.statusCode).toBe(201);
    const { token, id } = created.json() as { token: string; id: string };
    expect((await app.inject({ url: '/api/stacks', headers: { authorization: `Bearer ${token}` } })).statusCode).toBe(200);
    const listed = await app.inject({ url: '/api/tokens', headers: auth('admin') });
    expect(listed.body).not.toContain(token);
    expect((await app.inject({ method: 'DELETE', url: `/api/tokens/${id}`, headers: auth('admin') })).statusCode).toBe(204);
    expect((await app.inject({ url: '/api/stacks', headers: { authorization: `Bearer ${token}` } })).statusCode).toBe(401);
    const audit = JSON.stringify((await app.inject({ url: '/api/audit', headers: auth('admin') })).json());
    expect(audit).toContain('token.create');
    expect(audit).toContain('token.revoke');
    expect(audit).not.toContain(token);
  });
});

describe('what the audit log keeps', () => {
  it('500 anonymous POSTs and requests to unknown routes add no audit rows; they are counted', async () => {
    for (let i = 0; i < 250; i++) {
      expect((await app.inject({ method: 'POST', url: `/api/stacks/prod/sync?pad=${'x'.repeat(10_000)}` })).statusCode).toBe(401);
      expect((await app.inject({ method: 'POST', url: `/api/${'y'.repeat(10_000)}/${i}`, headers: { authorization: 'Bearer capstan_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' } })).statusCode).toBe(404);
    }
    expect((await app.inject({ method: 'POST', url: '/api/stacks/prod/sync', headers: { authorization: 'Bearer not-a-token' } })).statusCode).toBe(401);
    expect(await cs.listAudit({ limit: 1000 })).toEqual([]);
    const text = await metrics.registry.metrics();
    expect(text).toContain('capstan_http_rejected_total{reason="unauthenticated_missing"} 250');
    expect(text).toContain('capstan_http_rejected_total{reason="unknown_route"} 250');
    expect(text).toContain('capstan_http_rejected_total{reason="unauthenticated_malformed"} 1');
    // A token holder's refused call is still audited.
    expect((await app.inject({ method: 'POST', url: '/api/stacks/prod/sync', headers: auth('viewer') })).statusCode).toBe(403);
    expect((await cs.listAudit({ limit: 10 })).map((e) => [e.action, e.outcome])).toEqual([['stack.sync', 'refused (403)']]);
  });

  it('caps the detail an entry stores at 4 KiB', async () => {
    const r = await app.inject({ method: 'POST', url: '/api/tokens', headers: auth('admin'), payload: { role: 'viewer', name: 'n', note: 'é'.repeat(50_000) } });
    expect(r.statusCode).toBe(201);
    const [created] = await cs.listAudit({ limit: 1 });
    expect(created).toMatchObject({ action: 'token.create', outcome: 'ok', detail: { truncated: true, bytes: 100_038 } });
    expect(Buffer.byteLength(JSON.stringify(created!.detail), 'utf8')).toBeLessThanOrEqual(4096);
  });
});

describe('reloading the stack list', () => {
  const SECRET_ENV = 'CAPSTAN_APP_TEST_WEBHOOK_SECRET';
  beforeEach(() => {
    process.env[SECRET_ENV] = SECRET;
  });
  afterEach(() => {
    delete process.env[SECRET_ENV];
  });
  const reload = (headers: Record<string, string> = auth('admin')) => app.inject({ method: 'POST', url: '/api/stacks/reload', headers });
  const names = async () => (await app.inject({ url: '/api/stacks', headers: auth('viewer') })).json().map((s: { name: string }) => s.name);

  it('only an admin may reload; a new file adds and removes stacks; a broken one changes nothing; all audited', async () => {
    // prod as at start (unchanged), gated and quiet gone, edge new.
    writeFileSync(
      configFile,
      [
        'state: "sqlite::memory:"',
        'stacks:',
        '  - name: prod',
        '    repo: /srv/git/infra.git',
        '    branch: main',
        '    interval: 60s',
        '    parallelism: 4',
        `    webhookSecret: { env: ${SECRET_ENV} }`,
        '  - name: edge',
        '    repo: /srv/git/edge.git',
        '',
      ].join('\n'),
    );
    expect((await reload({})).statusCode).toBe(401);
    expect((await reload(auth('viewer'))).statusCode).toBe(403);
    expect((await reload(auth('operator'))).statusCode).toBe(403);
    expect(await names()).toEqual(['prod', 'gated', 'quiet']);

    const ok = await reload();
    expect(ok.statusCode, ok.body).toBe(200);
    expect(ok.json()).toMatchObject({ status: 'reloaded', file: configFile, added: ['edge'], updated: [], removed: ['gated', 'quiet'], unchanged: ['prod'] });
    expect(ok.json().note).toMatch(/listen, state .* restart/);
    expect(await names()).toEqual(['prod', 'edge']);
    expect((await app.inject({ url: '/api/stacks/gated', headers: auth('viewer') })).statusCode).toBe(404);
    expect((await app.inject({ url: '/api/stacks/edge', headers: auth('viewer') })).json()).toMatchObject({ name: 'edge', repo: '/srv/git/edge.git', branch: 'HEAD' });

    writeFileSync(configFile, ['state: "sqlite::memory:"', 'stacks:', '  - name: prod', '    repo: /srv/git/infra.git', '    polcy: auto', ''].join('\n'));
    const broken = await reload();
    expect(broken.statusCode).toBe(400);
    expect(broken.json().errors).toEqual([expect.stringMatching(new RegExp(`^${configFile}:5:5: stacks.0: unknown key "polcy" \\(did you mean "policy"\\?\\)`))]);
    expect(await names()).toEqual(['prod', 'edge']);

    const entries = (await app.inject({ url: '/api/audit', headers: auth('admin') })).json() as { actor: string; action: string; outcome: string; detail: unknown }[];
    expect(entries.filter((e) => e.action === 'stacks.reload').map((e) => [e.actor.split(' ')[0], e.outcome])).toEqual([
      ['ada', 'refused (400)'],
      ['ada', 'ok'],
      ['otto', 'refused (403)'],
      ['vera', 'refused (403)'],
    ]);
    expect(entries[1]!.detail).toEqual({ file: configFile, added: ['edge'], updated: [], removed: ['gated', 'quiet'], unchanged: ['prod'] });
    expect(entries[0]!.detail).toMatchObject({ errors: [expect.stringContaining('polcy')] });
  });
});

describe('webhooks', () => {
  it('a signed push refreshes only the stacks following that repository and branch', async () => {
    const r = await app.inject(github(push(), 'd-1'));
    expect(r.statusCode).toBe(202);
    expect(r.json()).toMatchObject({ status: 'accepted', stacks: ['prod'] });
    await settle();
    expect(engine.live.get('a')).toBe('1');
    expect(engine.calls.apply).toBe(1);
    // A push to a branch no stack follows, or another repository, triggers nothing.
    expect((await app.inject(github(push('refs/heads/feature'), 'd-2'))).json()).toMatchObject({ status: 'ignored' });
    expect((await app.inject(github(push('refs/heads/main', '/srv/git/unknown.git'), 'd-3'))).json()).toMatchObject({ status: 'ignored' });
  });

  it('refuses forged and unsigned deliveries and ignores replays', async () => {
    const forged = await app.inject(github(push(), 'd-1', 'not-the-secret'));
    expect(forged.statusCode).toBe(401);
    const unsigned = github(push(), 'd-1');
    delete (unsigned.headers as Record<string, string>)['x-hub-signature-256'];
    expect((await app.inject(unsigned)).statusCode).toBe(401);
    // Body changed after signing.
    const tampered = github(push(), 'd-1');
    tampered.payload = push('refs/heads/main', '/srv/git/gated.git');
    expect((await app.inject(tampered)).statusCode).toBe(401);
    await settle();
    expect(engine.calls.resolve).toBe(0);

    expect((await app.inject(github(push(), 'd-9'))).statusCode).toBe(202);
    await settle();
    const resolves = engine.calls.resolve;
    const replay = await app.inject(github(push(), 'd-9'));
    expect(replay.statusCode).toBe(200);
    expect(replay.json()).toMatchObject({ status: 'duplicate' });
    await settle();
    expect(engine.calls.resolve).toBe(resolves);

    const text = await metrics.registry.metrics();
    expect(text).toMatch(/capstan_webhook_deliveries_total\{provider="github",result="unauthorized"\} 3/);
    expect(text).toMatch(/capstan_webhook_deliveries_total\{provider="github",result="duplicate"\} 1/);
    expect(text).toMatch(/capstan_webhook_deliveries_total\{provider="github",result="accepted"\} 1/);
  });

  it('caps the body size (413) and rate-limits the failed deliveries of each source (429)', async () => {
    const big = github(JSON.stringify({ ref: 'refs/heads/main', pad: 'x'.repeat(5000) }), 'd-big');
    expect((await app.inject(big)).statusCode).toBe(413);
    const codes: number[] = [];
    for (let i = 0; i < 30; i++) codes.push((await app.inject(github(push(), `d-rl-${i}`, 'forged'))).statusCode);
    expect(codes.filter((c) => c === 429).length).toBeGreaterThan(0);
    expect(codes.filter((c) => c !== 429 && c !== 401)).toEqual([]);
    // Signed deliveries from the same address are not limited.
    for (let i = 0; i < 30; i++) expect((await app.inject(github(push(), `d-ok-${i}`))).statusCode).toBe(202);
    expect(await metrics.registry.metrics()).toMatch(/capstan_webhook_deliveries_total\{provider="github",result="too_large"\} 1/);
  });

  it('over real HTTP, 500 forged deliveries interleaved with 500 signed ones: every signed one is accepted', async () => {
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    const post = async (delivery: string, secret: string): Promise<number> => {
      const req = github(push(), delivery, secret);
      const res = await fetch(url + req.url, { method: 'POST', headers: req.headers, body: req.payload });
      await res.arrayBuffer();
      return res.status;
    };
    const signed: number[] = [];
    const forged: number[] = [];
    for (let i = 0; i < 500; i += 10) {
      const batch = Array.from({ length: 10 }, (_, j) => i + j);
      const [f, g] = await Promise.all([Promise.all(batch.map((n) => post(`forged-${n}`, 'guess'))), Promise.all(batch.map((n) => post(`signed-${n}`, SECRET)))]);
      forged.push(...f);
      signed.push(...g);
    }
    expect(signed.filter((c) => c !== 202)).toEqual([]);
    expect(new Set(forged)).toEqual(new Set([401, 429]));
    expect(forged.filter((c) => c === 401).length).toBeLessThan(60);
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/capstan_webhook_deliveries_total\{provider="github",result="accepted"\} 500/);
  });

  it('answers pings and ignores other events', async () => {
    const ping = github('{"zen":"Keep it logically awesome."}', 'p-1');
    ping.headers['x-github-event'] = 'ping';
    expect((await app.inject(ping)).json()).toEqual({ status: 'pong' });
    expect((await app.inject({ ...github(push(), 'x-1'), url: '/api/webhooks/bitbucket' })).statusCode).toBe(404);
  });
});

describe('approve policy through the API', () => {
  it('shows the pending plan; a viewer cannot approve; an operator approval applies it', async () => {
    // Only this stack: the fake world is shared between stacks.
    controller.trigger('gated');
    await settle();
    const plan = await app.inject({ url: '/api/stacks/gated/plan', headers: auth('viewer') });
    expect(plan.json()).toMatchObject({ state: 'pending', commit: 'c1', counts: { create: 1 } });
    const text = await app.inject({ url: '/api/stacks/gated/plan?format=text', headers: auth('viewer') });
    expect(text.headers['content-type']).toMatch(/text\/plain/);
    expect(text.body).toContain('Plan: 1 to create');
    expect((await app.inject({ method: 'POST', url: '/api/stacks/gated/approve', headers: auth('viewer') })).statusCode).toBe(403);
    expect((await app.inject({ method: 'POST', url: '/api/stacks/gated/approve', headers: auth('operator'), payload: { planId: 'wrong' } })).statusCode).toBe(409);
    expect((await app.inject({ method: 'POST', url: '/api/stacks/prod/approve', headers: auth('operator') })).statusCode).toBe(409);
    const applies = engine.calls.apply;
    const ok = await app.inject({ method: 'POST', url: '/api/stacks/gated/approve', headers: auth('operator'), payload: { planId: plan.json().id } });
    expect(ok.statusCode).toBe(202);
    await settle();
    expect(engine.calls.apply).toBe(applies + 1);
    const runs = (await app.inject({ url: '/api/stacks/gated/runs', headers: auth('viewer') })).json() as { id: number; actor: string; status: string }[];
    expect(runs[0]).toMatchObject({ actor: 'otto', status: 'succeeded' });
    const run = await app.inject({ url: `/api/runs/${runs[0]!.id}`, headers: auth('viewer') });
    expect(run.json()).toMatchObject({ id: runs[0]!.id, stack: 'gated', results: [], events: [{ type: 'controller' }] });
    expect((await app.inject({ url: '/api/stacks/gated', headers: auth('viewer') })).json()).toMatchObject({ status: 'synced', lastAppliedCommit: 'c1', plan: { state: 'applied' } });
  });

  it('rolls back to an earlier commit until the next push', async () => {
    controller.start();
    await settle();
    engine.commit('c2', { a: '2' });
    controller.trigger('prod');
    await settle();
    expect(engine.live.get('a')).toBe('2');
    expect((await app.inject({ method: 'POST', url: '/api/stacks/prod/rollback', headers: auth('operator'), payload: { commit: 'nothex' } })).statusCode).toBe(400);
    expect((await app.inject({ method: 'POST', url: '/api/stacks/prod/rollback', headers: auth('operator'), payload: { commit: 'abcdef1' } })).statusCode).toBe(422);
    // The fake repository names commits c1, c2: register a hex alias for c1, on the branch's history.
    engine.commits.set('c0ffee1', engine.commits.get('c1')!);
    engine.commits.set('c2', { ...engine.commits.get('c2')!, parent: 'c0ffee1' });
    const r = await app.inject({ method: 'POST', url: '/api/stacks/prod/rollback', headers: auth('operator'), payload: { commit: 'c0ffee1' } });
    expect(r.statusCode).toBe(202);
    await settle();
    expect(engine.live.get('a')).toBe('1');
    expect(engine.appliedCommits.at(-1)).toBe('c0ffee1');
    // Polls keep the rollback while the branch stays where it was.
    await controllerPoll();
    expect(engine.live.get('a')).toBe('1');
    engine.commit('c3', { a: '3' });
    controller.trigger('prod');
    await settle();
    expect(engine.live.get('a')).toBe('3');
    expect((await cs.getStackStatus('prod'))?.rollback).toBeNull();
  });
});

describe('pause and resume', () => {
  it('an operator pauses a stack: no pass reads git or applies, a sync is refused (409); resume syncs it; all audited', async () => {
    controller.start();
    await settle();
    expect(engine.live.get('a')).toBe('1');
    expect((await app.inject({ method: 'POST', url: '/api/stacks/prod/pause', headers: auth('viewer') })).statusCode).toBe(403);
    expect((await app.inject({ method: 'POST', url: '/api/stacks/nope/pause', headers: auth('operator') })).statusCode).toBe(404);
    const paused = await app.inject({ method: 'POST', url: '/api/stacks/prod/pause', headers: auth('operator') });
    expect(paused.json()).toMatchObject({ status: 'paused', by: 'otto' });
    // Pausing twice changes nothing: the first pause stays.
    expect((await app.inject({ method: 'POST', url: '/api/stacks/prod/pause', headers: auth('admin') })).json()).toMatchObject({ status: 'paused', by: 'otto' });
    expect((await app.inject({ url: '/api/stacks/prod', headers: auth('viewer') })).json()).toMatchObject({ status: 'paused', paused: { by: 'otto' } });

    engine.commit('c2', { a: '2' });
    const resolves = engine.calls.resolve;
    controller.trigger('prod');
    await settle();
    expect(engine.calls.resolve).toBe(resolves);
    expect(engine.live.get('a')).toBe('1');
    expect(controller.runtime('prod').lastPass?.outcome).toBe('paused');
    const sync = await app.inject({ method: 'POST', url: '/api/stacks/prod/sync', headers: auth('operator') });
    expect(sync.statusCode).toBe(409);
    expect(sync.json().error).toMatch(/stack "prod" is paused \(by otto at .*\): resume it first/);

    expect((await app.inject({ method: 'POST', url: '/api/stacks/prod/resume', headers: auth('viewer') })).statusCode).toBe(403);
    expect((await app.inject({ method: 'POST', url: '/api/stacks/prod/resume', headers: auth('operator') })).json()).toEqual({ status: 'running' });
    await settle();
    expect(engine.live.get('a')).toBe('2');
    expect((await cs.getStackStatus('prod'))?.paused).toBeNull();
    const audit = (await cs.listAudit({ limit: 20 })).map((e) => `${e.actor.split(' ')[0]} ${e.action} ${e.outcome}`);
    expect(audit).toEqual([
      'otto stack.resume ok',
      'vera stack.resume refused (403)',
      'otto stack.sync refused (409)',
      'ada stack.pause ok',
      'otto stack.pause ok',
      'otto stack.pause refused (404)',
      'vera stack.pause refused (403)',
    ]);
  });
});

describe('rollback is limited to the branch history and to commits applied before', () => {
  it('refuses (400, audited) a commit only an unmerged branch holds; accepts one applied before though no longer on the branch', async () => {
    controller.start();
    await settle();
    engine.commit('abc0001', { a: '2' });
    controller.trigger('prod');
    await settle();
    // A commit of another branch: in the mirror, never on main, never applied.
    engine.commits.set('bad0001', { items: { a: 'evil' }, parent: 'c1' });
    const refused = await app.inject({ method: 'POST', url: '/api/stacks/prod/rollback', headers: auth('operator'), payload: { commit: 'bad0001' } });
    expect(refused.statusCode).toBe(400);
    expect(refused.json().error).toMatch(/bad0001: it is not on the history of branch main \(head abc0001\) and this stack never applied it/);
    await settle();
    expect(engine.live.get('a')).toBe('2');
    expect(engine.appliedCommits).not.toContain('bad0001');
    expect((await cs.getStackStatus('prod'))?.rollback).toBeNull();
    const [entry] = await cs.listAudit({ limit: 1 });
    expect(entry).toMatchObject({ action: 'stack.rollback', target: 'prod', outcome: 'refused (400)', detail: { commit: 'bad0001', refused: expect.stringMatching(/never applied/) } });

    // The branch is force-pushed past abc0001 onto another line: abc0001 is no longer its history, but it was applied.
    engine.commits.set('def0001', { items: { a: '3' }, parent: 'c1' });
    engine.forcePush('def0001');
    controller.trigger('prod');
    await settle();
    const ok = await app.inject({ method: 'POST', url: '/api/stacks/prod/rollback', headers: auth('operator'), payload: { commit: 'abc0001' } });
    expect(ok.statusCode).toBe(202);
    await settle();
    expect(engine.live.get('a')).toBe('2');
    expect((await cs.listAudit({ limit: 1 }))[0]).toMatchObject({ action: 'stack.rollback', outcome: 'ok', detail: { commit: 'abc0001', because: 'applied before by this stack' } });
  });
});

describe('per-resource status and events', () => {
  it('lists the resources of the current plan and the stack events', async () => {
    controller.trigger('prod');
    await settle();
    const r = await app.inject({ url: '/api/stacks/prod/resources', headers: auth('viewer') });
    expect(r.json()).toMatchObject({ stack: 'prod', planCommit: 'c1', resources: [{ address: 'a', managed: false, plannedAction: 'create' }] });
    const events = (await app.inject({ url: '/api/stacks/prod/events', headers: auth('viewer') })).json() as { type: string }[];
    expect(events.map((e) => e.type)).toEqual(['apply.started', 'resource.finished', 'apply.finished', 'reconcile.finished']);
    expect((await app.inject({ url: '/api/stacks/nope/resources', headers: auth('viewer') })).statusCode).toBe(404);
  });
});

describe('health, readiness, metrics, UI', () => {
  it('serves them without a token', async () => {
    expect((await app.inject({ url: '/healthz' })).json()).toEqual({ status: 'ok' });
    expect((await app.inject({ url: '/readyz' })).statusCode).toBe(200);
    const ui = await app.inject({ url: '/' });
    expect(ui.headers['content-type']).toMatch(/text\/html/);
    expect(ui.body).toContain('/api/stacks');
    controller.start();
    await settle();
    const text = (await app.inject({ url: '/metrics' })).body;
    for (const name of [
      'capstan_reconcile_duration_seconds_bucket{le="0.05",stack="prod"}',
      'capstan_reconcile_total{stack="prod",outcome="applied"} 1',
      'capstan_stack_drifted_resources{stack="prod"} 0',
      'capstan_stack_last_applied_info{stack="prod",commit="c1"} 1',
      'capstan_apply_results_total{kind="Item",status="succeeded"}',
      'capstan_process_cpu_user_seconds_total',
    ]) {
      expect(text).toContain(name);
    }
    await controller.stop(0);
    expect((await app.inject({ url: '/readyz' })).statusCode).toBe(503);
  });

  it('/readyz says only ready or not without a token; the reason only to a token holder', async () => {
    expect((await app.inject({ url: '/readyz' })).json()).toEqual({ status: 'ready' });
    expect((await app.inject({ url: '/readyz', headers: auth('viewer') })).json()).toEqual({ status: 'ready', stacks: 3 });
    const listStackStatus = cs.listStackStatus.bind(cs);
    cs.listStackStatus = () => Promise.reject(new Error('SQLITE_IOERR: disk I/O error at /var/lib/capstan/internal.db'));
    try {
      const anonymous = await app.inject({ url: '/readyz' });
      expect(anonymous.statusCode).toBe(503);
      expect(anonymous.json()).toEqual({ status: 'not ready' });
      expect(anonymous.body).not.toContain('SQLITE');
      expect((await app.inject({ url: '/readyz', headers: { authorization: 'Bearer capstan_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' } })).json()).toEqual({ status: 'not ready' });
      const detailed = await app.inject({ url: '/readyz', headers: auth('viewer') });
      expect(detailed.statusCode).toBe(503);
      expect(detailed.json()).toEqual({ status: 'store unreachable', error: expect.stringContaining('SQLITE_IOERR') });
    } finally {
      cs.listStackStatus = listStackStatus;
    }
  });
});

async function controllerPoll(): Promise<void> {
  await controller.requestSync('prod');
  await settle();
}

describe('the OpenAPI document', () => {
  it('is served to any token holder, not without a token, and holds no token or webhook secret', async () => {
    expect((await app.inject({ url: '/api/openapi.json' })).statusCode).toBe(401);
    const r = await app.inject({ url: '/api/openapi.json', headers: auth('viewer') });
    expect(r.statusCode).toBe(200);
    const doc = r.json<{ openapi: string; paths: Record<string, Record<string, { 'x-capstan-role'?: string }>> }>();
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.paths['/api/stacks/{name}/approve']?.['post']?.['x-capstan-role']).toBe('operator');
    for (const secret of [SECRET, ...Object.values(tokens)]) expect(r.body).not.toContain(secret);
  });

  it('every answer these tests get matches its documented schema (a mismatch fails the request)', async () => {
    // checkResponses is on for the whole file; this pins that it checks: a body against its schema.
    const stacks = await app.inject({ url: '/api/stacks', headers: auth('viewer') });
    expect(stacks.statusCode).toBe(200);
    const view = stacks.json<Record<string, unknown>[]>()[0]!;
    // Nothing the handler returns is dropped by a response schema: the fields the UI reads are all there.
    expect(Object.keys(view)).toEqual(expect.arrayContaining(['name', 'status', 'lastAppliedCommit', 'headCommit', 'policy', 'lastRun', 'rollback', 'ownedHere', 'nextPassInMs']));
    const listStackStatus = cs.listStackStatus.bind(cs);
    cs.listStackStatus = async () => [{ ...(await listStackStatus())[0]!, stack: 'prod', drifted: 'many' as unknown as number }];
    try {
      const broken = await app.inject({ url: '/api/stacks', headers: auth('viewer') });
      expect(broken.statusCode).toBe(500);
    } finally {
      cs.listStackStatus = listStackStatus;
    }
  });
});
