/**
 * The Postgres kinds through the real loader, planner and applier against the
 * real PostgreSQL on 127.0.0.1:5432: how many queries a plan costs (counted on
 * the driver), validation diagnostics with positions, drift made by hand and
 * healed, and deletes that are refused.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { applyPlan } from '../../apply/apply.js';
import { formatDiagnostic } from '../../diag/diagnostic.js';
import type { Plan } from '../../plan/plan.js';
import { planChanges } from '../../plan/planner.js';
import { loadStack } from '../../spec/load.js';
import { SqliteStore } from '../../state/sqlite/sqlite-store.js';
import type { Store } from '../../state/store.js';
import { ProviderRegistry } from '../registry.js';
import { TargetPool } from '../target-pool.js';
import { postgresProviders } from './index.js';
import { postgresRoleProvider, postgresRoleSchema } from './role.js';
import { postgresServerTarget } from './server.js';
import { openTestServer, serverResource, type TestServer } from './testing/server.js';

const registry = new ProviderRegistry(postgresProviders);
const actor = { user: 'tester', host: os.hostname(), pid: process.pid };
const source = { dir: '/repo', repo: null, ref: null, commit: 'c'.repeat(40), author: 'A <a@x>', message: 'm', dirty: false };
const ctx = { signal: new AbortController().signal };

let server: TestServer;
let dir: string;
let repo: string;
let store: Store;

beforeAll(async () => {
  server = await openTestServer();
});
afterAll(async () => {
  await server?.cleanup();
});
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-pg-engine-'));
  repo = path.join(dir, 'repo');
  await mkdir(repo);
  store = await SqliteStore.open(path.join(dir, 'state.db'));
});
afterEach(async () => {
  vi.restoreAllMocks();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const SERVER_DOC = 'kind: PostgresServer\nname: main\nspec: { host: 127.0.0.1, port: 5432, user: postgres, sslmode: disable }\n';

async function writeStack(docs: string[]): Promise<void> {
  await rm(repo, { recursive: true, force: true });
  await mkdir(repo);
  await writeFile(path.join(repo, 'server.yaml'), SERVER_DOC);
  await writeFile(path.join(repo, 'db.yaml'), docs.join('---\n'));
}

async function plan(options: { allowMassDelete?: boolean } = {}): Promise<Plan> {
  const stack = await loadStack(repo, registry);
  expect(stack.diagnostics.map(formatDiagnostic)).toEqual([]);
  const targets = new TargetPool(registry, ctx);
  try {
    return await planChanges({ stack: 's', desired: stack, source, registry, store, targets, ...options });
  } finally {
    await targets.close();
  }
}

async function apply(p: Plan) {
  expect(p.diagnostics.map(formatDiagnostic)).toEqual([]);
  const targets = new TargetPool(registry, ctx);
  try {
    return await applyPlan({ plan: p, registry, store, targets, actor });
  } finally {
    await targets.close();
  }
}

const actions = (p: Plan) => Object.fromEntries(p.changes.map((c) => [c.address, c.action]));
const doc = (kind: string, name: string, spec: string) => `kind: ${kind}\nname: ${name}\ntarget: main\nspec: ${spec}\n`;

/** Roles, and per database a schema, two grants and an extension. */
function fleet(roles: number, databases: number): string[] {
  const docs: string[] = [];
  for (let i = 0; i < roles; i++) docs.push(doc('PostgresRole', `r${i}`, `{ name: ${server.name(`r${i}`)}, login: true, password: "pw-${i}" }`));
  for (let d = 0; d < databases; d++) {
    const db = server.name(`db${d}`);
    docs.push(doc('PostgresDatabase', `db${d}`, `{ name: ${db}, owner: ${server.name('r0')}, deletionProtection: false }`));
    docs.push(doc('PostgresSchema', `app${d}`, `{ name: app, database: ${db}, owner: ${server.name('r0')} }`));
    docs.push(doc('PostgresGrant', `connect${d}`, `{ role: ${server.name('r1')}, database: ${db}, on: database, privileges: [CONNECT] }`));
    docs.push(doc('PostgresGrant', `tables${d}`, `{ role: ${server.name('r1')}, database: ${db}, on: tables, schema: app, privileges: [SELECT] }`));
    docs.push(doc('PostgresExtension', `citext${d}`, `{ name: citext, database: ${db} }`));
  }
  return docs;
}

