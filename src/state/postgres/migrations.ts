/**
 * The PostgreSQL schema of the state store, as an ordered list of migrations, and
 * the row types Kysely reads it with.
 *
 * The tables mirror the SQLite ones (`../sqlite/migrations.ts`) with PostgreSQL
 * types: identity columns, `timestamptz`, `jsonb` for JSON, and `COLLATE "C"` on
 * stack names and addresses so they sort bytewise, as SQLite's BINARY does.
 *
 * A migration is never edited once released: a change to the schema is a new
 * entry at the end of `MIGRATIONS`. `migrate` applies the pending ones in one
 * transaction that first takes `pg_advisory_xact_lock` on a key derived from the
 * schema, so replicas starting together migrate once (the others wait, then find
 * nothing to do), and a replica killed half-way leaves the schema as it was.
 */
import type { ColumnType, Generated } from 'kysely';
import type pg from 'pg';
import type { RecordedAction, ResultStatus, Role, RunKind, RunStatus, StackPlanState } from '../store.js';

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'stacks, runs, results, inventory, events, locks',
    sql: `
      CREATE TABLE stacks (
        name    text COLLATE "C" PRIMARY KEY,
        serial  bigint NOT NULL DEFAULT 0
      );

      CREATE TABLE runs (
        id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        stack          text COLLATE "C" NOT NULL REFERENCES stacks (name),
        kind           text NOT NULL CHECK (kind IN ('apply', 'plan', 'drift')),
        status         text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
        actor_user     text NOT NULL,
        actor_host     text NOT NULL,
        actor_pid      integer NOT NULL,
        commit_sha     text,
        author         text,
        message        text,
        spec_hash      text,
        started_at     timestamptz NOT NULL,
        finished_at    timestamptz,
        count_create   integer NOT NULL DEFAULT 0,
        count_update   integer NOT NULL DEFAULT 0,
        count_replace  integer NOT NULL DEFAULT 0,
        count_delete   integer NOT NULL DEFAULT 0,
        count_noop     integer NOT NULL DEFAULT 0,
        count_failed   integer NOT NULL DEFAULT 0,
        count_skipped  integer NOT NULL DEFAULT 0,
        error          text
      );
      -- history of one stack, newest first
      CREATE INDEX runs_by_stack ON runs (stack, id);
      -- runs to mark interrupted when a dead holder's lock is taken over
      CREATE INDEX runs_running ON runs (stack, actor_host, actor_pid) WHERE status = 'running';

      CREATE TABLE results (
        id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        run_id       bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        address      text NOT NULL,
        action       text NOT NULL CHECK (action IN ('create', 'update', 'replace', 'delete', 'noop')),
        status       text NOT NULL CHECK (status IN ('succeeded', 'failed', 'skipped')),
        error        text,
        duration_ms  bigint NOT NULL,
        finished_at  timestamptz NOT NULL
      );
      CREATE INDEX results_by_run ON results (run_id, id);

      CREATE TABLE inventory (
        stack             text COLLATE "C" NOT NULL REFERENCES stacks (name),
        address           text COLLATE "C" NOT NULL,
        kind              text NOT NULL,
        target            text,
        target_kind       text,
        target_spec       jsonb NOT NULL,
        spec              jsonb NOT NULL,
        spec_hash         text NOT NULL,
        live_fingerprint  text,
        depends_on        jsonb NOT NULL CHECK (jsonb_typeof(depends_on) = 'array'),
        origin            text NOT NULL CHECK (origin IN ('created', 'adopted')),
        updated_at        timestamptz NOT NULL,
        last_run_id       bigint NOT NULL,
        PRIMARY KEY (stack, address)
      );

      CREATE TABLE events (
        id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        run_id   bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        at       timestamptz NOT NULL,
        address  text,
        type     text NOT NULL,
        message  text NOT NULL
      );
      CREATE INDEX events_by_run ON events (run_id, id);

      -- Who holds a stack's advisory lock, so a refused locker can name them.
      -- token: identifies one acquisition, so a stale handle never releases a later lock.
      -- A row whose advisory lock nobody holds was left by a session that ended.
      CREATE TABLE locks (
        stack        text COLLATE "C" PRIMARY KEY,
        holder       jsonb NOT NULL,
        token        uuid NOT NULL,
        acquired_at  timestamptz NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: 'controller: api tokens, audit log, stack status, stack plans, webhook deliveries',
    sql: `
      -- token_hash: sha256 of the token; the token itself is shown once and never stored
      CREATE TABLE api_tokens (
        id          text COLLATE "C" PRIMARY KEY,
        name        text NOT NULL,
        role        text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
        token_hash  text NOT NULL,
        created_at  timestamptz NOT NULL,
        expires_at  timestamptz,
        revoked_at  timestamptz
      );

      CREATE TABLE audit_log (
        id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at       timestamptz NOT NULL,
        actor    text NOT NULL,
        role     text,
        action   text NOT NULL,
        target   text,
        detail   jsonb NOT NULL,
        ip       text,
        outcome  text NOT NULL
      );

      CREATE TABLE stack_status (
        stack                   text COLLATE "C" PRIMARY KEY,
        status                  text NOT NULL,
        head_commit             text,
        last_applied_commit     text,
        last_applied_spec_hash  text,
        last_run_id             bigint,
        drifted                 integer NOT NULL DEFAULT 0,
        error                   text,
        rollback                jsonb,
        sync_requests           integer NOT NULL DEFAULT 0,
        owner                   text,
        updated_at              timestamptz NOT NULL
      );

      -- the current plan of each stack (the one awaiting approval, under the approve policy)
      CREATE TABLE stack_plans (
        stack       text COLLATE "C" PRIMARY KEY,
        id          text NOT NULL,
        state       text NOT NULL CHECK (state IN ('latest', 'pending', 'approved', 'applied', 'stale', 'superseded')),
        plan        jsonb NOT NULL,
        text        text NOT NULL,
        commit_sha  text,
        spec_hash   text NOT NULL,
        created_at  timestamptz NOT NULL,
        decided_by  text,
        decided_at  timestamptz
      );

      CREATE TABLE webhook_deliveries (
        source       text NOT NULL,
        delivery_id  text NOT NULL,
        received_at  timestamptz NOT NULL,
        PRIMARY KEY (source, delivery_id)
      );
      CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (received_at);
    `,
  },
  {
    version: 3,
    name: 'pending refreshes of notified handlers',
    sql: `
      -- a notify: handler whose notifier changed, until the handler has reacted
      CREATE TABLE pending_refreshes (
        stack        text COLLATE "C" NOT NULL REFERENCES stacks (name),
        address      text COLLATE "C" NOT NULL,
        notified_by  text COLLATE "C" NOT NULL,
        run_id       bigint NOT NULL REFERENCES runs (id),
        at           timestamptz NOT NULL,
        PRIMARY KEY (stack, address, notified_by)
      );
    `,
  },
  {
    version: 4,
    name: 'paused stacks',
    sql: `
      -- { by, at } while an operator has paused the stack
      ALTER TABLE stack_status ADD COLUMN paused jsonb;
    `,
  },
];

/** Schema names the store accepts in `?schema=`: a plain identifier, used quoted. */
export const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/**
 * Creates the schema if needed (when `schema` is given), applies the migrations it
 * has not seen yet, and returns their versions. Throws when the schema was written
 * by a newer Capstan (a version it does not know). The pool's connections must
 * already have `search_path` set to `schema`.
 */
export async function migrate(
  pool: pg.Pool,
  schema: string | undefined,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<number[]> {
  if (schema !== undefined && !SCHEMA_NAME.test(schema)) throw new Error(`invalid schema name "${schema}"`);
  const client = await pool.connect();
  // A checked-out client has no 'error' listener: one that lost its connection would crash the process.
  const ignoreError = (): void => {};
  client.on('error', ignoreError);
  let failed = false;
  try {
    await client.query('BEGIN');
    try {
      await client.query(`SELECT pg_advisory_xact_lock(hashtextextended('capstan:migrate:' || coalesce($1, current_schema()), 0))`, [
        schema ?? null,
      ]);
      if (schema !== undefined) await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
      await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version     integer PRIMARY KEY,
        name        text NOT NULL,
        applied_at  timestamptz NOT NULL
      )`);
      const applied = new Set(
        (await client.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version),
      );
      const known = new Set(migrations.map((m) => m.version));
      const unknown = [...applied].filter((v) => !known.has(v));
      if (unknown.length > 0) {
        throw new Error(
          `the state database has schema version ${Math.max(...unknown)}, newer than this Capstan knows ` +
            `(${Math.max(0, ...known)}); upgrade Capstan to use it`,
        );
      }
      const done: number[] = [];
      for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
        if (applied.has(m.version)) continue;
        await client.query(m.sql);
        await client.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [
          m.version,
          m.name,
          new Date().toISOString(),
        ]);
        done.push(m.version);
      }
      await client.query('COMMIT');
      return done;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    // After a failure the connection may be broken: it is not given back to the pool.
    if (!failed) client.off('error', ignoreError);
    client.release(failed);
  }
}

