/**
 * High availability: two `capstan serve` replicas share one store; each stack
 * is reconciled by exactly one of them (the holder of its lock), and when that
 * replica is killed with SIGKILL the other takes the stack over within 15 s.
 * On SQLite (same host: a dead holder's lock is broken) and on PostgreSQL (the
 * advisory lock dies with the session), with the PostgreSQL server that
 * .ci/run starts (CAPSTAN_TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres).
 */
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { api, createToken, fileYaml, gitRemote, githubWebhook, hostYaml, killAll, pushPayload, serve, waitFor, type GitRemote, type Served } from './controller-harness.js';
import { assertBuilt } from './harness.js';

const SERVER = process.env.CAPSTAN_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const SECRET = 'pg-ha-webhook-secret';

let remote: GitRemote | undefined;
let schema: string | undefined;
beforeAll(assertBuilt);
afterEach(async () => {
  await killAll();
  await remote?.cleanup();
  if (schema) {
    const client = new pg.Client({ connectionString: SERVER });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await client.end();
    schema = undefined;
  }
});

async function stackOf(served: Served, token: string, name: string): Promise<View> {
  const s = (await api<View[]>(served, '/api/stacks', { token })).body.find((x) => x.name === name);
  if (!s) throw new Error(`no stack ${name}`);
  return s;
}

interface View {
  name: string;
  lastAppliedCommit: string | null;
  owner: string | null;
  ownedHere: boolean;
}

describe('capstan serve on PostgreSQL', () => {
  it('one replica reconciles each stack; after SIGKILL another takes over within 15 s', async () => {
    remote = await gitRemote();
    schema = `capstan_ha_${randomBytes(4).toString('hex')}`;
    const state = `${SERVER}${SERVER.includes('?') ? '&' : '?'}schema=${schema}`;
    const root = path.join(remote.base, 'root');
    const config = path.join(remote.base, 'serve.yaml');
    await writeFile(
      config,
      `listen: 127.0.0.1:0\nstate: "${state}"\ncacheDir: cache\nstacks:\n` +
        ['one', 'two'].map((s) => `  - { name: ${s}, repo: remote.git, branch: main, path: ${s}, interval: 10m, webhookSecret: { env: HOOK_SECRET } }\n`).join(''),
    );
    const c1 = await remote.push({
      'one/all.yaml': hostYaml('h1', path.join(root, 'one')) + '---\n' + fileYaml('f', 'h1', '/f.txt', 'v1\n'),
      'two/all.yaml': hostYaml('h2', path.join(root, 'two')) + '---\n' + fileYaml('f', 'h2', '/f.txt', 'v1\n'),
    });
    const a = await serve(config, { HOOK_SECRET: SECRET });
    const viewer = await createToken(state, 'viewer', 'vera');
    const b = await serve(config, { HOOK_SECRET: SECRET });
    const views = async (s: typeof a) => (await api<View[]>(s, '/api/stacks', { token: viewer })).body;

    await waitFor('both stacks applied', async () => (await views(a)).every((v) => v.lastAppliedCommit === c1));
    // Exactly one replica owns each stack.
    const [va, vb] = [await views(a), await views(b)];
    for (const name of ['one', 'two']) {
      const owners = [va, vb].filter((vs) => vs.find((v) => v.name === name)?.ownedHere);
      expect(owners).toHaveLength(1);
    }
    expect(va.every((v) => v.ownedHere)).toBe(true);
    const runsBefore = (await api<unknown[]>(b, '/api/stacks/one/runs', { token: viewer })).body.length;

    a.kill();
    const killedAt = Date.now();
    await waitFor('replica b owns both stacks', async () => (await views(b)).every((v) => v.ownedHere));
    const takeoverMs = Date.now() - killedAt;
    console.log(`PostgreSQL HA: stacks taken over ${takeoverMs} ms after SIGKILL`);
    expect(takeoverMs).toBeLessThan(15_000);

    const c2 = await remote.push({ 'one/all.yaml': hostYaml('h1', path.join(root, 'one')) + '---\n' + fileYaml('f', 'h1', '/f.txt', 'v2\n') });
    expect((await githubWebhook(b, pushPayload(remote.remote, c2), SECRET)).status).toBe(202);
    await waitFor('replica b applied the push', async () => (await readFile(path.join(root, 'one/f.txt'), 'utf8')) === 'v2\n');
    const one = await waitFor('recorded', async () => (await views(b)).find((v) => v.name === 'one' && v.lastAppliedCommit === c2));
    expect(one.owner).toMatch(new RegExp(`:${b.pid}$`));
    expect((await api<unknown[]>(b, '/api/stacks/one/runs', { token: viewer })).body.length).toBe(runsBefore + 1);
    expect(await b.stop()).toBe(0);
  });
});

describe('capstan serve on SQLite, two processes on one host', () => {
  it('two replicas on one store: one reconciles; after SIGKILL the other takes over within 15 s', async () => {
    remote = await gitRemote();
    const root = path.join(remote.base, 'root');
    const state = `sqlite:${path.join(remote.base, 'state.db')}`;
    const config = path.join(remote.base, 'serve.yaml');
    await writeFile(config, `listen: 127.0.0.1:0\nstate: ${state}\ncacheDir: cache\nstacks:\n  - { name: web, repo: remote.git, branch: main, path: stack, interval: 10m, webhookSecret: { env: HOOK_SECRET } }\n`);
    const motd = path.join(root, 'etc/motd');
    const c1 = await remote.push({ 'stack/hosts.yaml': hostYaml('web-1', root), 'stack/motd.yaml': fileYaml('motd', 'web-1', '/etc/motd', 'v1\n') });
    const viewer = await createToken(state, 'viewer', 'vera');
    const a = await serve(config, { HOOK_SECRET: SECRET });
    await waitFor('replica a applied', async () => (await stackOf(a, viewer, 'web')).lastAppliedCommit === c1);
    const b = await serve(config, { HOOK_SECRET: SECRET });
    expect((await stackOf(b, viewer, 'web')).owner).toBe(`${(await stackOf(a, viewer, 'web')).owner}`);
    expect((await stackOf(a, viewer, 'web')).owner).toMatch(new RegExp(`:${a.pid}$`));

    expect((await api<{ ownedHere: boolean }[]>(b, '/api/stacks', { token: viewer })).body[0]?.ownedHere).toBe(false);
    a.kill();
    const killedAt = Date.now();
    await waitFor('replica b owns the stack', async () => (await api<{ ownedHere: boolean }[]>(b, '/api/stacks', { token: viewer })).body[0]?.ownedHere);
    expect(Date.now() - killedAt).toBeLessThan(15_000);
    const c2 = await remote.push({ 'stack/motd.yaml': fileYaml('motd', 'web-1', '/etc/motd', 'v2\n') });
    expect((await githubWebhook(b, pushPayload(remote.remote, c2), SECRET)).status).toBe(202);
    await waitFor('replica b applied the push', async () => (await readFile(motd, 'utf8')) === 'v2\n');
    const taken = await waitFor('replica b recorded as the owner', async () => {
      const s = await stackOf(b, viewer, 'web');
      return s.lastAppliedCommit === c2 ? s : undefined;
    });
    expect(taken.owner).toMatch(new RegExp(`:${b.pid}$`));
    expect(await b.stop()).toBe(0);
  });
});