/** Counts every statement the driver sends while `fn` runs (the pools' `query`, which the handle uses for all reads). */
async function countQueries(fn: () => Promise<unknown>): Promise<number> {
  const spy = vi.spyOn(pg.Pool.prototype, 'query');
  try {
    await fn();
    return spy.mock.calls.length;
  } finally {
    spy.mockRestore();
  }
}

describe('PostgresServer', () => {
  it('with sslmode prefer falls back to plain TCP on a server without TLS; require refuses it, naming the target', async () => {
    const preferred = await postgresServerTarget.connect(serverResource({ sslmode: 'prefer' }, 'plain'), ctx);
    await preferred.close();
    expect(preferred.user).toBe('postgres');
    await expect(postgresServerTarget.connect(serverResource({ sslmode: 'require' }, 'plain'), ctx)).rejects.toThrow(
      /cannot connect to PostgresServer\/plain \(127\.0\.0\.1:5432\) as postgres: .*SSL/,
    );
  });

  it('refuses unreachable servers with a message naming the target', async () => {
    await expect(postgresServerTarget.connect(serverResource({ port: 1, connectTimeout: 2 }, 'down'), ctx)).rejects.toThrow(
      /cannot connect to PostgresServer\/down \(127\.0\.0\.1:1\) as postgres: .*ECONNREFUSED/,
    );
  });
});

