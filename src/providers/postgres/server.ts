/**
 * PostgresServer: a PostgreSQL server that roles, databases, schemas, grants and
 * extensions live on. Its handle holds one connection pool per database for the
 * whole run (the target's own `database` first, others opened when a resource
 * lives in them) and closes them all in `close()`.
 *
 * Everything the Postgres providers send goes through `query` and
 * `transaction`: identifiers quoted with the driver's `escapeIdentifier`, values
 * as parameters, and where DDL takes no parameters (a role's password, a
 * VALID UNTIL time) a literal made with `escapeLiteral` — for a password, only
 * ever a SCRAM verifier computed by Capstan, never the password itself.
 */
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import pg from 'pg';
import { z } from 'zod';
import type { Resource } from '../../spec/resource.js';
import { isSensitiveDigest, revealString, secretString, SENSITIVE_TEXT } from '../../secrets/sensitive.js';
import { ProviderError, type ProviderContext, type TargetHandle, type TargetProvider } from '../provider.js';
import { identifierSchema } from './names.js';

const HOST_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.:-]*$|^\/[^\0]*$/;

export const SSL_MODES = ['disable', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;

export const postgresServerSchema = z
  .strictObject({
    /** A host name, an IP address, or the directory of the server's Unix socket. */
    host: z
      .string({ error: 'host must be a host name, an IP address or a socket directory' })
      .regex(HOST_PATTERN, { error: 'host must be a host name, an IP address or an absolute socket directory' })
      .default('127.0.0.1')
      .meta({ description: "A host name, an IP address, or the directory of the server's Unix socket.", examples: ['db-1.internal', '/var/run/postgresql'] }),
    port: z
      .number({ error: 'port must be a number' })
      .int({ error: 'port must be a whole number' })
      .min(1, { error: 'port must be from 1 to 65535' })
      .max(65535, { error: 'port must be from 1 to 65535' })
      .default(5432)
      .meta({ description: 'TCP port (or the number in the socket file name).', examples: [5433] }),
    user: identifierSchema('user').default('postgres').meta({ description: 'The role Capstan connects as; it must be allowed to manage what the stack declares (CREATEROLE, CREATEDB, or superuser).', examples: ['capstan'] }),
    /** A literal or `{ secret: PATH }`; absent for trust or peer authentication. */
    password: secretString('password must be a string or { secret: PATH }')
      .optional()
      .meta({ description: 'Password of user, usually `{ secret: PATH }` (an inline one is sealed like a secret); absent for trust or peer authentication.', examples: [{ secret: 'secrets/pg-capstan.age' }] }),
    /** The database Capstan connects to for server-wide objects (roles, databases). */
    database: identifierSchema('database').default('postgres').meta({ description: 'The database Capstan connects to for server-wide objects (roles, databases).', examples: ['postgres'] }),
    sslmode: z
      .enum(SSL_MODES, { error: `sslmode must be one of ${SSL_MODES.join(', ')}` })
      .default('prefer')
      .meta({ description: 'TLS, as libpq: disable, prefer, require, or verify-ca / verify-full (those need caFile).', examples: ['verify-full'] }),
    /** The CA certificate (PEM) that verify-ca and verify-full check the server against; relative to the repository. */
    caFile: z
      .string({ error: 'caFile must be a path' })
      .min(1, { error: 'caFile must not be empty' })
      .refine((p) => !p.includes('\0'), { error: 'caFile must not contain a NUL character' })
      .optional()
      .meta({ description: 'The CA certificate (PEM) that verify-ca and verify-full check the server against; relative to the repository.', examples: ['certs/db-ca.pem'] }),
    /** Seconds to wait for a connection. */
    connectTimeout: z
      .number({ error: 'connectTimeout must be a number of seconds' })
      .positive({ error: 'connectTimeout must be positive' })
      .default(10)
      .meta({ description: 'Seconds to wait for a connection.', examples: [5] }),
  })
  .refine((s) => s.caFile === undefined || s.sslmode !== 'disable', {
    error: 'caFile needs an sslmode that uses TLS (require, verify-ca or verify-full)',
    path: ['caFile'],
  })
  .refine((s) => !(s.sslmode === 'verify-ca' || s.sslmode === 'verify-full') || s.caFile !== undefined, {
    error: 'sslmode verify-ca and verify-full need caFile: the CA certificate to check the server against',
    path: ['sslmode'],
  })
  .meta({ examples: [{ host: 'db-1.internal', port: 5432, user: 'capstan', password: { secret: 'secrets/pg-capstan.age' }, sslmode: 'verify-full', caFile: 'certs/db-ca.pem' }] });

export type PostgresServerSpec = z.infer<typeof postgresServerSchema>;

/** One query's rows. */
export type Query = <R extends object = Record<string, unknown>>(sql: string, values?: readonly unknown[]) => Promise<R[]>;

/** An open PostgresServer, shared by every Postgres resource on it during one run. */
export interface PostgresHandle extends TargetHandle {
  /** `PostgresServer/main (127.0.0.1:5432)`: where messages say something happened. */
  readonly label: string;
  /** The database the target connects to (server-wide objects are read there). */
  readonly database: string;
  /** The role Capstan is connected as. */
  readonly user: string;
  /** Runs one statement on `database` (default: the target's own). Every read and write goes through here. */
  query: <R extends object = Record<string, unknown>>(sql: string, values?: readonly unknown[], database?: string) => Promise<R[]>;
  /** Runs `work` in one transaction on one connection to `database`; rolls back when it throws. */
  transaction<T>(database: string | undefined, work: (query: Query) => Promise<T>): Promise<T>;
  /** Closes the pool of a database (before dropping it: PostgreSQL refuses to drop a database in use). */
  releaseDatabase(name: string): Promise<void>;
  /**
   * Runs `work` after every earlier `work` with the same key has finished. Two
   * GRANTs on one object in parallel transactions make PostgreSQL fail one with
   * "tuple concurrently updated"; grants take a key per database.
   */
  exclusive<T>(key: string, work: () => Promise<T>): Promise<T>;
}

/** `"name"`, quoted by the driver. */
export const ident = (name: string): string => pg.escapeIdentifier(name);
/** `'value'`, quoted by the driver: only for DDL that takes no parameters. */
export const literal = (value: string): string => pg.escapeLiteral(value);

const POOL_SIZE = 4;

class OpenServer implements PostgresHandle {
  private readonly pools = new Map<string, pg.Pool>();
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(
    readonly address: string,
    readonly label: string,
    readonly database: string,
    readonly user: string,
    private readonly config: pg.PoolConfig,
    first: pg.Pool,
  ) {
    this.pools.set(database, first);
  }

  private pool(database: string): pg.Pool {
    let pool = this.pools.get(database);
    if (!pool) {
      pool = newPool({ ...this.config, database });
      this.pools.set(database, pool);
    }
    return pool;
  }

  query = async <R extends object = Record<string, unknown>>(sql: string, values: readonly unknown[] = [], database?: string): Promise<R[]> => {
    const db = database ?? this.database;
    try {
      const result = await this.pool(db).query(sql, [...values]);
      return result.rows as R[];
    } catch (err) {
      throw this.wrap(err, db);
    }
  };

  async transaction<T>(database: string | undefined, work: (query: Query) => Promise<T>): Promise<T> {
    const db = database ?? this.database;
    let client: pg.PoolClient;
    try {
      client = await this.pool(db).connect();
    } catch (err) {
      throw this.wrap(err, db);
    }
    const run: Query = async <R extends object>(sql: string, values: readonly unknown[] = []) => {
      try {
        return (await client.query(sql, [...values])).rows as R[];
      } catch (err) {
        throw this.wrap(err, db);
      }
    };
    try {
      await run('BEGIN');
      const result = await work(run);
      await run('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  exclusive<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(key) ?? Promise.resolve();
    const result = previous.then(work, work);
    const settled = result.catch(() => undefined);
    this.queues.set(key, settled);
    void settled.then(() => {
      if (this.queues.get(key) === settled) this.queues.delete(key);
    });
    return result;
  }

  async releaseDatabase(name: string): Promise<void> {
    const pool = this.pools.get(name);
    if (!pool || name === this.database) return;
    this.pools.delete(name);
    await pool.end();
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.allSettled(pools.map((p) => p.end()));
  }

  /** A driver error as a ProviderError naming the server and database; PostgreSQL's own code and detail kept. */
  private wrap(err: unknown, database: string): Error {
    if (err instanceof ProviderError) return err;
    const e = err as Error & { code?: string; detail?: string; hint?: string };
    const extra = [e.detail, e.hint].filter((s) => typeof s === 'string' && s !== '').join('; ');
    return new PostgresError(`${this.label} database ${database}: ${e.message}${extra ? ` (${extra})` : ''}`, e.code, { cause: err });
  }
}

/** A failed statement: the message names the server and database; `code` is PostgreSQL's SQLSTATE. */
export class PostgresError extends ProviderError {
  constructor(
    message: string,
    readonly code: string | undefined,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'PostgresError';
  }
}

/** SQLSTATE 3D000: the database does not exist. */
export const isMissingDatabase = (err: unknown): boolean => err instanceof PostgresError && err.code === '3D000';

function newPool(config: pg.PoolConfig): pg.Pool {
  const pool = new pg.Pool({ ...config, max: POOL_SIZE, idleTimeoutMillis: 10_000 });
  // An idle connection the server closed must not crash the process; the next query opens a new one.
  pool.on('error', () => undefined);
  return pool;
}

function repoPath(address: string, value: string, ctx: ProviderContext): string {
  if (path.isAbsolute(value)) return value;
  if (value === '~' || value.startsWith('~/')) return path.join(os.homedir(), value.slice(1));
  if (ctx.repoDir === undefined) {
    throw new ProviderError(`cannot connect to ${address}: caFile ${value} is relative to the repository, but this run has no repository directory`);
  }
  return path.resolve(ctx.repoDir, value);
}

async function tlsOptions(resource: Resource<PostgresServerSpec>, ctx: ProviderContext): Promise<ConnectionOptions | false> {
  const spec = resource.spec;
  if (spec.sslmode === 'disable') return false;
  let ca: string | undefined;
  if (spec.caFile !== undefined) {
    const file = repoPath(resource.address, spec.caFile, ctx);
    try {
      ca = await readFile(file, 'utf8');
    } catch (err) {
      throw new ProviderError(`cannot connect to ${resource.address}: caFile ${spec.caFile}: ${(err as Error).message}`, { cause: err });
    }
  }
  switch (spec.sslmode) {
    case 'prefer':
    case 'require':
      // libpq: require with a CA file behaves as verify-ca.
      return ca === undefined ? { rejectUnauthorized: false } : { ca, rejectUnauthorized: true, checkServerIdentity: () => undefined };
    case 'verify-ca':
      return { ca, rejectUnauthorized: true, checkServerIdentity: () => undefined };
    case 'verify-full':
      // The driver checks the certificate against `host` (a name or an IP address in its subjectAltName).
      return { ca, rejectUnauthorized: true };
  }
}

/** Opens the target's pool and checks it with one query; `prefer` falls back to plain TCP when the server has no TLS. */
async function connect(resource: Resource<PostgresServerSpec>, ctx: ProviderContext): Promise<PostgresHandle> {
  const spec = resource.spec;
  const label = `${resource.address} (${spec.host}:${spec.port})`;
  if (spec.password !== undefined && (isSensitiveDigest(spec.password) || spec.password === SENSITIVE_TEXT)) {
    // A secret that went through JSON (a saved plan, a stored target) comes back as its mask.
    throw new ProviderError(`cannot connect to ${label}: its password is not available here (a saved or stored spec does not carry secrets)`);
  }
  const base: pg.PoolConfig = {
    host: spec.host,
    port: spec.port,
    user: spec.user,
    database: spec.database,
    connectionTimeoutMillis: spec.connectTimeout * 1000,
    application_name: 'capstan',
    ...(spec.password === undefined ? {} : { password: revealString(spec.password) }),
  };
  const attempt = async (ssl: ConnectionOptions | false) => {
    const config = { ...base, ssl };
    const pool = newPool(config);
    try {
      const rows = (await pool.query('SELECT current_user AS "user"')).rows as { user: string }[];
      return { pool, config, user: rows[0]!.user };
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw err;
    }
  };
  const ssl = await tlsOptions(resource, ctx);
  try {
    let opened;
    try {
      opened = await attempt(ssl);
    } catch (err) {
      if (spec.sslmode !== 'prefer' || !/does not support SSL/i.test((err as Error).message)) throw err;
      opened = await attempt(false);
    }
    return new OpenServer(resource.address, label, spec.database, opened.user, opened.config, opened.pool);
  } catch (err) {
    if (err instanceof ProviderError) throw err;
    throw new ProviderError(`cannot connect to ${label} as ${spec.user}: ${(err as Error).message}`, { cause: err });
  }
}

export const postgresServerTarget: TargetProvider<PostgresServerSpec, PostgresHandle> = {
  role: 'target',
  sensitiveFields: ['password'],
  kind: 'PostgresServer',
  description: 'A PostgreSQL server reached over TCP or a Unix socket; PostgresRole, PostgresDatabase, PostgresSchema, PostgresGrant and PostgresExtension live on it.',
  schema: postgresServerSchema,
  groupsOf: () => [],
  connect,
};
