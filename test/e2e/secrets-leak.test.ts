/**
 * Zero leaks: five known secret values (an age-encrypted File content, an
 * age-encrypted Exec environment value, inline `sensitive: true` content, an
 * age-encrypted Alertmanager webhook URL delivered to a running Alertmanager, an
 * age-encrypted Host variable rendered into a File template) go
 * through validate, plan (text, --json, --out), apply (from the saved plan, and
 * again after a secret changed), drift, history and `capstan serve` (every API
 * route, the SSE stream, /metrics, logs at trace level). Then every byte of
 * output, every file Capstan wrote (except the managed target files) and the
 * whole store (the SQLite file with its WAL; a fresh PostgreSQL database dumped
 * with pg_dump) is searched for each value, its hex and its base64: zero hits.
 *
 * Not searched: the spec repository (the user wrote the inline value there) and
 * the controller's git cache (a checkout of that repository).
 */
import { execa } from 'execa';
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, createToken, gitRemote, killAll, serve, waitFor, type GitRemote } from './controller-harness.js';
import { ageIdentity, assertBuilt, CAPSTAN, capstan, workspace, type CliResult, type Workspace } from './harness.js';
import { filesUnder, leakSearch } from './leak-search.js';
import { startAlertmanager, type RunningAlertmanager } from './alertmanager-harness.js';

const AGE_VALUE = 'LeakCanary-AgeFile-7f3a9c51';
const AGE_VALUE_2 = 'LeakCanary-AgeFile-Rotated-d41d8c';
const ENV_VALUE = 'LeakCanary-ExecEnv-2b8d4177';
const INLINE_VALUE = 'LeakCanary-Inline-c0ffee42';
const HOOK_VALUE = 'http://127.0.0.1:9/LeakCanary-AmReceiver-3b9e';
const VAR_VALUE = 'LeakCanary-TemplateVar-5e6f0a13';
const VAR_VALUE_2 = 'LeakCanary-TemplateVar-Rotated-9a8b';
const CANARIES = [AGE_VALUE, AGE_VALUE_2, ENV_VALUE, INLINE_VALUE, HOOK_VALUE, VAR_VALUE, VAR_VALUE_2];
const DB_CONF = 'etc/db.conf';
const AM_CONFIG = 'etc/alertmanager/alertmanager.yml';
/** One Alertmanager per Host root, each running that root's configuration file. */
const alertmanagers = new Map<string, RunningAlertmanager>();
const SERVER = process.env.CAPSTAN_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** Where any form of any canary occurs in `data`. */
const hits = leakSearch(CANARIES);

let ws: Workspace;
let idFile: string;
let recipient: string;
const outputs: { what: string; text: string }[] = [];

async function run(what: string, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const r = await capstan(args, { cwd: ws.repo, env });
  outputs.push({ what: `${what} stdout`, text: r.stdout }, { what: `${what} stderr`, text: r.stderr });
  return r;
}

function spec(root: string, withLeakyExec: boolean): Record<string, string> {
  return {
    'stack.yaml':
      `kind: Host\nname: local\nspec: { transport: local, root: ${root}, vars: { db_password: { secret: secrets/var.age } } }\n---\n` +
      `kind: File\nname: db-conf\ntarget: local\nspec:\n  path: /${DB_CONF}\n  template: templates/db.conf.liquid\n  mode: "0600"\n---\n` +
      `kind: File\nname: db-password\ntarget: local\nspec:\n  path: /etc/db-password\n  content: { secret: secrets/db.age }\n  mode: "0600"\n---\n` +
      `kind: File\nname: inline\ntarget: local\nspec:\n  path: /etc/inline\n  content: "${INLINE_VALUE}"\n  sensitive: true\n---\n` +
      `kind: Exec\nname: uses-token\ntarget: local\ndependsOn: [File/inline]\nspec:\n  command: ["/bin/sh", "-c", "test -n \\"$TOKEN\\""]\n` +
      `  environment: { TOKEN: { secret: secrets/token.age } }\n` +
      (withLeakyExec
        ? `---\nkind: Exec\nname: leaky\ntarget: local\ndependsOn: [File/inline]\nspec:\n  command: ["/bin/sh", "-c", "echo \\"token=$TOKEN\\" >&2; echo \\"$TOKEN\\"; exit 3"]\n` +
          `  environment: { TOKEN: { secret: secrets/token.age } }\n`
        : '') +
      `---\nkind: Alerting\nname: oncall\ntarget: local\nspec:\n  defaultTeam: sre\n  teams:\n    - name: sre\n      webhook: { url: { secret: secrets/hook.age } }\n` +
      `  alertmanager: { url: "${alertmanagers.get(root)!.url}", configFile: /${AM_CONFIG}, amtool: /usr/bin/amtool }\n`,
    'templates/db.conf.liquid': 'host = db.internal\npassword = {{ db_password }}\n',
  };
}

