/**
 * The PostgreSQL provider end to end, through the built CLI against the real
 * server on 127.0.0.1:5432: a stack with a role, a database, a schema, a grant
 * and an extension is validated, applied, planned again as a no-op, drifted by
 * hand with psql and healed, then removed (which needs --allow-mass-delete).
 * Every name has a random suffix; afterAll drops whatever is left.
 */
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, capstan, workspace, type Workspace } from './harness.js';

const suffix = `e${randomBytes(5).toString('hex')}`;
const role = `app_${suffix}`;
const db = `appdb_${suffix}`;
const PASSWORD = `e2e pa'ss\\word $$ ${suffix}`;

let ws: Workspace;

const psql = (sql: string, database = 'postgres') =>
  execa('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', database, '-v', 'ON_ERROR_STOP=1', '-Atc', sql]).then((r) => r.stdout);

const server = `kind: PostgresServer
name: main
spec: { host: 127.0.0.1, port: 5432, user: postgres, sslmode: disable }
`;

const resources = `kind: PostgresRole
name: app
target: main
spec:
  name: ${role}
  login: true
  password: ${JSON.stringify(PASSWORD)}
  createdb: true
  deletionProtection: false
---
kind: PostgresDatabase
name: appdb
target: main
spec: { name: ${db}, owner: ${role}, encoding: UTF8, locale: C.UTF-8, template: template0, deletionProtection: false }
---
kind: PostgresSchema
name: app
target: main
spec: { name: app, database: ${db}, owner: ${role} }
---
kind: PostgresGrant
name: app-tables
target: main
spec: { role: ${role}, database: ${db}, on: schema, schema: app, privileges: [USAGE, CREATE] }
---
kind: PostgresExtension
name: citext
target: main
spec: { name: citext, database: ${db}, schema: app }
`;

beforeAll(async () => {
  assertBuilt();
  ws = await workspace();
});
afterAll(async () => {
  await psql(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`).catch(() => undefined);
  await psql(`DROP ROLE IF EXISTS "${role}"`).catch(() => undefined);
  await ws?.cleanup();
});

describe('PostgreSQL through the CLI', () => {
  it('creates a role, database, schema, grant and extension; plans a no-op; heals drift made with psql; removes them', async () => {
    await ws.write('server.yaml', server);
    await ws.write('db.yaml', resources);
    const state = ['--state', ws.state];

    expect(await capstan(['validate', ws.repo])).toMatchObject({ exitCode: 0 });
    const applied = await capstan(['apply', ws.repo, ...state, '--yes']);
    expect(applied.stderr).toBe('');
    expect(applied.exitCode).toBe(0);
    expect(applied.stdout).toContain('5 created');
    expect(applied.stdout).not.toContain(PASSWORD);
    expect(await psql(`SELECT rolcanlogin, rolcreatedb, rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = '${role}'`)).toBe('t|t|t');
    expect(await psql(`SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '${db}'`)).toBe(role);
    expect(await psql(`SELECT e.extname || ' in ' || n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE extname = 'citext'`, db)).toBe('citext in app');
    expect(await psql(`SELECT has_schema_privilege('${role}', 'app', 'USAGE')`, db)).toBe('t');

    const again = await capstan(['plan', ws.repo, ...state, '--detailed-exitcode']);
    expect(again.stdout).toContain('No changes');
    expect(again.exitCode).toBe(0);

    // Drift by hand: an attribute, a privilege and the password.
    await psql(`ALTER ROLE "${role}" NOCREATEDB PASSWORD 'changed by hand'`);
    await psql(`REVOKE CREATE ON SCHEMA app FROM "${role}"`, db);
    const drift = await capstan(['drift', ws.repo, ...state]);
    expect(drift.exitCode).toBe(2);
    expect(drift.stdout).toMatch(/PostgresRole\/app: .*createdb/);
    expect(drift.stdout).toMatch(/PostgresGrant\/app-tables: privileges drifted/);
    const plan = await capstan(['plan', ws.repo, ...state]);
    expect(plan.stdout).toMatch(/~ password: \(sensitive/);
    expect(plan.stdout).not.toContain('changed by hand');
    expect(plan.stdout).not.toContain(PASSWORD);
    const healed = await capstan(['apply', ws.repo, ...state, '--yes']);
    expect(healed.exitCode).toBe(0);
    expect(healed.stdout).toContain('2 updated');
    expect((await capstan(['plan', ws.repo, ...state, '--detailed-exitcode'])).exitCode).toBe(0);

    // Removal: every managed resource goes, so the plan needs --allow-mass-delete.
    await ws.write('db.yaml', '');
    const refused = await capstan(['apply', ws.repo, ...state, '--yes']);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toContain('--allow-mass-delete');
    expect(await psql(`SELECT count(*) FROM pg_database WHERE datname = '${db}'`)).toBe('1');
    const removed = await capstan(['apply', ws.repo, ...state, '--yes', '--allow-mass-delete']);
    expect(removed.stderr).toBe('');
    expect(removed.exitCode).toBe(0);
    expect(removed.stdout).toContain('5 deleted');
    expect(await psql(`SELECT count(*) FROM pg_database WHERE datname = '${db}'`)).toBe('0');
    expect(await psql(`SELECT count(*) FROM pg_roles WHERE rolname = '${role}'`)).toBe('0');
  }, 120_000);
});