/**
 * Row types, as Kysely sees the tables. Timestamps read as ISO strings and bigints
 * as numbers (the store's pools install those parsers); jsonb reads as the parsed
 * value and is written as JSON text.
 */
export interface StateTables {
  stacks: StacksTable;
  runs: RunsTable;
  results: ResultsTable;
  inventory: InventoryTable;
  events: EventsTable;
  locks: LocksTable;
  schema_migrations: SchemaMigrationsTable;
  api_tokens: ApiTokensTable;
  audit_log: AuditLogTable;
  stack_status: StackStatusTable;
  stack_plans: StackPlansTable;
  webhook_deliveries: WebhookDeliveriesTable;
  pending_refreshes: PendingRefreshesTable;
}

export interface PendingRefreshesTable {
  stack: string;
  address: string;
  notified_by: string;
  run_id: number;
  at: string;
}

type Json = ColumnType<unknown, string, string>;

export interface StacksTable {
  name: string;
  serial: Generated<number>;
}

export interface RunsTable {
  id: Generated<number>;
  stack: string;
  kind: RunKind;
  status: RunStatus;
  actor_user: string;
  actor_host: string;
  actor_pid: number;
  commit_sha: string | null;
  author: string | null;
  message: string | null;
  spec_hash: string | null;
  started_at: string;
  finished_at: string | null;
  count_create: Generated<number>;
  count_update: Generated<number>;
  count_replace: Generated<number>;
  count_delete: Generated<number>;
  count_noop: Generated<number>;
  count_failed: Generated<number>;
  count_skipped: Generated<number>;
  error: string | null;
}