async function encryptWithCapstan(rel: string, value: string): Promise<void> {
  const r = await execa('node', [CAPSTAN, 'secret', 'encrypt', '--out', rel], { cwd: ws.repo, input: value, reject: false, env: { NO_COLOR: '1' } });
  outputs.push({ what: 'secret encrypt stdout', text: r.stdout }, { what: 'secret encrypt stderr', text: r.stderr });
  expect(r.exitCode, r.stderr).toBe(0);
}

/** A fresh PostgreSQL database for the stack's state, dropped afterwards. */
async function freshDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `capstan_leak_${process.pid}_${Date.now()}`;
  const admin = new pg.Client({ connectionString: SERVER });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(SERVER);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: SERVER });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

beforeAll(async () => {
  assertBuilt();
  ws = await workspace();
  base = path.dirname(ws.repo);
  ({ file: idFile, recipient } = await ageIdentity(base));
  await writeFile(path.join(ws.repo, '.capstan-recipients'), `# the team\n${recipient}\n`);
  // One secret encrypted with Debian's age (armored), one with capstan.
  await ws.write('secrets/db.age', (await execa('age', ['-r', recipient, '-a'], { input: AGE_VALUE })).stdout + '\n');
  await encryptWithCapstan('secrets/token.age', ENV_VALUE);
  await ws.write('secrets/hook.age', (await execa('age', ['-r', recipient, '-a'], { input: HOOK_VALUE })).stdout + '\n');
  await encryptWithCapstan('secrets/var.age', VAR_VALUE);
  for (const r of ['root-sqlite', 'root-pg', 'root-serve']) {
    const root = path.join(base, r);
    alertmanagers.set(root, await startAlertmanager(path.join(root, AM_CONFIG), path.join(base, `am-data-${r}`)));
  }
}, 60_000);

afterAll(async () => {
  await killAll();
  for (const am of alertmanagers.values()) await am.stop();
  await remote?.cleanup();
  await ws?.cleanup();
});

let base: string;
let remote: GitRemote | undefined;

