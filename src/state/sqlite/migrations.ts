/**
 * The SQLite schema of the state store, as an ordered list of migrations, and the
 * row types Kysely reads it with.
 *
 * A migration is never edited once released: a change to the schema is a new
 * entry at the end of `MIGRATIONS`. `migrate` applies the pending ones in one
 * `BEGIN IMMEDIATE` transaction and records each in `schema_migrations`, so two
 * processes opening a new database at once do not race, and a process killed
 * half-way leaves the database as it was before.
 *
 * (Kysely's Migrator is not used: for SQLite it runs migrations outside a
 * transaction and without a lock between processes.)
 */
import type BetterSqlite3 from 'better-sqlite3';
import type { Generated } from 'kysely';
import type { RecordedAction, ResultStatus, RunKind, RunStatus } from '../store.js';

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
        name   TEXT PRIMARY KEY,
        serial INTEGER NOT NULL DEFAULT 0
      ) STRICT;

      CREATE TABLE runs (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        stack          TEXT NOT NULL REFERENCES stacks (name),
        kind           TEXT NOT NULL CHECK (kind IN ('apply', 'plan', 'drift')),
        status         TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
        actor_user     TEXT NOT NULL,
        actor_host     TEXT NOT NULL,
        actor_pid      INTEGER NOT NULL,
        commit_sha     TEXT,
        author         TEXT,
        message        TEXT,
        spec_hash      TEXT,
        started_at     TEXT NOT NULL,
        finished_at    TEXT,
        count_create   INTEGER NOT NULL DEFAULT 0,
        count_update   INTEGER NOT NULL DEFAULT 0,
        count_replace  INTEGER NOT NULL DEFAULT 0,
        count_delete   INTEGER NOT NULL DEFAULT 0,
        count_noop     INTEGER NOT NULL DEFAULT 0,
        count_failed   INTEGER NOT NULL DEFAULT 0,
        count_skipped  INTEGER NOT NULL DEFAULT 0,
        error          TEXT
      ) STRICT;
      -- history of one stack, newest first
      CREATE INDEX runs_by_stack ON runs (stack, id);
      -- runs to mark interrupted when a dead holder's lock is taken over
      CREATE INDEX runs_running ON runs (stack, actor_host, actor_pid) WHERE status = 'running';

      CREATE TABLE results (
        id           INTEGER PRIMARY KEY,
        run_id       INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        address      TEXT NOT NULL,
        action       TEXT NOT NULL CHECK (action IN ('create', 'update', 'replace', 'delete', 'noop')),
        status       TEXT NOT NULL CHECK (status IN ('succeeded', 'failed', 'skipped')),
        error        TEXT,
        duration_ms  INTEGER NOT NULL,
        finished_at  TEXT NOT NULL
      ) STRICT;
      CREATE INDEX results_by_run ON results (run_id);

      CREATE TABLE inventory (
        stack             TEXT NOT NULL REFERENCES stacks (name),
        address           TEXT NOT NULL,
        kind              TEXT NOT NULL,
        target            TEXT,
        target_kind       TEXT,
        target_spec       TEXT NOT NULL CHECK (json_valid(target_spec)),
        spec              TEXT NOT NULL CHECK (json_valid(spec)),
        spec_hash         TEXT NOT NULL,
        live_fingerprint  TEXT,
        depends_on        TEXT NOT NULL CHECK (json_valid(depends_on)),
        origin            TEXT NOT NULL CHECK (origin IN ('created', 'adopted')),
        updated_at        TEXT NOT NULL,
        last_run_id       INTEGER NOT NULL,
        PRIMARY KEY (stack, address)
      ) STRICT;

      CREATE TABLE events (
        id       INTEGER PRIMARY KEY,
        run_id   INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        at       TEXT NOT NULL,
        address  TEXT,
        type     TEXT NOT NULL,
        message  TEXT NOT NULL
      ) STRICT;
      CREATE INDEX events_by_run ON events (run_id);

      -- token: identifies one acquisition, so a stale handle never releases a later lock
      CREATE TABLE locks (
        stack        TEXT PRIMARY KEY,
        holder       TEXT NOT NULL CHECK (json_valid(holder)),
        token        TEXT NOT NULL,
        acquired_at  TEXT NOT NULL
      ) STRICT;
    `,
  },
  {
    version: 2,
    name: 'controller: api tokens, audit log, stack status, stack plans, webhook deliveries',
    sql: `
      -- token_hash: sha256 of the token; the token itself is shown once and never stored
      CREATE TABLE api_tokens (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        role        TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
        token_hash  TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        expires_at  TEXT,
        revoked_at  TEXT
      ) STRICT;

      CREATE TABLE audit_log (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        at       TEXT NOT NULL,
        actor    TEXT NOT NULL,
        role     TEXT,
        action   TEXT NOT NULL,
        target   TEXT,
        detail   TEXT NOT NULL CHECK (json_valid(detail)),
        ip       TEXT,
        outcome  TEXT NOT NULL
      ) STRICT;

      CREATE TABLE stack_status (
        stack                   TEXT PRIMARY KEY,
        status                  TEXT NOT NULL,
        head_commit             TEXT,
        last_applied_commit     TEXT,
        last_applied_spec_hash  TEXT,
        last_run_id             INTEGER,
        drifted                 INTEGER NOT NULL DEFAULT 0,
        error                   TEXT,
        rollback                TEXT CHECK (rollback IS NULL OR json_valid(rollback)),
        sync_requests           INTEGER NOT NULL DEFAULT 0,
        owner                   TEXT,
        updated_at              TEXT NOT NULL
      ) STRICT;

      -- the current plan of each stack (the one awaiting approval, under the approve policy)
      CREATE TABLE stack_plans (
        stack       TEXT PRIMARY KEY,
        id          TEXT NOT NULL,
        state       TEXT NOT NULL CHECK (state IN ('latest', 'pending', 'approved', 'applied', 'stale', 'superseded')),
        plan        TEXT NOT NULL CHECK (json_valid(plan)),
        text        TEXT NOT NULL,
        commit_sha  TEXT,
        spec_hash   TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        decided_by  TEXT,
        decided_at  TEXT
      ) STRICT;

      CREATE TABLE webhook_deliveries (
        source       TEXT NOT NULL,
        delivery_id  TEXT NOT NULL,
        received_at  TEXT NOT NULL,
        PRIMARY KEY (source, delivery_id)
      ) STRICT;
      CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (received_at);
    `,
  },
  {
    version: 3,
    name: 'pending refreshes of notified handlers',
    sql: `
      -- a notify: handler whose notifier changed, until the handler has reacted
      CREATE TABLE pending_refreshes (
        stack        TEXT NOT NULL REFERENCES stacks (name),
        address      TEXT NOT NULL,
        notified_by  TEXT NOT NULL,
        run_id       INTEGER NOT NULL REFERENCES runs (id),
        at           TEXT NOT NULL,
        PRIMARY KEY (stack, address, notified_by)
      ) STRICT;
    `,
  },
  {
    version: 4,
    name: 'paused stacks',
    sql: `
      -- { by, at } while an operator has paused the stack
      ALTER TABLE stack_status ADD COLUMN paused TEXT CHECK (paused IS NULL OR json_valid(paused));
    `,
  },
];

/**
 * Applies the migrations the database has not seen yet and returns their versions.
 * Throws when the database was written by a newer Capstan (a version it does not know).
 */
export function migrate(db: BetterSqlite3.Database, migrations: readonly Migration[] = MIGRATIONS): number[] {
  const run = db.transaction((): number[] => {
    db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version     INTEGER PRIMARY KEY,
      name        TEXT NOT NULL,
      applied_at  TEXT NOT NULL
    ) STRICT`);
    const applied = new Set(
      (db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map((r) => r.version),
    );
    const known = new Set(migrations.map((m) => m.version));
    const unknown = [...applied].filter((v) => !known.has(v));
    if (unknown.length > 0) {
      throw new Error(
        `the state database has schema version ${Math.max(...unknown)}, newer than this Capstan knows ` +
          `(${Math.max(0, ...known)}); upgrade Capstan to use it`,
      );
    }
    const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
    const done: number[] = [];
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (applied.has(m.version)) continue;
      db.exec(m.sql);
      record.run(m.version, m.name, new Date().toISOString());
      done.push(m.version);
    }
    return done;
  });
  return run.immediate();
}