export interface ResultsTable {
  id: Generated<number>;
  run_id: number;
  address: string;
  action: RecordedAction;
  status: ResultStatus;
  error: string | null;
  duration_ms: number;
  finished_at: string;
}

export interface InventoryTable {
  stack: string;
  address: string;
  kind: string;
  target: string | null;
  target_kind: string | null;
  target_spec: Json;
  spec: Json;
  spec_hash: string;
  live_fingerprint: string | null;
  depends_on: Json;
  origin: 'created' | 'adopted';
  updated_at: string;
  last_run_id: number;
}

export interface EventsTable {
  id: Generated<number>;
  run_id: number;
  at: string;
  address: string | null;
  type: string;
  message: string;
}

export interface LocksTable {
  stack: string;
  holder: Json;
  token: string;
  acquired_at: string;
}

export interface SchemaMigrationsTable {
  version: number;
  name: string;
  applied_at: string;
}

export interface ApiTokensTable {
  id: string;
  name: string;
  role: Role;
  token_hash: string;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
}

export interface AuditLogTable {
  id: Generated<number>;
  at: string;
  actor: string;
  role: Role | null;
  action: string;
  target: string | null;
  detail: Json;
  ip: string | null;
  outcome: string;
}

export interface StackStatusTable {
  stack: string;
  status: string;
  head_commit: string | null;
  last_applied_commit: string | null;
  last_applied_spec_hash: string | null;
  last_run_id: number | null;
  drifted: Generated<number>;
  error: string | null;
  rollback: ColumnType<unknown, string | null, string | null>;
  paused: ColumnType<unknown, string | null, string | null>;
  sync_requests: Generated<number>;
  owner: string | null;
  updated_at: string;
}

export interface StackPlansTable {
  stack: string;
  id: string;
  state: StackPlanState;
  plan: Json;
  text: string;
  commit_sha: string | null;
  spec_hash: string;
  created_at: string;
  decided_by: string | null;
  decided_at: string | null;
}

export interface WebhookDeliveriesTable {
  source: string;
  delivery_id: string;
  received_at: string;
}