/** validate, plan (text, --json, --out), apply --plan, a changed secret, drift, history: against one store. */
async function cliFlow(state: string, root: string, label: string, full: boolean): Promise<void> {
  for (const [rel, text] of Object.entries(spec(root, true))) await ws.write(rel, text);
  await ws.write('secrets/db.age', (await execa('age', ['-r', recipient, '-a'], { input: AGE_VALUE })).stdout + '\n');
  await ws.write('secrets/var.age', (await execa('age', ['-r', recipient, '-a'], { input: VAR_VALUE })).stdout + '\n');
  const id = ['--identity', idFile];
  const common = ['--state', state, ...id];

  if (full) {
    const noIdentity = await run(`${label} validate without identity`, ['validate', '.']);
    expect(noIdentity.exitCode).toBe(1);
    expect(noIdentity.stderr).toMatch(/stack\.yaml:\d+:\d+: File\/db-password: cannot use secret secrets\/db\.age: no age identity/);
    expect((await run(`${label} validate`, ['validate', '.', ...id])).exitCode).toBe(0);
    expect((await run(`${label} validate --json`, ['validate', '.', '--json', ...id])).exitCode).toBe(0);
    const text = await run(`${label} plan`, ['plan', '.', ...common]);
    expect(text.exitCode, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/content: \(sensitive\)/);
  }
  expect((await run(`${label} plan --json`, ['plan', '.', '--json', ...common])).exitCode).toBe(0);
  const planFile = path.join(base, `${label}-plan.json`);
  expect((await run(`${label} plan --out`, ['plan', '.', '--out', planFile, ...common])).exitCode).toBe(0);

  // The saved plan applies: its secrets come back from the re-loaded spec. The leaky Exec fails, its output masked.
  const applied = await run(`${label} apply --plan`, ['apply', '--plan', planFile, ...common]);
  expect(applied.stderr).toMatch(/Exec\/leaky .*exited with status 3: token=\(sensitive\)/);
  expect(await readFile(path.join(root, 'etc/db-password'), 'utf8')).toBe(AGE_VALUE);
  expect(await readFile(path.join(root, 'etc/inline'), 'utf8')).toBe(INLINE_VALUE);
  expect(await readFile(path.join(root, AM_CONFIG), 'utf8')).toContain(`url: ${HOOK_VALUE}`);
  expect(await readFile(path.join(root, DB_CONF), 'utf8')).toBe(`host = db.internal\npassword = ${VAR_VALUE}\n`);
  await ws.remove('stack.yaml');
  for (const [rel, t] of Object.entries(spec(root, false))) await ws.write(rel, t);
  const healed = await run(`${label} apply`, ['apply', '.', '--yes', ...common]);
  expect(healed.exitCode, healed.stderr).toBe(0);

  // A changed secret: shown as changed, never shown; a saved plan made before is stale.
  const stalePlan = path.join(base, `${label}-stale.json`);
  expect((await run(`${label} plan --out (before rotation)`, ['plan', '.', '--out', stalePlan, ...common])).exitCode).toBe(0);
  // Binary this time, as `age` writes without -a.
  await writeFile(path.join(ws.repo, 'secrets/db.age'), (await execa('age', ['-r', recipient], { input: AGE_VALUE_2, encoding: 'buffer' })).stdout);
  await writeFile(path.join(ws.repo, 'secrets/var.age'), (await execa('age', ['-r', recipient], { input: VAR_VALUE_2, encoding: 'buffer' })).stdout);
  const changed = await run(`${label} plan (secret changed)`, ['plan', '.', ...common]);
  expect(changed.stdout).toMatch(/~ content: \(sensitive value changed\)/);
  // Both the secret File and the template that reads the rotated variable.
  expect(changed.stdout.match(/~ content: \(sensitive value changed\)/g)).toHaveLength(2);
  if (full) expect((await run(`${label} plan --json (secret changed)`, ['plan', '.', '--json', ...common])).exitCode).toBe(0);
  const stale = await run(`${label} apply stale plan`, ['apply', '--plan', stalePlan, ...common]);
  expect(stale.exitCode).toBe(1);
  expect(stale.stderr).toMatch(/stale/);
  expect((await run(`${label} apply (secret changed)`, ['apply', '.', '--yes', ...common])).exitCode).toBe(0);
  expect(await readFile(path.join(root, 'etc/db-password'), 'utf8')).toBe(AGE_VALUE_2);
  expect(await readFile(path.join(root, DB_CONF), 'utf8')).toBe(`host = db.internal\npassword = ${VAR_VALUE_2}\n`);
  const noop = await run(`${label} plan (no-op)`, ['plan', '.', '--detailed-exitcode', ...common]);
  expect(noop.exitCode, noop.stdout + noop.stderr).toBe(0);

  // Drift: in sync, then a sensitive file changed by hand.
  if (full) expect((await run(`${label} drift`, ['drift', '.', '--state', state, ...id])).exitCode).toBe(0);
  await writeFile(path.join(root, 'etc/inline'), 'changed by hand\n');
  const drift = await run(`${label} drift --json`, ['drift', '.', '--json', '--state', state, ...id]);
  expect(drift.exitCode).toBe(2);
  if (full) expect((await run(`${label} history`, ['history', '--state', state])).exitCode).toBe(0);
  expect((await run(`${label} history --json`, ['history', '--json', '--state', state])).exitCode).toBe(0);

  if (full) {
    // A Liquid error that would quote the secret (a lookup by its value): the message says (sensitive).
    await ws.write('templates/db.conf.liquid', 'password = {{ host[db_password] }}\n');
    for (const cmd of ['validate', 'plan']) {
      const broken = await run(`${label} ${cmd} (template error)`, [cmd, '.', ...(cmd === 'plan' ? common : id)]);
      expect(broken.exitCode).toBe(1);
      expect(broken.stderr).toMatch(/templates\/db\.conf\.liquid:1:\d+: undefined variable "host\.\(sensitive\)"/);
    }
    await ws.write('templates/db.conf.liquid', spec(root, false)['templates/db.conf.liquid']!);
  }
}

