/**
 * The CLI against a running controller, end to end: `capstan token create`
 * on the store of the serve config, then `capstan stacks|runs|audit` through
 * the built CLI against a real `capstan serve` on a loopback port, following a
 * real bare git repository and writing real files.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { api, fileYaml, gitRemote, githubWebhook, hostYaml, killAll, pushPayload, serve, serveConfig, stackYaml, waitFor, type GitRemote, type Served } from './controller-harness.js';
import { assertBuilt, capstan, type CliResult } from './harness.js';

const SECRET = 'e2e-cli-webhook-secret-0123456789';
const HINT = 'capstan token create --config <serve config> --role viewer';
const PG_SERVER = process.env.CAPSTAN_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

let remote: GitRemote;
beforeAll(assertBuilt);
afterEach(async () => {
  await killAll();
  await remote?.cleanup();
});

async function setup(stacks: string): Promise<{ config: string; state: string; root: string }> {
  remote = await gitRemote();
  return serveConfig(remote, stacks);
}

/** `capstan token create --config` as the getting-started steps do it; the token goes to a 0600 file. */
async function tokenFile(config: string, role: string, name: string): Promise<{ file: string; token: string; created: CliResult }> {
  const created = await capstan(['token', 'create', '--config', config, '--role', role, '--name', name], { cwd: remote.base });
  expect(created.exitCode, created.stderr).toBe(0);
  const token = created.stdout.trim();
  const file = path.join(remote.base, `${name}.token`);
  await writeFile(file, token + '\n', { mode: 0o600 });
  return { file, token, created };
}

