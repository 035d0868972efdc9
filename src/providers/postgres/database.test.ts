/**
 * What the conformance suite does not walk through for PostgresDatabase and
 * PostgresGrant: a replace (encoding, locale or template changed) refused while
 * deletionProtection is on and carried out once it is off; grants on functions
 * and sequences in a schema; a schema that still holds objects is not dropped.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChangeAction, ProviderContext } from '../provider.js';
import { postgresDatabaseProvider, postgresDatabaseSchema, type PostgresDatabaseSpec } from './database.js';
import { postgresGrantProvider, postgresGrantSchema } from './grant.js';
import { postgresSchemaProvider, postgresSchemaSchema } from './schema.js';
import { openTestServer, type TestServer } from './testing/server.js';

const ctx: ProviderContext = { signal: new AbortController().signal };
let server: TestServer;
beforeAll(async () => {
  server = await openTestServer();
});
afterAll(async () => {
  await server?.cleanup();
});

async function converge<S, L>(
  provider: { read: (h: never, s: S[], c: ProviderContext) => Promise<(L | null)[]>; diff: (d: S, l: L | null, p: S | null) => { action: string }; apply: (h: never, r: never, c: ProviderContext) => Promise<L | null> },
  spec: S,
  prior: S | null,
) {
  const h = server.handle as never;
  const [live] = await provider.read(h, [spec], ctx);
  const diff = provider.diff(spec, live ?? null, prior);
  if (diff.action === 'noop') return { diff, result: live ?? null };
  const result = await provider.apply(h, { action: diff.action as ChangeAction, address: 'X/test', desired: spec, prior, live: live ?? null } as never, ctx);
  return { diff, result };
}

describe('PostgresDatabase replace', () => {
  it('refuses to recreate a database for a new locale while deletionProtection is on, and recreates it once it is off', async () => {
    const name = server.name('replacedb');
    const first: PostgresDatabaseSpec = postgresDatabaseSchema.parse({ name, locale: 'C.UTF-8', template: 'template0' });
    await converge(postgresDatabaseProvider, first, null);
    await server.sql('CREATE TABLE marker (id int)', [], name);

    const protectedSpec = postgresDatabaseSchema.parse({ name, locale: 'C', template: 'template0' });
    const [live] = await postgresDatabaseProvider.read(server.handle, [protectedSpec], ctx);
    const diff = postgresDatabaseProvider.diff(protectedSpec, live ?? null, first);
    expect(diff.action).toBe('replace');
    expect(diff.reason).toMatch(/locale cannot change on a live database: drop and create it empty; refused while deletionProtection is on/);
    await expect(
      postgresDatabaseProvider.apply(server.handle, { action: 'replace', address: 'PostgresDatabase/replacedb', desired: protectedSpec, prior: first, live: live ?? null }, ctx),
    ).rejects.toThrow(/refusing to replace \(drop and create\) database .*deletionProtection is on/);
    expect(await server.sql('SELECT 1 FROM marker', [], name)).toEqual([]);

    const allowed = postgresDatabaseSchema.parse({ name, locale: 'C', template: 'template0', deletionProtection: false });
    const { diff: d2, result } = await converge(postgresDatabaseProvider, allowed, first);
    expect(d2.action).toBe('replace');
    expect(result).toMatchObject({ name, lcCollate: 'C', lcCtype: 'C' });
    await expect(server.sql('SELECT 1 FROM marker', [], name)).rejects.toThrow(/does not exist/);
  }, 30_000);

  it('sees a template change against the last applied spec only', () => {
    const prior = postgresDatabaseSchema.parse({ name: 'x' });
    const live = { name: 'x', owner: 'postgres', encoding: 'UTF8', lcCollate: 'C.UTF-8', lcCtype: 'C.UTF-8' };
    expect(postgresDatabaseProvider.diff(postgresDatabaseSchema.parse({ name: 'x', template: 'template0' }), live, prior)).toMatchObject({
      action: 'replace',
      fields: [{ path: 'template', before: 'template1', after: 'template0' }],
    });
    expect(postgresDatabaseProvider.diff(postgresDatabaseSchema.parse({ name: 'x', template: 'template0' }), live, null).action).toBe('noop');
  });
});

describe('PostgresGrant on functions and sequences', () => {
  it('grants EXECUTE on every function of a schema, sees one revoked by hand, and heals it', async () => {
    const [db, role] = [server.name('fndb'), server.name('caller')];
    await server.sql(`CREATE DATABASE ${pg.escapeIdentifier(db)}; `);
    await server.sql(`CREATE ROLE ${pg.escapeIdentifier(role)}`);
    await server.sql(
      `CREATE SCHEMA api;
       CREATE FUNCTION api.one() RETURNS int LANGUAGE sql AS 'SELECT 1';
       CREATE FUNCTION api.two() RETURNS int LANGUAGE sql AS 'SELECT 2';
       CREATE PROCEDURE api.proc() LANGUAGE sql AS 'SELECT 1';
       CREATE SEQUENCE api.ids`,
      [],
      db,
    );
    const fns = postgresGrantSchema.parse({ role, database: db, on: 'functions', schema: 'api', privileges: ['execute'] });
    const seqs = postgresGrantSchema.parse({ role, database: db, on: 'sequences', schema: 'api', privileges: ['USAGE', 'SELECT'] });
    const { result } = await converge(postgresGrantProvider, fns, null);
    expect(result).toMatchObject({ objects: 2, privileges: ['EXECUTE'], partial: [] });
    expect((await converge(postgresGrantProvider, seqs, null)).result).toMatchObject({ objects: 1, privileges: ['USAGE', 'SELECT'] });
    const lives = await postgresGrantProvider.read(server.handle, [fns, seqs], ctx);
    expect(lives.map((l, i) => postgresGrantProvider.diff([fns, seqs][i]!, l, null).action)).toEqual(['noop', 'noop']);

    await server.sql(`REVOKE EXECUTE ON FUNCTION api.two() FROM ${pg.escapeIdentifier(role)}`, [], db);
    const [drifted] = await postgresGrantProvider.read(server.handle, [fns], ctx);
    expect(postgresGrantProvider.diff(fns, drifted ?? null, fns)).toMatchObject({
      action: 'update',
      fields: [
        { path: 'privileges', before: [], after: ['EXECUTE'] },
        { path: 'partial', before: ['EXECUTE'], after: [] },
      ],
      reason: 'EXECUTE held on only some of the 2 functions',
    });
    await converge(postgresGrantProvider, fns, fns);
    const [healed] = await postgresGrantProvider.read(server.handle, [fns], ctx);
    expect(postgresGrantProvider.diff(fns, healed ?? null, fns).action).toBe('noop');
  });

  it('reads a grant on all tables of a schema without tables as present and unchanged', async () => {
    const [db, role] = [server.name('emptydb'), server.name('nobody')];
    await server.sql(`CREATE DATABASE ${pg.escapeIdentifier(db)}`);
    await server.sql(`CREATE ROLE ${pg.escapeIdentifier(role)}`);
    await server.sql('CREATE SCHEMA empty', [], db);
    const spec = postgresGrantSchema.parse({ role, database: db, on: 'tables', schema: 'empty', privileges: ['SELECT'] });
    const [live] = await postgresGrantProvider.read(server.handle, [spec], ctx);
    expect(live).toMatchObject({ objects: 0, privileges: [], partial: [] });
    expect(postgresGrantProvider.diff(spec, live ?? null, spec).action).toBe('noop');
  });
});

describe('PostgresSchema delete', () => {
  it('does not drop a schema that still holds objects, and says so', async () => {
    const db = server.name('fulldb');
    await server.sql(`CREATE DATABASE ${pg.escapeIdentifier(db)}`);
    const spec = postgresSchemaSchema.parse({ name: 'full', database: db });
    await converge(postgresSchemaProvider, spec, null);
    // "full" is a reserved word: only a quoted identifier works, as Capstan sends it.
    await server.sql('CREATE TABLE "full".t (id int)', [], db);
    await expect(
      postgresSchemaProvider.apply(server.handle, { action: 'delete', address: 'PostgresSchema/full', desired: null, prior: spec, live: null }, ctx),
    ).rejects.toThrow(/refusing to drop schema full in database .* \(PostgresSchema\/full\): it still holds objects/);
  });
});

describe('PostgresGrant applied in parallel', () => {
  it('applies many grants on the same database at once without "tuple concurrently updated"', async () => {
    const db = server.name('busydb');
    await server.sql(`CREATE DATABASE ${pg.escapeIdentifier(db)}`);
    const roles = Array.from({ length: 12 }, (_, i) => server.name(`busy${i}`));
    await server.sql(roles.map((r) => `CREATE ROLE ${pg.escapeIdentifier(r)}`).join(';'));
    const specs = roles.map((role) => postgresGrantSchema.parse({ role, database: db, on: 'database', privileges: ['CONNECT', 'TEMPORARY'] }));
    const results = await Promise.allSettled(
      specs.map((spec, i) => postgresGrantProvider.apply(server.handle, { action: 'create', address: `PostgresGrant/g${i}`, desired: spec, prior: null, live: null }, ctx)),
    );
    expect(results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason))).toEqual([]);
    const lives = await postgresGrantProvider.read(server.handle, specs, ctx);
    expect(lives.map((l) => l?.privileges)).toEqual(specs.map(() => ['CONNECT', 'TEMPORARY']));
  });
});