describe('secrets never leak', () => {
  let pgDump = '';
  const answers: string[] = [];
  let sseText = '';
  let serveStdout = '';

  it('through the CLI with SQLite', async () => {
    await cliFlow(`sqlite:${path.join(base, 'state', 'cli.db')}`, path.join(base, 'root-sqlite'), 'sqlite', true);
  }, 120_000);

  it('through the CLI with PostgreSQL', async () => {
    const db = await freshDatabase();
    try {
      await cliFlow(db.url, path.join(base, 'root-pg'), 'postgres', false);
      pgDump = (await execa('pg_dump', ['--no-owner', db.url])).stdout;
      expect(pgDump).toMatch(/hmac-sha256:/);
    } finally {
      await db.drop();
    }
  }, 120_000);

  it('through capstan serve: every API route, SSE, /metrics, trace logs', async () => {
    // The controller: the same stack from a git remote, its identity from the config.
    remote = await gitRemote();
    const serveRoot = path.join(base, 'root-serve');
    const files: Record<string, string> = { ...spec(serveRoot, false), '.capstan-recipients': `${recipient}\n` };
    files['secrets/db.age'] = (await execa('age', ['-r', recipient, '-a'], { input: AGE_VALUE })).stdout + '\n';
    files['secrets/token.age'] = await readFile(path.join(ws.repo, 'secrets/token.age'), 'utf8');
    files['secrets/hook.age'] = await readFile(path.join(ws.repo, 'secrets/hook.age'), 'utf8');
    files['secrets/var.age'] = (await execa('age', ['-r', recipient, '-a'], { input: VAR_VALUE })).stdout + '\n';
    const commit = await remote.push(files, 'secrets');
    const serveState = `sqlite:${path.join(base, 'state', 'serve.db')}`;
    const config = path.join(base, 'capstan.yaml');
    await writeFile(
      config,
      `listen: 127.0.0.1:0\nstate: ${serveState}\ncacheDir: ${path.join(base, 'git-cache')}\nidentity: { file: ${idFile} }\n` +
        `stacks:\n  - name: prod\n    repo: ${remote.remote}\n    branch: main\n    interval: 1s\n    driftInterval: 2s\n    selfHeal: true\n    webhookSecret: { env: HOOK_SECRET }\n`,
    );
    const served = await serve(config, { CAPSTAN_LOG_LEVEL: 'trace', HOOK_SECRET: 'hook-secret-not-a-canary' });
    const admin = await createToken(serveState, 'admin', 'leak-test');
    const sse = await fetch(`${served.url}/api/events`, { headers: { authorization: `Bearer ${admin}` } });
    const reader = sse.body!.getReader();
    const pump = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        sseText += Buffer.from(value).toString('utf8');
      }
    })().catch(() => undefined);

    await waitFor('the controller applied the stack', async () => {
      const r = await api<{ name: string; lastAppliedCommit: string | null }[]>(served, '/api/stacks', { token: admin });
      return r.body.find((s) => s.name === 'prod')?.lastAppliedCommit === commit;
    }, 30_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${served.logs().slice(-15).map((l) => JSON.stringify(l)).join('\n')}`);
    });
    expect(await readFile(path.join(serveRoot, 'etc/db-password'), 'utf8')).toBe(AGE_VALUE);
    expect(await readFile(path.join(serveRoot, AM_CONFIG), 'utf8')).toContain(`url: ${HOOK_VALUE}`);
    expect(await readFile(path.join(serveRoot, DB_CONF), 'utf8')).toContain(`password = ${VAR_VALUE}`);
    // Self-heal a sensitive file changed by hand: drift seen through digests.
    await writeFile(path.join(serveRoot, 'etc/inline'), 'changed by hand\n');
    await waitFor('self-heal', async () => (await readFile(path.join(serveRoot, 'etc/inline'), 'utf8')) === INLINE_VALUE, 60_000);

    const get = async (route: string, token: string | undefined = admin, method = 'GET', body?: unknown) => {
      const r = await api(served, route, { token, method, body });
      answers.push(`${method} ${route} -> ${r.status}\n${typeof r.body === 'string' ? r.body : JSON.stringify(r.body)}`);
      return r;
    };
    const runs = await get('/api/stacks/prod/runs');
    const runIds = (runs.body as { id: number }[]).map((r) => r.id);
    expect(runIds.length).toBeGreaterThan(0);
    for (const route of ['/', '/healthz', '/readyz', '/metrics', '/api/stacks', '/api/stacks/prod', '/api/stacks/prod/plan', '/api/stacks/prod/plan?format=text', '/api/stacks/prod/resources', '/api/stacks/prod/events', '/api/audit', '/api/tokens']) {
      expect((await get(route)).status, route).toBeLessThan(500);
    }
    for (const id of runIds) expect((await get(`/api/runs/${id}`)).status).toBe(200);
    expect((await get('/api/stacks/prod/plan')).body).toMatchObject({ plan: expect.anything() });
    await get('/api/stacks/prod/sync', admin, 'POST');
    await get('/api/stacks/prod/approve', admin, 'POST', {});
    await get('/api/stacks/prod/rollback', admin, 'POST', { commit });
    await get('/api/stacks/reload', admin, 'POST');
    const created = await get('/api/tokens', admin, 'POST', { role: 'viewer', name: 'another' });
    const tokenId = (created.body as { id?: number | string }).id;
    if (tokenId !== undefined) await get(`/api/tokens/${tokenId}`, admin, 'DELETE');
    await waitFor('another pass after the API calls', async () => {
      const r = await api<{ id: number }[]>(served, '/api/stacks/prod/runs', { token: admin });
      return r.body.length > runIds.length || undefined;
    }, 20_000).catch(() => undefined);
    await reader.cancel().catch(() => undefined);
    await pump;
    expect(sseText).toMatch(/event: /);
    const logs = served.logs();
    expect(logs.length).toBeGreaterThan(0);
    await served.stop();
    serveStdout = JSON.stringify(logs);
  }, 120_000);

  it('left no trace in any output, file or store', async () => {
    const found: string[] = [];
    for (const o of outputs) found.push(...hits(o.what, o.text));
    for (const a of answers) found.push(...hits('API', a));
    found.push(...hits('SSE stream', sseText), ...hits('serve logs', serveStdout), ...hits('PostgreSQL dump', pgDump));
    const managed = new Set(['root-sqlite', 'root-pg', 'root-serve'].flatMap((r) => ['etc/db-password', 'etc/inline', AM_CONFIG, DB_CONF].map((f) => path.join(base, r, f))));
    // Alertmanager's own data directories are not Capstan's.
    const notCapstans = (p: string): boolean => path.basename(p).startsWith('am-data-');
    const written = await filesUnder(base, (p) => managed.has(p) || notCapstans(p) || p === ws.repo || p === path.join(base, 'git-cache') || p === remote!.base);
    // Capstan's own directory in the repository, if it wrote one there.
    const dotCapstan = path.join(ws.repo, '.capstan');
    if (await stat(dotCapstan).catch(() => undefined)) written.push(...(await filesUnder(dotCapstan, () => false)));
    const dbFiles = written.filter((f) => /\.db(-wal|-shm)?$/.test(f));
    expect(dbFiles.some((f) => f.endsWith('cli.db'))).toBe(true);
    for (const f of written) {
      if ((await stat(f)).size > 256 * 1024 * 1024) continue;
      found.push(...hits(path.relative(base, f), await readFile(f)));
    }
    expect(found).toEqual([]);
    // The search itself works: the managed file holds a canary.
    expect(hits('managed', await readFile(path.join(base, 'root-sqlite/etc/db-password')))).not.toEqual([]);
    expect(hits('managed', await readFile(path.join(base, 'root-serve', AM_CONFIG)))).not.toEqual([]);
    expect(hits('managed', await readFile(path.join(base, 'root-serve', DB_CONF)))).not.toEqual([]);
  });
});