/**
 * For a database opened read-only: throws unless every migration this Capstan
 * knows has been applied, and no newer one.
 */
export function checkSchemaCurrent(db: BetterSqlite3.Database, migrations: readonly Migration[] = MIGRATIONS): void {
  const hasTable = db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'").get() !== undefined;
  const applied = new Set(hasTable ? (db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map((r) => r.version) : []);
  const known = migrations.map((m) => m.version);
  const newest = Math.max(0, ...known);
  const newer = [...applied].filter((v) => !known.includes(v));
  if (newer.length > 0) {
    throw new Error(`the state database has schema version ${Math.max(...newer)}, newer than this Capstan knows (${newest}); upgrade Capstan to use it`);
  }
  if (known.some((v) => !applied.has(v))) {
    throw new Error(`the state database is at an older schema than this Capstan's (${newest}); run a command that writes (plan or apply) once to migrate it`);
  }
}

/** Row types, as Kysely sees the tables. JSON columns hold JSON text. */
export interface StateTables {
  stacks: StacksTable;
  runs: RunsTable;
  results: ResultsTable;
  inventory: InventoryTable;
  events: EventsTable;
  locks: LocksTable;
  schema_migrations: SchemaMigrationsTable;
  pending_refreshes: PendingRefreshesTable;
}

export interface PendingRefreshesTable {
  stack: string;
  address: string;
  notified_by: string;
  run_id: number;
  at: string;
}

export interface StacksTable {
  name: string;
  serial: number;
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
  count_create: number;
  count_update: number;
  count_replace: number;
  count_delete: number;
  count_noop: number;
  count_failed: number;
  count_skipped: number;
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
  target_spec: string;
  spec: string;
  spec_hash: string;
  live_fingerprint: string | null;
  depends_on: string;
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
  holder: string;
  token: string;
  acquired_at: string;
}

export interface SchemaMigrationsTable {
  version: number;
  name: string;
  applied_at: string;
}