/** A port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('capstan token create for a server', () => {
  it('without --config or --state fails in one line naming both, and creates no store', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-token-'));
    try {
      const r = await capstan(['token', 'create', '--role', 'viewer'], { cwd: dir });
      expect(r.exitCode).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/--config FILE.*capstan serve.*--state URL/);
      expect(existsSync(path.join(dir, '.capstan'))).toBe(false);
      for (const sub of [['list'], ['revoke', '0123456789abcdef']]) {
        const other = await capstan(['token', ...sub], { cwd: dir });
        expect(other.exitCode).toBe(1);
        expect(other.stderr).toMatch(/--config FILE.*--state URL/);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('with --state postgres://... names the store without its password', async () => {
    const schema = `capstan_e2e_token_${randomBytes(4).toString('hex')}`;
    const url = new URL(PG_SERVER);
    url.password = 'not-a-real-password-7f3a';
    url.searchParams.set('schema', schema);
    try {
      const r = await capstan(['token', 'create', '--state', url.href, '--role', 'viewer']);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stderr).toContain(`Stored in postgres://${url.host}${url.pathname}?schema=${schema}: a \`capstan serve\` on this store accepts it.`);
      expect(r.stderr + r.stdout).not.toContain('not-a-real-password-7f3a');
    } finally {
      const client = new pg.Client({ connectionString: PG_SERVER });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await client.end();
    }
  });

  it('with --config makes a token the server of that config accepts, says where it is stored, and a revoked one gets a 401 saying how tokens are made', async () => {
    const { config, state } = await setup(stackYaml('web', { path: 'stack', policy: 'plan-only', interval: '10m' }) + stackYaml('broken', { path: 'broken', policy: 'plan-only', interval: '10m' }));
    await remote.push({ 'stack/hosts.yaml': hostYaml('web-1', path.join(remote.base, 'root')), 'broken/host.yaml': 'kind: Host\nname: b\nspec: { transport: carrier-pigeon }\n' }, 'first');
    const served = await serve(config);
    const viewer = await tokenFile(config, 'viewer', 'vera');
    expect(viewer.token).toMatch(/^capstan_[0-9a-f]{16}_/);
    expect(viewer.created.stderr).toContain(`Stored in ${state} (the state store of ${config})`);
    expect(viewer.created.stderr).not.toContain(viewer.token);

    // --out: the token goes only to a new file that only its owner reads; never over an existing one.
    const outFile = path.join(remote.base, 'ops.token');
    const written = await capstan(['token', 'create', '--config', config, '--role', 'operator', '--out', outFile], { cwd: remote.base });
    expect(written.exitCode, written.stderr).toBe(0);
    expect(written.stdout).toBe('');
    expect(written.stderr).toContain(`Wrote it to ${outFile} (mode 0600): use it with --token-file ${outFile}.`);
    expect((await stat(outFile)).mode & 0o777).toBe(0o600);
    const opsToken = (await readFile(outFile, 'utf8')).trim();
    expect(written.stderr).not.toContain(opsToken);
    const again = await capstan(['token', 'create', '--config', config, '--role', 'admin', '--out', outFile], { cwd: remote.base });
    expect(again).toMatchObject({ exitCode: 1, stdout: '', stderr: `Error: --out ${outFile} exists: remove it or name another file` });
    expect((await readFile(outFile, 'utf8')).trim()).toBe(opsToken);
    const listed = JSON.parse((await capstan(['token', 'list', '--config', config, '--json'])).stdout) as { role: string }[];
    expect(listed.map((t) => t.role).sort()).toEqual(['operator', 'viewer']);
    const asOps = await capstan(['stacks', 'list', '--server', served.url, '--token-file', outFile]);
    expect(asOps.exitCode, asOps.stderr).toBe(0);

    // A stack whose spec was never valid has no plan at all: `stacks plan` says why, exit 1.
    await waitFor('the broken stack refused', async () => (await api<{ status: string }>(served, '/api/stacks/broken', { token: viewer.token })).body.status === 'invalid');
    const neverPlanned = await capstan(['stacks', 'plan', 'broken', '--server', served.url, '--token-file', viewer.file]);
    expect(neverPlanned).toMatchObject({ exitCode: 1, stdout: '' });
    expect(neverPlanned.stderr).toMatch(/^Error: stack broken cannot be planned at commit [0-9a-f]{12}: .*host\.yaml:\d+:\d+.*\nIt has no earlier plan either\.\n?$/s);

    const list = await capstan(['stacks', 'list', '--server', served.url, '--token-file', viewer.file]);
    expect(list.exitCode, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/^NAME\s+STATUS/);
    expect(list.stdout).toMatch(/\nweb\s/);
    expect(list.stdout).toMatch(/\nbroken\s+invalid\s/);

    // Revoked: the API's 401 and the CLI's error both say how to make a token, and never echo it.
    const id = /_([0-9a-f]{16})_/.exec(viewer.token)![1]!;
    const revoked = await capstan(['token', 'revoke', id, '--config', config], { cwd: remote.base });
    expect(revoked.exitCode, revoked.stderr).toBe(0);
    const answer = await api<{ error: string }>(served, '/api/stacks', { token: viewer.token });
    expect(answer.status).toBe(401);
    expect(answer.body.error).toContain('revoked');
    expect(answer.body.error).toContain(HINT);
    const refused = await capstan(['stacks', 'list', '--server', served.url, '--token-file', viewer.file]);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(refused.stderr).toContain(`${served.url} refused the token of --token-file ${viewer.file}`);
    expect(refused.stderr).toContain(HINT);
    expect(refused.stderr + refused.stdout).not.toContain(viewer.token);
    const unknown = await api<{ error: string }>(served, '/api/stacks', { token: `capstan_${'0'.repeat(16)}_${'A'.repeat(43)}` });
    expect(unknown).toMatchObject({ status: 401, body: { error: expect.stringContaining(HINT) as unknown } });

    // The UI tells the same.
    expect(await (await fetch(`${served.url}/`)).text()).toContain(HINT);
    expect(await served.stop()).toBe(0);
  });
});

describe('capstan stacks | runs | audit against capstan serve', () => {
  it('lists, shows, syncs, rolls back, pauses and resumes a stack; approves a gated plan; reads runs and the audit log, with the exit codes of the local commands', async () => {
    const { config, root } = await setup(
      stackYaml('web', { path: 'web', policy: 'auto', interval: '10m', webhookSecret: '{ env: HOOK_SECRET }' }) + stackYaml('gated', { path: 'gated', policy: 'approve', interval: '10m' }),
    );
    const motd = path.join(root, 'web/etc/motd');
    const gatedFile = path.join(root, 'gated/etc/app.conf');
    const files = (motdText: string): Record<string, string> => ({
      'web/hosts.yaml': hostYaml('web-1', path.join(root, 'web')),
      'web/motd.yaml': fileYaml('motd', 'web-1', '/etc/motd', motdText),
      'gated/hosts.yaml': hostYaml('gated-1', path.join(root, 'gated')),
      'gated/app.yaml': fileYaml('app', 'gated-1', '/etc/app.conf', 'gated\n'),
    });
    const c1 = await remote.push(files('v1\n'), 'first');
    let served: Served = await serve(config, { HOOK_SECRET: SECRET });
    const viewer = await tokenFile(config, 'viewer', 'vera');
    const operator = await tokenFile(config, 'operator', 'otto');
    const admin = await tokenFile(config, 'admin', 'ada');
    const tokens = [viewer.token, operator.token, admin.token];
    const outputs: string[] = [];
    /** The CLI as `who`, the server given by $CAPSTAN_SERVER. */
    const cli = async (who: { file: string }, args: string[]): Promise<CliResult> => {
      const r = await capstan([...args, '--token-file', who.file], { env: { CAPSTAN_SERVER: served.url } });
      outputs.push(r.stdout, r.stderr);
      return r;
    };
    const stackJson = async (name: string): Promise<Record<string, unknown> & { lastRun: { id: number } | null; lastPass: { passId: string; outcome: string } | null }> => {
      const r = await cli(viewer, ['stacks', 'show', name, '--json']);
      expect(r.exitCode, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as Awaited<ReturnType<typeof stackJson>>;
    };

    await waitFor('web applied at c1', async () => (await stackJson('web')).lastAppliedCommit === c1);
    expect(await readFile(motd, 'utf8')).toBe('v1\n');

    // list: a table for people, JSON for scripts.
    const table = await cli(viewer, ['stacks', 'list']);
    expect(table.exitCode, table.stderr).toBe(0);
    expect(table.stdout.split('\n')[0]).toMatch(/^NAME\s+STATUS\s+POLICY\s+APPLIED\s+HEAD\s+DRIFTED\s+LAST RUN$/);
    expect(table.stdout).toMatch(new RegExp(`\\nweb\\s+synced\\s+auto\\s+${c1.slice(0, 12)}\\s+${c1.slice(0, 12)}\\s+0\\s+#\\d+ apply succeeded`));
    const listed = JSON.parse((await cli(viewer, ['stacks', 'list', '--json'])).stdout) as { name: string; policy: string }[];
    expect(listed.map((s) => [s.name, s.policy])).toEqual([
      ['web', 'auto'],
      ['gated', 'approve'],
    ]);
    const shown = await cli(viewer, ['stacks', 'show', 'web']);
    expect(shown.stdout).toMatch(/^Stack\s+web$/m);
    expect(shown.stdout).toMatch(new RegExp(`^Applied\\s+${c1.slice(0, 12)}$`, 'm'));

    // A gated plan: `stacks plan --detailed-exitcode` exits 2 while it has changes; approve applies it.
    const pending = await waitFor('a pending plan of gated', async () => {
      const r = await cli(viewer, ['stacks', 'plan', 'gated', '--json']);
      const plan = r.exitCode === 0 ? (JSON.parse(r.stdout) as { id: string; state: string }) : undefined;
      return plan?.state === 'pending' ? plan : undefined;
    });
    const planText = await cli(viewer, ['stacks', 'plan', 'gated', '--detailed-exitcode']);
    expect(planText.exitCode).toBe(2);
    expect(planText.stdout).toContain('File/app');
    expect(planText.stdout).toContain(`Approve it with: capstan stacks approve gated --plan ${pending.id}`);
    expect((await cli(viewer, ['stacks', 'plan', 'gated'])).exitCode).toBe(0);
    const byViewer = await cli(viewer, ['stacks', 'approve', 'gated', '--plan', pending.id]);
    expect(byViewer.exitCode).toBe(1);
    expect(byViewer.stderr.trim()).toBe(`Error: ${served.url} refused: role viewer may not do this; it needs operator`);
    const wrongPlan = await cli(operator, ['stacks', 'approve', 'gated', '--plan', 'no-such-plan']);
    expect(wrongPlan.exitCode).toBe(1);
    expect(wrongPlan.stderr).toContain(`${served.url} answered 409: plan no-such-plan no longer awaits approval`);
    expect(existsSync(gatedFile)).toBe(false);
    const approved = await cli(operator, ['stacks', 'approve', 'gated', '--plan', pending.id]);
    expect(approved.exitCode, approved.stderr).toBe(0);
    expect(approved.stdout).toContain(`Approved plan ${pending.id} of stack gated`);
    await waitFor('the approved plan applied', async () => existsSync(gatedFile));

    // sync, then rollback to c1 after a push of c2.
    const c2 = await remote.push(files('v2\n'), 'second');
    const synced = await cli(operator, ['stacks', 'sync', 'web']);
    expect(synced.exitCode, synced.stderr).toBe(0);
    expect(synced.stdout).toContain('Sync of stack web queued');
    await waitFor('c2 applied', async () => (await readFile(motd, 'utf8')) === 'v2\n');
    const back = await cli(operator, ['stacks', 'rollback', 'web', '--to', c1.slice(0, 12)]);
    expect(back.exitCode, back.stderr).toBe(0);
    expect(back.stdout).toContain(`Rollback of stack web to ${c1.slice(0, 12)} queued; it lasts until the branch moves past ${c2}`);
    await waitFor('the rollback applied', async () => (await readFile(motd, 'utf8')) === 'v1\n');
    const notOnBranch = await cli(operator, ['stacks', 'rollback', 'web', '--to', 'deadbeefdeadbeef']);
    expect(notOnBranch.exitCode).toBe(1);
    expect(notOnBranch.stderr).toMatch(new RegExp(`^Error: ${served.url} answered 4\\d\\d: cannot roll back to deadbeefdeadbeef`));

    // pause: a push announced by a webhook is not even fetched; a sync is refused; resume converges.
    const paused = await cli(operator, ['stacks', 'pause', 'web']);
    expect(paused.exitCode, paused.stderr).toBe(0);
    expect(paused.stdout).toContain('Stack web is paused');
    const before = await stackJson('web');
    expect(before).toMatchObject({ status: 'paused', paused: { by: 'otto' } });
    const c3 = await remote.push(files('v3\n'), 'third');
    expect((await githubWebhook(served, pushPayload(remote.remote, c3), SECRET)).status).toBe(202);
    const afterPush = await waitFor('a paused pass', async () => {
      const s = await stackJson('web');
      return s.lastPass && s.lastPass.passId !== before.lastPass?.passId ? s : undefined;
    });
    expect(afterPush).toMatchObject({ status: 'paused', headCommit: c2, lastPass: { outcome: 'paused' } });
    expect(await readFile(motd, 'utf8')).toBe('v1\n');
    const refusedSync = await cli(operator, ['stacks', 'sync', 'web']);
    expect(refusedSync.exitCode).toBe(1);
    expect(refusedSync.stderr).toContain(`${served.url} answered 409: stack "web" is paused (by otto`);
    const pausedView = (await cli(operator, ['stacks', 'show', 'web'])).stdout;
    expect(pausedView).toMatch(/^Paused\s+by otto at .*capstan stacks resume web/m);
    expect(pausedView).toMatch(/^Last pass\s+paused at /m);
    // The pause is in the store: a restarted controller keeps it (its first pass of the stack is a paused one).
    expect(await served.stop()).toBe(0);
    served = await serve(config, { HOOK_SECRET: SECRET });
    const restarted = await waitFor('the first pass after the restart', async () => {
      const s = await stackJson('web');
      return s.lastPass ? s : undefined;
    });
    expect(restarted).toMatchObject({ status: 'paused', headCommit: c2, lastPass: { outcome: 'paused' } });
    expect(await readFile(motd, 'utf8')).toBe('v1\n');
    const resumed = await cli(operator, ['stacks', 'resume', 'web']);
    expect(resumed.exitCode, resumed.stderr).toBe(0);
    await waitFor('c3 applied after resume', async () => (await readFile(motd, 'utf8')) === 'v3\n');
    expect(await stackJson('web')).toMatchObject({ paused: null, headCommit: c3 });

    // A broken commit: `stacks plan` exits 1 with the spec's error, like `capstan plan`; nothing is applied.
    const bad = await remote.push({ 'web/motd.yaml': 'kind: File\nname: motd\ntarget: web-1\nspec:\n  pth: /etc/motd\n' }, 'broken');
    expect((await cli(operator, ['stacks', 'sync', 'web'])).exitCode).toBe(0);
    await waitFor('the broken commit refused', async () => (await stackJson('web')).status === 'invalid');
    const brokenPlan = await cli(viewer, ['stacks', 'plan', 'web', '--detailed-exitcode']);
    expect(brokenPlan.exitCode).toBe(1);
    expect(brokenPlan.stdout).toBe('');
    expect(brokenPlan.stderr).toMatch(new RegExp(`^Error: stack web cannot be planned at commit ${bad.slice(0, 12)}: .*motd\\.yaml:\\d+:\\d+`));
    expect(brokenPlan.stderr).toContain('is of an earlier commit');
    expect(await readFile(motd, 'utf8')).toBe('v3\n');
    const fixed = await remote.push(files('v3\n'), 'fixed');
    expect((await cli(operator, ['stacks', 'sync', 'web'])).exitCode).toBe(0);
    await waitFor('the fixed commit planned', async () => {
      const s = await stackJson('web');
      return s.status === 'synced' && s.headCommit === fixed;
    });
    // In sync at the fixed commit: a plan without changes, exit 0 with --detailed-exitcode.
    expect((await cli(viewer, ['stacks', 'plan', 'web', '--detailed-exitcode'])).exitCode).toBe(0);

    // runs: the list, then one run with its results; ids of another stack are refused.
    const runs = await cli(viewer, ['runs', 'web']);
    expect(runs.exitCode, runs.stderr).toBe(0);
    expect(runs.stdout.split('\n')[0]).toMatch(/^RUN\s+STARTED\s+KIND\s+STATUS\s+COMMIT\s+BY\s+CHANGES\s+MESSAGE$/);
    const allRuns = JSON.parse((await cli(viewer, ['runs', 'web', '--json'])).stdout) as { id: number; kind: string; status: string; commit: string }[];
    expect(allRuns).toContainEqual(expect.objectContaining({ kind: 'plan', status: 'failed', commit: bad }));
    const runList = allRuns.filter((r) => r.kind === 'apply');
    expect(runList.map((r) => r.commit)).toEqual([c3, c1, c2, c1]);
    const one = await cli(viewer, ['runs', 'web', String(runList[0]!.id)]);
    expect(one.exitCode, one.stderr).toBe(0);
    expect(one.stdout).toContain(`Run #${runList[0]!.id} of stack web: apply succeeded, commit ${c3.slice(0, 12)} "third"`);
    expect(one.stdout).toMatch(/File\/motd\s+update\s+succeeded/);
    const gatedRun = (JSON.parse((await cli(viewer, ['runs', 'gated', '--json'])).stdout) as { id: number }[])[0]!;
    const mismatch = await cli(viewer, ['runs', 'web', String(gatedRun.id)]);
    expect(mismatch.exitCode).toBe(1);
    expect(mismatch.stderr).toContain(`run ${gatedRun.id} belongs to stack gated, not web`);

    // 404s name the server; the audit log needs admin and shows the CLI's actions.
    const missing = await cli(viewer, ['stacks', 'show', 'nope']);
    expect(missing).toMatchObject({ exitCode: 1, stderr: `Error: ${served.url}: no stack "nope"` });
    expect((await cli(operator, ['audit'])).stderr).toContain(`${served.url} refused: role operator may not do this; it needs admin`);
    const audit = await cli(admin, ['audit']);
    expect(audit.exitCode, audit.stderr).toBe(0);
    expect(audit.stdout.split('\n')[0]).toMatch(/^ID\s+AT\s+ACTOR\s+ROLE\s+ACTION\s+TARGET\s+OUTCOME\s+FROM$/);
    const entries = JSON.parse((await cli(admin, ['audit', '--json', '--limit', '100'])).stdout) as { actor: string; action: string; target: string; outcome: string }[];
    const actions = entries.filter((e) => e.action.startsWith('stack.')).map((e) => `${e.actor.split(' ')[0]} ${e.action} ${e.target} ${e.outcome}`).reverse();
    expect(actions).toEqual([
      'vera stack.approve gated refused (403)',
      'otto stack.approve gated refused (409)',
      'otto stack.approve gated ok',
      'otto stack.sync web ok',
      'otto stack.rollback web ok',
      'otto stack.rollback web refused (422)',
      'otto stack.pause web ok',
      'otto stack.sync web refused (409)',
      'otto stack.resume web ok',
      'otto stack.sync web ok',
      'otto stack.sync web ok',
    ]);

    // $CAPSTAN_TOKEN works as well as --token-file; no output ever held a token.
    const byEnv = await capstan(['stacks', 'list', '--server', served.url], { env: { CAPSTAN_TOKEN: viewer.token } });
    expect(byEnv.exitCode, byEnv.stderr).toBe(0);
    for (const text of outputs) for (const token of tokens) expect(text).not.toContain(token);
    expect(await served.stop()).toBe(0);
  });

  it('says in one line what is missing or unreachable: no server, no token, connection refused', async () => {
    const noServer = await capstan(['stacks', 'list'], { env: { CAPSTAN_TOKEN: 'x' } });
    expect(noServer).toMatchObject({ exitCode: 1, stderr: 'Error: which controller? Pass --server URL (e.g. http://127.0.0.1:7070) or set CAPSTAN_SERVER' });
    const noToken = await capstan(['runs', 'web', '--server', 'http://127.0.0.1:7070']);
    expect(noToken.exitCode).toBe(1);
    expect(noToken.stderr).toBe(`Error: no API token: pass --token-file FILE or set CAPSTAN_TOKEN; make one on the server with \`${HINT}\``);
    const port = await closedPort();
    const token = `capstan_${'1'.repeat(16)}_${'B'.repeat(43)}`;
    const refused = await capstan(['audit', '--server', `127.0.0.1:${port}`], { env: { CAPSTAN_TOKEN: token } });
    expect(refused).toMatchObject({ exitCode: 1, stdout: '' });
    expect(refused.stderr).toBe(`Error: http://127.0.0.1:${port}: connection refused: is \`capstan serve\` running there?`);
  });
});