describe('Postgres resources through the engine', () => {
  it('reads 50 roles with one query', async () => {
    const specs = Array.from({ length: 50 }, (_, i) => postgresRoleSchema.parse({ name: server.name(`batch${i}`), login: true, password: `pw-${i}` }));
    await server.sql(specs.map((s) => `CREATE ROLE ${pg.escapeIdentifier(s.name)} LOGIN PASSWORD 'pw'`).join(';'));
    const calls: string[] = [];
    const original = server.handle.query;
    const spy = vi.spyOn(server.handle, 'query').mockImplementation((sql, values, database) => {
      calls.push(sql);
      return original(sql, values, database);
    });
    const lives = await postgresRoleProvider.read(server.handle, specs, ctx);
    spy.mockRestore();
    expect(lives.filter((l) => l !== null)).toHaveLength(50);
    expect(lives.every((l) => l?.password.method === 'scram-sha-256' && l.password.matches === false)).toBe(true);
    expect(calls).toHaveLength(1);
  });

  it('plans a server with 50 roles and 3 databases (schema, grants, extension each) in 12 queries, the same as with 5 roles', async () => {
    await writeStack(fleet(50, 3));
    const first = await plan();
    expect(new Set(Object.values(actions(first)))).toEqual(new Set(['create']));
    const result = await apply(first);
    expect(result.failures).toEqual([]);

    // 1 connect check + 1 roles + 1 databases + per database 1 schemas, 1 grants, 1 extensions.
    const big = await countQueries(async () => expect(new Set(Object.values(actions(await plan())))).toEqual(new Set(['noop'])));
    expect(big).toBe(1 + 1 + 1 + 3 * 3);
    await writeStack(fleet(5, 3));
    const small = await countQueries(() => plan({ allowMassDelete: true }));
    expect(small).toBe(big);
  }, 60_000);

  it('detects drift made by hand (NOSUPERUSER, REVOKE, NOCREATEDB, a membership) and heals it', async () => {
    const [role, parent, db] = [server.name('drift'), server.name('drift_parent'), server.name('driftdb')];
    await writeStack([
      doc('PostgresRole', 'parent', `{ name: ${parent} }`),
      doc('PostgresRole', 'drift', `{ name: ${role}, login: true, superuser: true, createdb: true, inRoles: [${parent}] }`),
      doc('PostgresDatabase', 'driftdb', `{ name: ${db}, deletionProtection: false }`),
      doc('PostgresGrant', 'connect', `{ role: ${role}, database: ${db}, on: database, privileges: [CONNECT, TEMPORARY] }`),
    ]);
    expect((await apply(await plan())).failures).toEqual([]);
    expect(actions(await plan())).toEqual({
      'PostgresRole/parent': 'noop',
      'PostgresRole/drift': 'noop',
      'PostgresDatabase/driftdb': 'noop',
      'PostgresGrant/connect': 'noop',
    });

    const r = pg.escapeIdentifier(role);
    await server.sql(`ALTER ROLE ${r} NOSUPERUSER NOCREATEDB`);
    await server.sql(`REVOKE ${pg.escapeIdentifier(parent)} FROM ${r}`);
    await server.sql(`REVOKE TEMPORARY ON DATABASE ${pg.escapeIdentifier(db)} FROM ${r}`);
    const drifted = await plan();
    const changed = Object.fromEntries(drifted.changes.filter((c) => c.action !== 'noop').map((c) => [c.address, c.fields.map((f) => f.path)]));
    expect(changed).toEqual({ 'PostgresRole/drift': ['superuser', 'createdb', 'inRoles'], 'PostgresGrant/connect': ['privileges'] });
    expect((await apply(drifted)).failures).toEqual([]);
    expect(new Set(Object.values(actions(await plan())))).toEqual(new Set(['noop']));
  }, 30_000);

  it('refuses to drop a role or database removed from the spec while deletionProtection is on, and drops them once it is off', async () => {
    const [role, db] = [server.name('kept'), server.name('keptdb')];
    const keep = doc('PostgresRole', 'other', `{ name: ${server.name('other')} }`);
    await writeStack([keep, doc('PostgresRole', 'kept', `{ name: ${role} }`), doc('PostgresDatabase', 'keptdb', `{ name: ${db} }`)]);
    expect((await apply(await plan())).failures).toEqual([]);

    await writeStack([keep]);
    const removal = await plan({ allowMassDelete: true });
    expect(actions(removal)).toMatchObject({ 'PostgresRole/kept': 'delete', 'PostgresDatabase/keptdb': 'delete' });
    const refused = await apply(removal);
    expect(refused.failures.map((f) => `${f.address}: ${f.error}`).sort()).toEqual([
      expect.stringMatching(/^PostgresDatabase\/keptdb: refusing to drop database .*deletionProtection is on/),
      expect.stringMatching(/^PostgresRole\/kept: refusing to drop role .*deletionProtection is on/),
    ]);
    expect(await server.sql('SELECT 1 FROM pg_database WHERE datname = $1', [db])).toHaveLength(1);
    expect(await server.sql('SELECT 1 FROM pg_roles WHERE rolname = $1', [role])).toHaveLength(1);

    // Opt out, apply, then remove.
    await writeStack([keep, doc('PostgresRole', 'kept', `{ name: ${role}, deletionProtection: false }`), doc('PostgresDatabase', 'keptdb', `{ name: ${db}, deletionProtection: false }`)]);
    expect((await apply(await plan())).failures).toEqual([]);
    await writeStack([keep]);
    // Two deletes of three managed resources: above the mass-delete threshold.
    expect((await plan()).diagnostics.map((d) => d.summary).join('\n')).toMatch(/--allow-mass-delete/);
    expect((await apply(await plan({ allowMassDelete: true }))).failures).toEqual([]);
    expect(await server.sql('SELECT 1 FROM pg_database WHERE datname = $1', [db])).toHaveLength(0);
    expect(await server.sql('SELECT 1 FROM pg_roles WHERE rolname = $1', [role])).toHaveLength(0);
  }, 30_000);

  it('drops even one database only with --allow-mass-delete (allowMassDelete), whatever the share of deletes', async () => {
    const keep = Array.from({ length: 6 }, (_, i) => doc('PostgresRole', `keep${i}`, `{ name: ${server.name(`keep${i}`)} }`));
    const db = server.name('onedb');
    await writeStack([...keep, doc('PostgresDatabase', 'onedb', `{ name: ${db}, deletionProtection: false }`)]);
    expect((await apply(await plan())).failures).toEqual([]);

    await writeStack(keep);
    const stack = await loadStack(repo, registry);
    const targets = new TargetPool(registry, ctx);
    const refused = await planChanges({ stack: 's', desired: stack, source, registry, store, targets }).finally(() => targets.close());
    expect(refused.diagnostics.map(formatDiagnostic)).toEqual([
      'PostgresDatabase/onedb: the plan drops PostgresDatabase/onedb, which loses what it holds; if that is intended, run again with --allow-mass-delete',
    ]);
    expect((await apply(await plan({ allowMassDelete: true }))).failures).toEqual([]);
    expect(await server.sql('SELECT 1 FROM pg_database WHERE datname = $1', [db])).toHaveLength(0);
  }, 30_000);

  it('refuses to drop a role that owns objects, naming them, even with deletionProtection off', async () => {
    const [role, db] = [server.name('owner'), server.name('ownerdb')];
    const keep = doc('PostgresRole', 'other', `{ name: ${server.name('other2')} }`);
    await writeStack([keep, doc('PostgresRole', 'owner', `{ name: ${role}, deletionProtection: false }`)]);
    expect((await apply(await plan())).failures).toEqual([]);
    await server.sql(`CREATE DATABASE ${pg.escapeIdentifier(db)} OWNER ${pg.escapeIdentifier(role)}`);
    await server.sql(`CREATE TABLE t (id int); ALTER TABLE t OWNER TO ${pg.escapeIdentifier(role)}`, [], db);

    await writeStack([keep]);
    const result = await apply(await plan({ allowMassDelete: true }));
    expect(result.failures.map((f) => f.error)).toEqual([
      expect.stringMatching(new RegExp(`refusing to drop role ${role} .*it owns database ${db} and owns 1 object\\(s\\) in database ${db}\\. .*REASSIGN OWNED`)),
    ]);
    expect(await server.sql('SELECT 1 FROM pg_roles WHERE rolname = $1', [role])).toHaveLength(1);
  }, 30_000);

  it('reports bad names, unknown privileges and invalid combinations at FILE:LINE:COL with the address, and changes nothing', async () => {
    await writeStack([
      doc('PostgresRole', 'bad', '{ name: "bad name" }'),
      doc('PostgresGrant', 'oops', '{ role: app, database: appdb, on: tables, privileges: [SELECT, EXECUTE] }'),
      doc('PostgresGrant', 'combo', '{ role: app, database: appdb, on: database, schema: public, privileges: [CONNECT] }'),
      doc('PostgresRole', 'self', '{ name: loop, inRoles: [loop] }'),
      doc('PostgresRole', 'twin', '{ name: loop }'),
    ]);
    const stack = await loadStack(repo, registry);
    expect(stack.diagnostics.map(formatDiagnostic)).toEqual([
      'db.yaml:4:15: PostgresRole/bad: spec.name: name must be a PostgreSQL name: letters, digits, "_", "$", ".", "-", starting with a letter or "_"',
      'db.yaml:9:41: PostgresGrant/oops: spec.on: on: tables needs schema: the schema it applies to',
      'db.yaml:9:70: PostgresGrant/oops: spec.privileges[1]: "EXECUTE" is not a privilege on tables: use SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER or ALL',
      'db.yaml:14:59: PostgresGrant/combo: spec.schema: schema is only for on: schema, tables, sequences or functions (not on: database)',
      'db.yaml:19:15: PostgresRole/self: role loop is also managed by PostgresRole/twin',
      'db.yaml:19:30: PostgresRole/self: role loop cannot be a member of itself',
      'db.yaml:24:15: PostgresRole/twin: role loop is also managed by PostgresRole/self',
    ]);
    // A spec with errors plans nothing.
    const targets = new TargetPool(registry, ctx);
    const p = await planChanges({ stack: 's', desired: stack, source, registry, store, targets }).finally(() => targets.close());
    expect(p.changes).toEqual([]);
  });
});
