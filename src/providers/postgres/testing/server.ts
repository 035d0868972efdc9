/**
 * The real PostgreSQL the Postgres provider tests run against: 127.0.0.1:5432,
 * user postgres, trust authentication (started by .ci/run). Every test server
 * gets a random suffix; `name('app')` gives `app_<suffix>`, and `cleanup()`
 * drops every database and role ending in that suffix — whatever the test left
 * behind, even after a failure.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { storedTarget } from '../../target-pool.js';
import type { Resource } from '../../../spec/resource.js';
import { postgresServerSchema, postgresServerTarget, type PostgresHandle, type PostgresServerSpec } from '../server.js';

export const TEST_SERVER = { host: '127.0.0.1', port: 5432, user: 'postgres' } as const;

export interface TestServer {
  readonly handle: PostgresHandle;
  readonly suffix: string;
  /** `<base>_<suffix>`: a database or role name no other test uses. */
  name(base: string): string;
  /** Runs SQL as postgres on `database` (default postgres), behind the providers' back. */
  sql(text: string, values?: unknown[], database?: string): Promise<Record<string, unknown>[]>;
  /** Closes the handle and drops every database and role of this test. */
  cleanup(): Promise<void>;
}

export function serverResource(spec: Partial<PostgresServerSpec> & Record<string, unknown> = {}, name = 'test'): Resource<PostgresServerSpec> {
  const parsed = postgresServerSchema.parse({ ...TEST_SERVER, sslmode: 'disable', ...spec });
  return storedTarget(`PostgresServer/${name}`, 'PostgresServer', parsed) as Resource<PostgresServerSpec>;
}

export interface TestNames {
  readonly suffix: string;
  name(base: string): string;
}

/** A fresh suffix, for specs written before the server is opened. */
export function testNames(): TestNames {
  const suffix = `t${randomBytes(5).toString('hex')}`;
  return { suffix, name: (base) => `${base}_${suffix}` };
}

export async function openTestServer(names: TestNames = testNames()): Promise<TestServer> {
  const { suffix } = names;
  const handle = await postgresServerTarget.connect(serverResource(), { signal: new AbortController().signal });
  const admin = new pg.Pool({ ...TEST_SERVER, database: 'postgres', max: 2 });
  const sql = async (text: string, values: unknown[] = [], database = 'postgres') => {
    if (database === 'postgres') return (await admin.query(text, values)).rows as Record<string, unknown>[];
    const client = new pg.Client({ ...TEST_SERVER, database });
    await client.connect();
    try {
      return (await client.query(text, values)).rows as Record<string, unknown>[];
    } finally {
      await client.end();
    }
  };
  return {
    handle,
    suffix,
    name: (base) => `${base}_${suffix}`,
    sql,
    async cleanup() {
      await handle.close().catch(() => undefined);
      const like = `%\\_${suffix}`;
      try {
        const dbs = await admin.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datname LIKE $1', [like]);
        for (const { datname } of dbs.rows) await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(datname)} WITH (FORCE)`);
        const roles = await admin.query<{ rolname: string }>('SELECT rolname FROM pg_roles WHERE rolname LIKE $1', [like]);
        for (const { rolname } of roles.rows) {
          const role = pg.escapeIdentifier(rolname);
          await admin.query(`DROP OWNED BY ${role}`);
          await admin.query(`DROP ROLE IF EXISTS ${role}`);
        }
      } finally {
        await admin.end();
      }
    },
  };
}
