/**
 * The embedded state store: one SQLite file in WAL mode with `synchronous=FULL`,
 * so every write has reached the disk when its promise resolves.
 *
 * Two ways into the one connection:
 * - every write that spans several statements (lock, startRun, recordResults) is
 *   a synchronous better-sqlite3 transaction begun with `BEGIN IMMEDIATE`, using
 *   statements prepared once. Being synchronous, it cannot interleave with other
 *   calls on the event loop; being IMMEDIATE, it takes the write lock up front, so
 *   another process only waits (busy_timeout) and never fails half-way.
 * - reads and single-statement writes are single prepared statements too (no
 *   query builder: the store loads only better-sqlite3, and reading a large
 *   inventory stays one `all()`).
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import type { Selectable } from 'kysely';
import type { Address } from '../../spec/resource.js';
import {
  emptyCounts,
  pendingRefreshEdits,
  StackLockedError,
  type Actor,
  type EventRecord,
  type InventoryEntry,
  type LockHolder,
  type PendingRefresh,
  type ResourceResult,
  type RunCounts,
  type RunInput,
  type RunRecord,
  type RunStatus,
  type ControllerCapable,
  type ControllerStore,
  type StackLock,
  type Store,
} from '../store.js';
import { SqliteControllerStore } from './controller-store.js';
import { checkSchemaCurrent, migrate, type EventsTable, type InventoryTable, type PendingRefreshesTable, type ResultsTable, type RunsTable } from './migrations.js';

type RunRow = Selectable<RunsTable>;
type RunInsert = Pick<RunInput, 'stack' | 'kind' | 'commit' | 'author' | 'message' | 'specHash'> &
  Actor & { startedAt: string };
type Statements = ReturnType<typeof prepareStatements>;
/** A SQLite lock always has `setRunId`. */
export type SqliteStackLock = StackLock & Required<Pick<StackLock, 'setRunId'>>;
type InventoryContent = Omit<InventoryTable, 'stack' | 'updated_at' | 'last_run_id'>;

export class SqliteStore implements Store, ControllerCapable {
  readonly #db: BetterSqlite3.Database;
  readonly #sql: Statements;
  #controller: SqliteControllerStore | undefined;

  private constructor(db: BetterSqlite3.Database) {
    this.#db = db;
    this.#sql = prepareStatements(db);
  }

  /**
   * Opens (creating it and its parent directories if needed) and migrates the
   * database at `file`. What it creates is private to the user: missing
   * directories 0700, the database file 0600 (SQLite gives its `-wal` and
   * `-shm` files the database file's mode). An existing file keeps its mode.
   *
   * `readOnly`: for commands that only read (history, drift). Nothing is
   * created or migrated, and the database works on a read-only file, directory
   * or filesystem; a missing file reads as an empty store.
   */
  static async open(file: string, options: { readOnly?: boolean } = {}): Promise<SqliteStore> {
    if (options.readOnly && file !== ':memory:') return SqliteStore.#openReadOnly(file);
    let db: BetterSqlite3.Database | undefined;
    try {
      if (file !== ':memory:') await createPrivately(path.resolve(file));
      db = new BetterSqlite3(file);
      db.pragma('busy_timeout = 5000');
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      migrate(db);
      return new SqliteStore(db);
    } catch (err) {
      db?.close();
      throw new Error(`cannot open the state database ${file}: ${(err as Error).message}`, { cause: err });
    }
  }

  static async #openReadOnly(file: string): Promise<SqliteStore> {
    let db: BetterSqlite3.Database | undefined;
    try {
      if (!existsSync(file)) {
        db = new BetterSqlite3(':memory:');
        migrate(db);
        return new SqliteStore(db);
      }
      db = await idleWalCopy(file);
      if (db) {
        checkSchemaCurrent(db);
        return new SqliteStore(db);
      }
      try {
        db = new BetterSqlite3(file, { readonly: true, fileMustExist: true });
        db.pragma('busy_timeout = 5000');
        db.prepare('SELECT count(*) FROM sqlite_schema').get();
      } catch (err) {
        db?.close();
        db = undefined;
        // A WAL database on a read-only filesystem cannot be opened without its -shm file: read a copy.
        if ((err as { code?: unknown }).code !== 'SQLITE_CANTOPEN') throw err;
        db = await readOnlyCopy(file);
      }
      checkSchemaCurrent(db);
      return new SqliteStore(db);
    } catch (err) {
      db?.close();
      throw new Error(`cannot open the state database ${file} for reading: ${(err as Error).message}`, { cause: err });
    }
  }

  async lock(stack: string, actor: Actor): Promise<SqliteStackLock> {
    if (!Number.isInteger(actor.pid) || actor.pid <= 0) {
      throw new Error(`cannot lock stack "${stack}": actor pid ${actor.pid} is not a process id`);
    }
    const holder: LockHolder = { user: actor.user, host: actor.host, pid: actor.pid, since: now() };
    const token = randomUUID();
    this.#sql.lock.immediate(stack, holder, token);
    return new SqliteLock(this.#sql, stack, holder, token);
  }

  async startRun(input: RunInput): Promise<RunRecord> {
    return toRunRecord(this.#sql.startRun.immediate(input));
  }

  async recordResults(runId: number, results: readonly ResourceResult[]): Promise<void> {
    this.#sql.recordResults.immediate(runId, results);
  }

  async appendEvent(runId: number, event: { address: Address | null; type: string; message: string }): Promise<void> {
    try {
      this.#sql.insertEvent.run(runId, now(), event.address, event.type, event.message);
    } catch (err) {
      if ((err as { code?: unknown }).code === 'SQLITE_CONSTRAINT_FOREIGNKEY') throw unknownRun(runId, err);
      throw err;
    }
  }

  async finishRun(runId: number, status: Exclude<RunStatus, 'running'>, error: string | null = null): Promise<RunRecord> {
    const row = this.#sql.finishRun.get(status, now(), error, runId);
    if (!row) throw unknownRun(runId);
    return toRunRecord(row);
  }

  async getRun(runId: number): Promise<RunRecord | undefined> {
    const row = this.#sql.getRun.get(runId);
    return row && toRunRecord(row);
  }

  async listRuns(options: { stack?: string; limit?: number }): Promise<RunRecord[]> {
    const limit = options.limit === undefined ? -1 : Math.max(0, Math.floor(options.limit)); // LIMIT -1: no limit
    const rows = options.stack === undefined ? this.#sql.listRuns.all(limit) : this.#sql.listStackRuns.all(options.stack, limit);
    return rows.map(toRunRecord);
  }

  async hasApplied(stack: string, commit: string): Promise<boolean> {
    return this.#sql.hasApplied.get(stack, commit) !== undefined;
  }

  async listResults(runId: number): Promise<(ResourceResult & { finishedAt: string })[]> {
    const rows = this.#sql.listResults.all(runId);
    return rows.map((r) => ({
      address: r.address,
      action: r.action,
      status: r.status,
      error: r.error,
      durationMs: r.duration_ms,
      finishedAt: r.finished_at,
    }));
  }

  async listEvents(runId: number): Promise<EventRecord[]> {
    const rows = this.#sql.listEvents.all(runId);
    return rows.map((r) => ({ id: r.id, runId: r.run_id, at: r.at, address: r.address, type: r.type, message: r.message }));
  }

  /** The stack's inventory, sorted by address. */
  async pendingRefreshes(stack: string): Promise<PendingRefresh[]> {
    const rows = this.#sql.pendingRefreshes.all(stack);
    return rows.map((r) => ({ address: r.address, notifiedBy: r.notified_by, runId: r.run_id, at: r.at }));
  }

  async inventory(stack: string): Promise<InventoryEntry[]> {
    const rows = this.#sql.inventory.all(stack);
    return rows.map((r) => ({
      address: r.address,
      kind: r.kind,
      target: r.target,
      targetSpec: JSON.parse(r.target_spec) as unknown,
      targetKind: r.target_kind,
      spec: JSON.parse(r.spec) as unknown,
      specHash: r.spec_hash,
      liveFingerprint: r.live_fingerprint,
      dependsOn: JSON.parse(r.depends_on) as Address[],
      origin: r.origin,
      updatedAt: r.updated_at,
      lastRunId: r.last_run_id,
    }));
  }

  async serial(stack: string): Promise<number> {
    const row = this.#sql.serial.get(stack);
    return row?.serial ?? 0;
  }

  /** The controller's tables on the same connection. */
  controllerStore(): ControllerStore {
    this.#controller ??= new SqliteControllerStore(this.#db);
    return this.#controller;
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }
}

class SqliteLock implements SqliteStackLock {
  readonly #sql: Statements;
  readonly #token: string;
  #holder: LockHolder;

  constructor(
    sql: Statements,
    readonly stack: string,
    holder: LockHolder,
    token: string,
  ) {
    this.#sql = sql;
    this.#holder = holder;
    this.#token = token;
  }

  get holder(): LockHolder {
    return this.#holder;
  }

  async release(): Promise<void> {
    this.#sql.releaseLock.run(this.stack, this.#token);
  }

  async setRunId(runId: number): Promise<void> {
    const holder: LockHolder = { ...this.#holder, runId };
    if (this.#sql.updateHolder.run(JSON.stringify(holder), this.stack, this.#token).changes === 0) {
      throw new Error(`the lock on stack "${this.stack}" is no longer held by this process`);
    }
    this.#holder = holder;
  }
}

function prepareStatements(db: BetterSqlite3.Database) {
  const ensureStack = db.prepare('INSERT INTO stacks (name) VALUES (?) ON CONFLICT (name) DO NOTHING');
  const insertRun = db.prepare<RunInsert, RunRow>(
    `INSERT INTO runs (stack, kind, status, actor_user, actor_host, actor_pid, commit_sha, author, message, spec_hash, started_at)
     VALUES (@stack, @kind, 'running', @user, @host, @pid, @commit, @author, @message, @specHash, @startedAt)
     RETURNING *`,
  );
  const runStack = db.prepare<[number], { stack: string }>('SELECT stack FROM runs WHERE id = ?');
  const insertResult = db.prepare(
    `INSERT INTO results (run_id, address, action, status, error, duration_ms, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
  );
  const addCounts = db.prepare<RunCounts & { id: number }>(
    `UPDATE runs SET
       count_create = count_create + @create, count_update = count_update + @update,
       count_replace = count_replace + @replace, count_delete = count_delete + @delete,
       count_noop = count_noop + @noop, count_failed = count_failed + @failed, count_skipped = count_skipped + @skipped
     WHERE id = @id`,
  );
  const inventoryContent = db.prepare<[string, string], InventoryContent>(
    `SELECT address, kind, target, target_kind, target_spec, spec, spec_hash, live_fingerprint, depends_on, origin
     FROM inventory WHERE stack = ? AND address = ?`,
  );
  const upsertInventory = db.prepare<InventoryTable>(
    `INSERT INTO inventory (stack, address, kind, target, target_kind, target_spec, spec, spec_hash,
                            live_fingerprint, depends_on, origin, updated_at, last_run_id)
     VALUES (@stack, @address, @kind, @target, @target_kind, @target_spec, @spec, @spec_hash,
             @live_fingerprint, @depends_on, @origin, @updated_at, @last_run_id)
     ON CONFLICT (stack, address) DO UPDATE SET
       kind = excluded.kind, target = excluded.target, target_kind = excluded.target_kind,
       target_spec = excluded.target_spec, spec = excluded.spec, spec_hash = excluded.spec_hash,
       live_fingerprint = excluded.live_fingerprint, depends_on = excluded.depends_on, origin = excluded.origin,
       updated_at = excluded.updated_at, last_run_id = excluded.last_run_id`,
  );
  const deleteInventory = db.prepare('DELETE FROM inventory WHERE stack = ? AND address = ?');
  const addPendingRefresh = db.prepare(
    `INSERT INTO pending_refreshes (stack, address, notified_by, run_id, at) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (stack, address, notified_by) DO UPDATE SET run_id = excluded.run_id, at = excluded.at`,
  );
  const clearPendingRefreshes = db.prepare('DELETE FROM pending_refreshes WHERE stack = ? AND address = ?');
  const bumpSerial = db.prepare('UPDATE stacks SET serial = serial + 1 WHERE name = ?');
  const lockRow = db.prepare<[string], { holder: string }>('SELECT holder FROM locks WHERE stack = ?');
  const writeLock = db.prepare(
    `INSERT INTO locks (stack, holder, token, acquired_at) VALUES (?, ?, ?, ?)
     ON CONFLICT (stack) DO UPDATE SET holder = excluded.holder, token = excluded.token, acquired_at = excluded.acquired_at`,
  );
  const interruptRuns = db.prepare(
    `UPDATE runs SET status = 'interrupted', finished_at = ?, error = ?
     WHERE stack = ? AND actor_host = ? AND actor_pid = ? AND status = 'running'`,
  );
  const releaseLock = db.prepare('DELETE FROM locks WHERE stack = ? AND token = ?');
  const updateHolder = db.prepare('UPDATE locks SET holder = ? WHERE stack = ? AND token = ?');

  return {
    releaseLock,
    updateHolder,
    insertEvent: db.prepare<[number, string, string | null, string, string]>('INSERT INTO events (run_id, at, address, type, message) VALUES (?, ?, ?, ?, ?)'),
    finishRun: db.prepare<[string, string, string | null, number], RunRow>('UPDATE runs SET status = ?, finished_at = ?, error = ? WHERE id = ? RETURNING *'),
    getRun: db.prepare<[number], RunRow>('SELECT * FROM runs WHERE id = ?'),
    listRuns: db.prepare<[number], RunRow>('SELECT * FROM runs ORDER BY id DESC LIMIT ?'),
    listStackRuns: db.prepare<[string, number], RunRow>('SELECT * FROM runs WHERE stack = ? ORDER BY id DESC LIMIT ?'),
    listResults: db.prepare<[number], Selectable<ResultsTable>>('SELECT * FROM results WHERE run_id = ? ORDER BY id'),
    listEvents: db.prepare<[number], Selectable<EventsTable>>('SELECT * FROM events WHERE run_id = ? ORDER BY id'),
    pendingRefreshes: db.prepare<[string], PendingRefreshesTable>('SELECT * FROM pending_refreshes WHERE stack = ? ORDER BY address, notified_by'),
    inventory: db.prepare<[string], InventoryTable>('SELECT * FROM inventory WHERE stack = ? ORDER BY address'),
    serial: db.prepare<[string], { serial: number }>('SELECT serial FROM stacks WHERE name = ?'),
    hasApplied: db.prepare<[string, string], { id: number }>(
      "SELECT id FROM runs WHERE stack = ? AND kind = 'apply' AND status = 'succeeded' AND commit_sha = ? LIMIT 1",
    ),

    lock: db.transaction((stack: string, holder: LockHolder, token: string): void => {
      const row = lockRow.get(stack);
      if (row) {
        const current = JSON.parse(row.holder) as LockHolder;
        if (current.host !== os.hostname() || isProcessAlive(current.pid)) throw new StackLockedError(stack, current);
        interruptRuns.run(holder.since, `process ${current.pid} ended without finishing the run`, stack, current.host, current.pid);
      }
      writeLock.run(stack, JSON.stringify(holder), token, holder.since);
    }),

    startRun: db.transaction((input: RunInput): RunRow => {
      ensureStack.run(input.stack);
      const row = insertRun.get({
        stack: input.stack,
        kind: input.kind,
        user: input.actor.user,
        host: input.actor.host,
        pid: input.actor.pid,
        commit: input.commit,
        author: input.author,
        message: input.message,
        specHash: input.specHash,
        startedAt: now(),
      });
      if (!row) throw new Error('INSERT ... RETURNING returned no row');
      return row;
    }),

    recordResults: db.transaction((runId: number, results: readonly ResourceResult[]): void => {
      const run = runStack.get(runId);
      if (!run) throw unknownRun(runId);
      const at = now();
      const counts = emptyCounts();
      let inventoryChanged = false;
      for (const result of results) {
        insertResult.run(runId, result.address, result.action, result.status, result.error, Math.round(result.durationMs), at);
        counts[result.status === 'succeeded' ? result.action : result.status] += 1;
        if (result.inventory === null) {
          if (deleteInventory.run(run.stack, result.address).changes > 0) inventoryChanged = true;
        } else if (result.inventory !== undefined) {
          if (result.inventory.address !== result.address) {
            throw new Error(`the result for ${result.address} carries the inventory entry of ${result.inventory.address}`);
          }
          const row = toInventoryRow(run.stack, result.inventory, at, runId);
          if (!inventoryChanged) {
            const before = inventoryContent.get(run.stack, row.address);
            if (!before || !sameContent(before, row)) inventoryChanged = true;
          }
          upsertInventory.run(row);
        }
      }
      const refreshes = pendingRefreshEdits(results);
      for (const address of refreshes.clear) clearPendingRefreshes.run(run.stack, address);
      for (const p of refreshes.add) addPendingRefresh.run(run.stack, p.address, p.notifiedBy, runId, at);
      if (inventoryChanged) bumpSerial.run(run.stack);
      addCounts.run({ ...counts, id: runId });
    }),
  };
}

function toInventoryRow(
  stack: string,
  entry: Omit<InventoryEntry, 'updatedAt' | 'lastRunId'>,
  at: string,
  runId: number,
): InventoryTable {
  return {
    stack,
    address: entry.address,
    kind: entry.kind,
    target: entry.target,
    target_kind: entry.targetKind,
    target_spec: JSON.stringify(entry.targetSpec ?? null),
    spec: JSON.stringify(entry.spec ?? null),
    spec_hash: entry.specHash,
    live_fingerprint: entry.liveFingerprint,
    depends_on: JSON.stringify(entry.dependsOn),
    origin: entry.origin,
    updated_at: at,
    last_run_id: runId,
  };
}

/** Whether an upsert leaves what the inventory says unchanged (only the bookkeeping columns move). */
function sameContent(before: InventoryContent, after: InventoryTable): boolean {
  return (
    before.kind === after.kind &&
    before.target === after.target &&
    before.target_kind === after.target_kind &&
    before.target_spec === after.target_spec &&
    before.spec === after.spec &&
    before.spec_hash === after.spec_hash &&
    before.live_fingerprint === after.live_fingerprint &&
    before.depends_on === after.depends_on &&
    before.origin === after.origin
  );
}

function toRunRecord(row: RunRow): RunRecord {
  return {
    id: row.id,
    stack: row.stack,
    kind: row.kind,
    actor: { user: row.actor_user, host: row.actor_host, pid: row.actor_pid },
    commit: row.commit_sha,
    author: row.author,
    message: row.message,
    specHash: row.spec_hash,
    status: row.status,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    counts: {
      create: row.count_create,
      update: row.count_update,
      replace: row.count_replace,
      delete: row.count_delete,
      noop: row.count_noop,
      failed: row.count_failed,
      skipped: row.count_skipped,
    },
    error: row.error,
  };
}

/** Only a process proven gone (ESRCH) is dead; one we may not signal (EPERM) is alive. */
function isProcessAlive(pid: number): boolean {
  // 0 and negative numbers address process groups, never one process.
  if (!Number.isInteger(pid) || pid <= 0) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/**
 * Creates the database file's missing parent directories (0700) and the file
 * itself (0600) before SQLite does, so neither is ever readable by others.
 */
async function createPrivately(file: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  // O_CREAT without O_TRUNC: an existing database is left as it is.
  const handle = await open(file, 'a', 0o600);
  await handle.close();
}

/**
 * An in-memory copy of a WAL-mode database that cannot be opened in place
 * (read-only filesystem, no `-shm`). Refused when a `-wal` file holds frames the
 * copy would miss.
 */
async function readOnlyCopy(file: string): Promise<BetterSqlite3.Database> {
  const wal = await stat(`${file}-wal`).catch(() => undefined);
  if (wal && wal.size > 0) throw new Error(`it cannot be opened in place and ${file}-wal holds changes not yet in the database file`);
  return inMemoryCopy(await readFile(file));
}

/**
 * A WAL-mode database that no connection has open (no `-wal` beside it), read
 * into memory: opened in place, a reader would leave `-wal` and `-shm` files
 * behind that only a writer removes, and read-only commands create nothing.
 * Undefined (open it in place) when a writer is about (a `-wal` exists, or the
 * file changed while it was read) or the database is not in WAL mode.
 */
async function idleWalCopy(file: string): Promise<BetterSqlite3.Database | undefined> {
  const wal = `${file}-wal`;
  if (existsSync(wal)) return undefined;
  const before = await stat(file);
  const bytes = await readFile(file);
  const after = await stat(file);
  if (existsSync(wal) || before.mtimeMs !== after.mtimeMs || before.size !== after.size || !isWalHeader(bytes)) return undefined;
  return inMemoryCopy(bytes);
}

/** Bytes 18 and 19 of the header say WAL (2) or rollback journal (1). */
function isWalHeader(bytes: Buffer): boolean {
  return bytes.length >= 20 && bytes[18] === 2 && bytes[19] === 2;
}

function inMemoryCopy(bytes: Buffer): BetterSqlite3.Database {
  // An in-memory database reads only the rollback journal format.
  if (isWalHeader(bytes)) bytes[18] = bytes[19] = 1;
  return new BetterSqlite3(bytes, { readonly: true });
}

function unknownRun(runId: number, cause?: unknown): Error {
  return new Error(`run ${runId} does not exist`, cause === undefined ? undefined : { cause });
}

function now(): string {
  return new Date().toISOString();
}
