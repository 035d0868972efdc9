/**
 * The state store on PostgreSQL, for controllers that run as several replicas.
 * Same contract and semantics as the SQLite store (`../sqlite/sqlite-store.ts`):
 * both pass `../testing/store-suite.ts`.
 *
 * URL: `postgres://` or `postgresql://` as libpq/node-postgres read it, plus an
 * optional `?schema=NAME`: the store then lives in that schema (created if
 * missing), every connection getting `search_path=NAME`.
 *
 * Writes that span several statements (startRun, recordResults, taking a lock
 * over) are one transaction each. `recordResults` costs a fixed number of round
 * trips whatever the number of results: results and inventory rows travel as
 * JSON arrays, written with `jsonb_to_recordset`. It serialises on the stack's row
 * (`FOR NO KEY UPDATE`), so two writers of one stack cannot interleave their
 * inventory writes, and the serial moves once per call that changed
 * what the inventory says. JSON columns are jsonb, so "changed" compares JSON
 * values, not their text (key order does not count; in SQLite it does).
 *
 * Locks. One writer per stack is a session-level advisory lock,
 * `pg_try_advisory_lock(hashtextextended('capstan:SCHEMA:STACK', 0))`, taken on
 * a connection dedicated to the lock for its lifetime, plus a `locks` row naming
 * the holder so a refused locker can say who it is. The database, not a pid,
 * decides liveness: when the holder's session ends (its process killed, its host
 * gone, its connection cut) PostgreSQL drops the advisory lock, the next `lock`
 * gets it, finds the old row, and marks the old holder's runs of that stack
 * still running as interrupted. The lock's `signal` aborts when its connection
 * is lost, so a holder learns it may no longer write; `setRunId` then throws.
 * A controller holds one such lock per stack it owns: that is its lease, handed
 * over as soon as the replica's session ends.
 *
 * `controllerStore()` gives the controller's own tables (`./controller-store.ts`).
 *
 * Limits worth knowing: PostgreSQL text and jsonb cannot hold U+0000, so a spec
 * or an error message containing it is refused; a stack lock costs one
 * connection for as long as it is held.
 */
import { randomUUID } from 'node:crypto';
import { Kysely, PostgresDialect, sql, type Selectable, type Transaction } from 'kysely';
import pg from 'pg';
import type { Address } from '../../spec/resource.js';
import {
  emptyCounts,
  pendingRefreshEdits,
  StackLockedError,
  type Actor,
  type ControllerCapable,
  type ControllerStore,
  type EventRecord,
  type InventoryEntry,
  type LockHolder,
  type PendingRefresh,
  type ResourceResult,
  type RunInput,
  type RunRecord,
  type RunStatus,
  type StackLock,
  type Store,
} from '../store.js';
import { PostgresControllerStore } from './controller-store.js';
import { migrate, SCHEMA_NAME, type RunsTable, type StateTables } from './migrations.js';
import { describeStateUrl } from '../state-url.js';

type RunRow = Selectable<RunsTable>;

/** A PostgreSQL lock always has `setRunId`, and says when it is lost. */
export interface PostgresStackLock extends StackLock {
  setRunId(runId: number): Promise<void>;
  /**
   * Aborts when this acquisition no longer holds the lock: released, or its
   * connection lost (then another replica may take the stack over at once).
   */
  readonly signal: AbortSignal;
}

export interface PostgresStoreOptions {
  /** Connections for queries (locks have their own). Default 10. */
  readonly poolSize?: number;
  /** How long to wait for a connection before failing. Default 10 s. */
  readonly connectTimeoutMs?: number;
}

const RESULT_ACTIONS: ReadonlySet<string> = new Set(['create', 'update', 'replace', 'delete', 'noop']);
const RESULT_STATUSES: ReadonlySet<string> = new Set(['succeeded', 'failed', 'skipped']);
const ORIGINS: ReadonlySet<string> = new Set(['created', 'adopted']);

/**
 * How long a refused `lock` waits for the holder's row to appear (the holder is
 * between taking the advisory lock and recording itself, or between removing its
 * row and unlocking) before it reports an unknown holder.
 */
const HOLDER_SETTLE_MS = 2_000;

export class PostgresStore implements Store, ControllerCapable {
  readonly #db: Kysely<StateTables>;
  readonly #lockPool: pg.Pool;
  /** Prefix of advisory-lock keys: one keyspace per schema (advisory locks are per database). */
  readonly #lockNamespace: string;
  readonly #held = new Set<PostgresLock>();
  #controller: PostgresControllerStore | undefined;
  #closed = false;

  private constructor(pool: pg.Pool, lockPool: pg.Pool, schema: string) {
    this.#db = new Kysely<StateTables>({ dialect: new PostgresDialect({ pool }) });
    this.#lockPool = lockPool;
    this.#lockNamespace = `capstan:${schema}:`;
  }

  /** Connects, creates the `?schema=` if it is missing, and migrates. Errors name the URL without credentials. */
  static async open(url: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
    let pool: pg.Pool | undefined;
    let lockPool: pg.Pool | undefined;
    try {
      const { connectionString, schema, serverOptions } = parseStateUrl(url);
      const common: pg.PoolConfig = {
        connectionString,
        types: { getTypeParser },
        connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
        keepAlive: true,
        application_name: 'capstan',
      };
      pool = new pg.Pool({ ...common, max: options.poolSize ?? 10, options: serverOptions || undefined });
      // Lock sessions must notice a vanished peer within seconds, not after the kernel's two hours.
      const keepalives = '-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3';
      lockPool = new pg.Pool({ ...common, max: 10_000, idleTimeoutMillis: 10_000, options: `${serverOptions} ${keepalives}`.trim() });
      // An idle connection that the server closes emits 'error' on its pool: the pool drops it, we carry on.
      pool.on('error', () => undefined);
      lockPool.on('error', () => undefined);
      // A client checked out of the pool (Kysely holds one for each query or
      // transaction) has no 'error' listener of the pool's: a backend killed
      // mid-query makes it emit 'error' besides failing the query, which would
      // crash the process. The failed query is what callers see; the pool
      // drops the broken client when it is released.
      pool.on('connect', (client) => client.on('error', ignoreLostConnection));
      lockPool.on('connect', (client) => client.on('error', ignoreLostConnection));
      await migrate(pool, schema);
      const current = await pool.query<{ schema: string | null }>('SELECT current_schema() AS schema');
      const resolved = current.rows[0]?.schema;
      if (!resolved) throw new Error('no schema to work in (search_path names none that exists)');
      return new PostgresStore(pool, lockPool, resolved);
    } catch (err) {
      await Promise.allSettled([pool?.end(), lockPool?.end()]);
      throw new Error(`cannot open the state database ${describeStateUrl(url)}: ${(err as Error).message}`, { cause: err });
    }
  }

  async lock(stack: string, actor: Actor): Promise<PostgresStackLock> {
    if (!Number.isInteger(actor.pid) || actor.pid <= 0) {
      throw new Error(`cannot lock stack "${stack}": actor pid ${actor.pid} is not a process id`);
    }
    if (this.#closed) throw new Error(`cannot lock stack "${stack}": the store is closed`);
    const key = this.#lockNamespace + stack;
    const deadline = Date.now() + HOLDER_SETTLE_MS;
    for (;;) {
      const client = await this.#lockPool.connect();
      // A checked-out client has no 'error' listener: one that lost its connection would crash the process.
      client.on('error', ignoreError);
      let locked: boolean;
      try {
        const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS locked', [key]);
        locked = rows[0]?.locked === true;
      } catch (err) {
        client.release(true);
        throw err;
      }
      if (locked) {
        const holder: LockHolder = { user: actor.user, host: actor.host, pid: actor.pid, since: now() };
        const token = randomUUID();
        try {
          await takeOver(client, stack, holder, token);
        } catch (err) {
          // Ending the session is what surely drops its advisory lock.
          client.release(true);
          throw err;
        }
        const lock = new PostgresLock(client, stack, holder, token, key, this.#db, (l) => this.#held.delete(l));
        this.#held.add(lock);
        return lock;
      }
      client.off('error', ignoreError);
      client.release();
      const row = await this.#db.selectFrom('locks').select('holder').where('stack', '=', stack).executeTakeFirst();
      if (row) throw new StackLockedError(stack, row.holder as LockHolder);
      if (Date.now() >= deadline) {
        throw new StackLockedError(stack, { user: '(unknown)', host: '(unknown)', pid: 0, since: now() });
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async startRun(input: RunInput): Promise<RunRecord> {
    return this.#db.transaction().execute(async (trx) => {
      await trx
        .insertInto('stacks')
        .values({ name: input.stack })
        .onConflict((oc) => oc.column('name').doNothing())
        .execute();
      const row = await trx
        .insertInto('runs')
        .values({
          stack: input.stack,
          kind: input.kind,
          status: 'running',
          actor_user: input.actor.user,
          actor_host: input.actor.host,
          actor_pid: input.actor.pid,
          commit_sha: input.commit,
          author: input.author,
          message: input.message,
          spec_hash: input.specHash,
          started_at: now(),
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return toRunRecord(row);
    });
  }

  async recordResults(runId: number, results: readonly ResourceResult[]): Promise<void> {
    for (const result of results) checkResult(result);
    await this.#db.transaction().execute((trx) => writeResults(trx, runId, results));
  }

  async appendEvent(runId: number, event: { address: Address | null; type: string; message: string }): Promise<void> {
    try {
      await this.#db
        .insertInto('events')
        .values({ run_id: runId, at: now(), address: event.address, type: event.type, message: event.message })
        .execute();
    } catch (err) {
      if ((err as { code?: unknown }).code === '23503') throw unknownRun(runId, err);
      throw err;
    }
  }

  async finishRun(runId: number, status: Exclude<RunStatus, 'running'>, error: string | null = null): Promise<RunRecord> {
    const row = await this.#db
      .updateTable('runs')
      .set({ status, finished_at: now(), error })
      .where('id', '=', runId)
      .returningAll()
      .executeTakeFirst();
    if (!row) throw unknownRun(runId);
    return toRunRecord(row);
  }

  async getRun(runId: number): Promise<RunRecord | undefined> {
    const row = await this.#db.selectFrom('runs').selectAll().where('id', '=', runId).executeTakeFirst();
    return row && toRunRecord(row);
  }

  async listRuns(options: { stack?: string; limit?: number }): Promise<RunRecord[]> {
    let query = this.#db.selectFrom('runs').selectAll().orderBy('id', 'desc');
    if (options.stack !== undefined) query = query.where('stack', '=', options.stack);
    if (options.limit !== undefined) query = query.limit(Math.max(0, Math.floor(options.limit)));
    return (await query.execute()).map(toRunRecord);
  }

  async hasApplied(stack: string, commit: string): Promise<boolean> {
    const row = await this.#db
      .selectFrom('runs')
      .select('id')
      .where('stack', '=', stack)
      .where('kind', '=', 'apply')
      .where('status', '=', 'succeeded')
      .where('commit_sha', '=', commit)
      .limit(1)
      .executeTakeFirst();
    return row !== undefined;
  }

  async listResults(runId: number): Promise<(ResourceResult & { finishedAt: string })[]> {
    const rows = await this.#db.selectFrom('results').selectAll().where('run_id', '=', runId).orderBy('id').execute();
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
    const rows = await this.#db.selectFrom('events').selectAll().where('run_id', '=', runId).orderBy('id').execute();
    return rows.map((r) => ({ id: r.id, runId: r.run_id, at: r.at, address: r.address, type: r.type, message: r.message }));
  }

  /** The stack's inventory, sorted by address (bytewise). */
  async inventory(stack: string): Promise<InventoryEntry[]> {
    const rows = await this.#db.selectFrom('inventory').selectAll().where('stack', '=', stack).orderBy('address').execute();
    return rows.map((r) => ({
      address: r.address,
      kind: r.kind,
      target: r.target,
      targetSpec: r.target_spec,
      targetKind: r.target_kind,
      spec: r.spec,
      specHash: r.spec_hash,
      liveFingerprint: r.live_fingerprint,
      dependsOn: r.depends_on as Address[],
      origin: r.origin,
      updatedAt: r.updated_at,
      lastRunId: r.last_run_id,
    }));
  }

  async pendingRefreshes(stack: string): Promise<PendingRefresh[]> {
    const rows = await this.#db
      .selectFrom('pending_refreshes')
      .selectAll()
      .where('stack', '=', stack)
      .orderBy('address')
      .orderBy('notified_by')
      .execute();
    return rows.map((r) => ({ address: r.address, notifiedBy: r.notified_by, runId: Number(r.run_id), at: r.at }));
  }

  async serial(stack: string): Promise<number> {
    const row = await this.#db.selectFrom('stacks').select('serial').where('name', '=', stack).executeTakeFirst();
    return row?.serial ?? 0;
  }

  /** The controller's tables (tokens, audit, stack status, plans, webhook deliveries), shared by the replicas. */
  controllerStore(): ControllerStore {
    this.#controller ??= new PostgresControllerStore(this.#db);
    return this.#controller;
  }

  /**
   * Closes every connection. Locks still held are not released but abandoned, as
   * by a process that ended: the advisory locks are dropped, the rows stay, and the
   * next `lock` of each stack takes it over and marks this holder's runs still
   * running as interrupted.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.#held].map((lock) => lock.abandon()));
    await Promise.all([this.#lockPool.end(), this.#db.destroy()]);
  }
}

class PostgresLock implements PostgresStackLock {
  #client: pg.PoolClient | undefined;
  #holder: LockHolder;
  readonly #token: string;
  readonly #key: string;
  readonly #db: Kysely<StateTables>;
  readonly #onDone: (lock: PostgresLock) => void;
  readonly #aborter = new AbortController();
  readonly #onLost = (): void => this.#aborter.abort(new Error(`the connection holding the lock on stack "${this.stack}" was lost`));

  constructor(
    client: pg.PoolClient,
    readonly stack: string,
    holder: LockHolder,
    token: string,
    key: string,
    db: Kysely<StateTables>,
    onDone: (lock: PostgresLock) => void,
  ) {
    this.#client = client;
    this.#holder = holder;
    this.#token = token;
    this.#key = key;
    this.#db = db;
    this.#onDone = onDone;
    client.on('error', this.#onLost);
    client.on('end', this.#onLost);
  }

  get holder(): LockHolder {
    return this.#holder;
  }

  get signal(): AbortSignal {
    return this.#aborter.signal;
  }

  async setRunId(runId: number): Promise<void> {
    const client = this.#client;
    if (client === undefined || this.signal.aborted) throw this.#notHeld();
    const holder: LockHolder = { ...this.#holder, runId };
    let updated: number | null;
    try {
      // On the lock's own session: if that query succeeds, the session (and so the advisory lock) is alive.
      updated = (
        await client.query('UPDATE locks SET holder = $1 WHERE stack = $2 AND token = $3', [JSON.stringify(holder), this.stack, this.#token])
      ).rowCount;
    } catch (err) {
      throw this.#notHeld(err);
    }
    if (updated !== 1) throw this.#notHeld();
    this.#holder = holder;
  }

  async release(): Promise<void> {
    const client = this.#detach();
    if (client === undefined) return;
    try {
      // The row goes first: whoever gets the advisory lock next must not find it and take this holder for dead.
      await client.query('DELETE FROM locks WHERE stack = $1 AND token = $2', [this.stack, this.#token]);
      await client.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [this.#key]);
      client.off('error', this.#onLost);
      client.off('error', ignoreError);
      client.off('end', this.#onLost);
      client.release();
    } catch {
      // The session is broken: ending it drops the advisory lock; the row is removed from another connection.
      client.release(true);
      await this.#db.deleteFrom('locks').where('stack', '=', this.stack).where('token', '=', this.#token).execute();
    } finally {
      this.#aborter.abort(new Error(`the lock on stack "${this.stack}" was released`));
    }
  }

  /**
   * Gives the advisory lock up but leaves the row, as a killed process would, and
   * ends the session. Unlocking explicitly (rather than only closing the
   * connection) means the stack is free when this resolves, not a moment later
   * when the server has noticed the connection closed.
   */
  async abandon(): Promise<void> {
    const client = this.#detach();
    if (client === undefined) return;
    this.#aborter.abort(new Error(`the lock on stack "${this.stack}" was abandoned: its store was closed`));
    try {
      await client.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [this.#key]);
    } catch {
      // The connection is gone already, and the advisory lock with it.
    } finally {
      client.release(true);
    }
  }

  /** Makes this handle forget its client. A destroyed client keeps its 'error' listeners: it may still emit. */
  #detach(): pg.PoolClient | undefined {
    const client = this.#client;
    if (client === undefined) return undefined;
    this.#client = undefined;
    this.#onDone(this);
    return client;
  }

  #notHeld(cause?: unknown): Error {
    return new Error(`the lock on stack "${this.stack}" is no longer held by this process`, cause === undefined ? undefined : { cause });
  }
}

/**
 * Records this holder in the stack's `locks` row, in one transaction on the lock's
 * session, which holds the advisory lock. A row already there was left by a
 * session that ended without releasing: that holder's runs of this stack still
 * running are marked interrupted.
 */
async function takeOver(client: pg.PoolClient, stack: string, holder: LockHolder, token: string): Promise<void> {
  await client.query('BEGIN');
  try {
    const { rows } = await client.query<{ holder: LockHolder }>('SELECT holder FROM locks WHERE stack = $1 FOR UPDATE', [stack]);
    const previous = rows[0]?.holder;
    if (previous !== undefined) {
      await client.query(
        `UPDATE runs SET status = 'interrupted', finished_at = $1, error = $2
         WHERE stack = $3 AND actor_host = $4 AND actor_pid = $5 AND status = 'running'`,
        [holder.since, `process ${previous.pid} ended without finishing the run`, stack, previous.host, previous.pid],
      );
    }
    await client.query(
      `INSERT INTO locks (stack, holder, token, acquired_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (stack) DO UPDATE SET holder = excluded.holder, token = excluded.token, acquired_at = excluded.acquired_at`,
      [stack, JSON.stringify(holder), token, holder.since],
    );
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** An inventory entry as `recordResults` sends it: one element of a JSON array, named as the columns. */
interface InventoryWrite {
  readonly address: string;
  readonly kind: string;
  readonly target: string | null;
  readonly target_kind: string | null;
  readonly target_spec: unknown;
  readonly spec: unknown;
  readonly spec_hash: string;
  readonly live_fingerprint: string | null;
  readonly depends_on: readonly string[];
  readonly origin: string;
}

/**
 * The body of `recordResults`, inside its transaction. Rows travel as one JSON
 * array per statement (`jsonb_to_recordset`): a single native JSON.stringify,
 * where node-postgres' escaping of text arrays costs more than the database's
 * work. The results are inserted in one statement, in order. The inventory edits
 * are written in segments in which no address repeats (one segment, unless a call
 * edits an address twice), segment after segment, so the outcome, and whether
 * anything changed, is that of applying the edits one by one.
 */
async function writeResults(trx: Transaction<StateTables>, runId: number, results: readonly ResourceResult[]): Promise<void> {
  const run = (
    await sql<{ stack: string }>`
      SELECT s.name AS stack FROM runs r JOIN stacks s ON s.name = r.stack
      WHERE r.id = ${runId} FOR NO KEY UPDATE OF s`.execute(trx)
  ).rows[0];
  if (!run) throw unknownRun(runId);
  if (results.length === 0) return;
  const at = now();

  const rows = JSON.stringify(
    results.map((r) => ({ address: r.address, action: r.action, status: r.status, error: r.error, duration_ms: Math.round(r.durationMs) })),
  );
  await sql`
    INSERT INTO results (run_id, address, action, status, error, duration_ms, finished_at)
    SELECT ${runId}::bigint, r.address, r.action, r.status, r.error, r.duration_ms, ${at}::timestamptz
    FROM ROWS FROM (jsonb_to_recordset(${rows}::jsonb) AS (address text, action text, status text, error text, duration_ms bigint))
         WITH ORDINALITY AS r (address, action, status, error, duration_ms, ord)
    ORDER BY r.ord`.execute(trx);

  await writePendingRefreshes(trx, run.stack, runId, at, results);

  const segments: Map<string, InventoryWrite | null>[] = [new Map()];
  for (const result of results) {
    if (result.inventory === undefined) continue;
    let segment = segments[segments.length - 1]!;
    if (segment.has(result.address)) segments.push((segment = new Map()));
    segment.set(result.address, result.inventory === null ? null : toInventoryWrite(result.inventory));
  }
  let inventoryChanged = false;
  for (const segment of segments) {
    if (await writeInventory(trx, run.stack, runId, at, segment)) inventoryChanged = true;
  }
  if (inventoryChanged) {
    await trx
      .updateTable('stacks')
      .set((eb) => ({ serial: eb('serial', '+', 1) }))
      .where('name', '=', run.stack)
      .execute();
  }

  const counts = emptyCounts();
  for (const result of results) counts[result.status === 'succeeded' ? result.action : result.status] += 1;
  await trx
    .updateTable('runs')
    .set((eb) => ({
      count_create: eb('count_create', '+', counts.create),
      count_update: eb('count_update', '+', counts.update),
      count_replace: eb('count_replace', '+', counts.replace),
      count_delete: eb('count_delete', '+', counts.delete),
      count_noop: eb('count_noop', '+', counts.noop),
      count_failed: eb('count_failed', '+', counts.failed),
      count_skipped: eb('count_skipped', '+', counts.skipped),
    }))
    .where('id', '=', runId)
    .execute();
}

/** The batch's effect on the pending refreshes (see `pendingRefreshEdits`): at most two statements. */
async function writePendingRefreshes(
  trx: Transaction<StateTables>,
  stack: string,
  runId: number,
  at: string,
  results: readonly ResourceResult[],
): Promise<void> {
  const { clear, add } = pendingRefreshEdits(results);
  if (clear.length > 0) await trx.deleteFrom('pending_refreshes').where('stack', '=', stack).where('address', 'in', clear).execute();
  if (add.length === 0) return;
  await trx
    .insertInto('pending_refreshes')
    .values(add.map((p) => ({ stack, address: p.address, notified_by: p.notifiedBy, run_id: runId, at })))
    .onConflict((oc) => oc.columns(['stack', 'address', 'notified_by']).doUpdateSet((eb) => ({ run_id: eb.ref('excluded.run_id'), at: eb.ref('excluded.at') })))
    .execute();
}

/**
 * Applies edits of distinct addresses (null: remove) and says whether what the
 * inventory says changed. An upsert always moves `updated_at` and `last_run_id`;
 * it counts as a change when the row is new or any other column differs (jsonb
 * compared as values), which the statement decides against the rows as they were
 * before it (every part of one statement sees the same snapshot).
 */
async function writeInventory(
  trx: Transaction<StateTables>,
  stack: string,
  runId: number,
  at: string,
  edits: ReadonlyMap<string, InventoryWrite | null>,
): Promise<boolean> {
  let changed = false;
  const removed = [...edits].filter(([, w]) => w === null).map(([address]) => address);
  if (removed.length > 0) {
    const { rows } = await sql<{ n: number }>`
      WITH gone AS (DELETE FROM inventory WHERE stack = ${stack} AND address = ANY(${removed}::text[]) RETURNING 1)
      SELECT count(*)::int AS n FROM gone`.execute(trx);
    if ((rows[0]?.n ?? 0) > 0) changed = true;
  }
  const written = [...edits.values()].filter((w): w is InventoryWrite => w !== null);
  if (written.length > 0) {
    // A JSON null in a jsonb column of the record set comes out as SQL NULL: stored as JSON null, as given.
    const { rows } = await sql<{ n: number }>`
      WITH u AS MATERIALIZED (
        SELECT address, kind, target, target_kind, coalesce(target_spec, 'null') AS target_spec, coalesce(spec, 'null') AS spec,
               spec_hash, live_fingerprint, depends_on, origin
        FROM jsonb_to_recordset(${JSON.stringify(written)}::jsonb)
             AS t (address text, kind text, target text, target_kind text, target_spec jsonb, spec jsonb, spec_hash text,
                   live_fingerprint text, depends_on jsonb, origin text)
      ),
      upserted AS (
        INSERT INTO inventory (stack, address, kind, target, target_kind, target_spec, spec, spec_hash,
                               live_fingerprint, depends_on, origin, updated_at, last_run_id)
        SELECT ${stack}::text, address, kind, target, target_kind, target_spec, spec, spec_hash,
               live_fingerprint, depends_on, origin, ${at}::timestamptz, ${runId}::bigint
        FROM u
        ON CONFLICT (stack, address) DO UPDATE SET
          kind = excluded.kind, target = excluded.target, target_kind = excluded.target_kind,
          target_spec = excluded.target_spec, spec = excluded.spec, spec_hash = excluded.spec_hash,
          live_fingerprint = excluded.live_fingerprint, depends_on = excluded.depends_on, origin = excluded.origin,
          updated_at = excluded.updated_at, last_run_id = excluded.last_run_id
      )
      SELECT count(*)::int AS n
      FROM u LEFT JOIN inventory i ON i.stack = ${stack} AND i.address = u.address
      WHERE i.address IS NULL
         OR (i.kind, i.target, i.target_kind, i.target_spec, i.spec, i.spec_hash, i.live_fingerprint, i.depends_on, i.origin)
            IS DISTINCT FROM
            (u.kind, u.target, u.target_kind, u.target_spec, u.spec, u.spec_hash, u.live_fingerprint, u.depends_on, u.origin)`.execute(trx);
    if ((rows[0]?.n ?? 0) > 0) changed = true;
  }
  return changed;
}

function toInventoryWrite(entry: Omit<InventoryEntry, 'updatedAt' | 'lastRunId'>): InventoryWrite {
  return {
    address: entry.address,
    kind: entry.kind,
    target: entry.target,
    target_kind: entry.targetKind,
    target_spec: entry.targetSpec ?? null,
    spec: entry.spec ?? null,
    spec_hash: entry.specHash,
    live_fingerprint: entry.liveFingerprint,
    depends_on: entry.dependsOn,
    origin: entry.origin,
  };
}

/** Refuses a result the schema would refuse, before anything is written, naming the result. */
function checkResult(result: ResourceResult): void {
  const what = `the result for ${String(result.address)}`;
  if (typeof result.address !== 'string' || result.address === '') throw new Error('a result has no address');
  if (!RESULT_ACTIONS.has(result.action)) throw new Error(`${what} has an unknown action "${String(result.action)}"`);
  if (!RESULT_STATUSES.has(result.status)) throw new Error(`${what} has an unknown status "${String(result.status)}"`);
  if (result.error !== null && typeof result.error !== 'string') throw new Error(`${what} has an error that is not text`);
  if (typeof result.durationMs !== 'number' || !Number.isFinite(result.durationMs)) {
    throw new Error(`${what} has a duration that is not a number of milliseconds`);
  }
  const entry = result.inventory;
  if (entry === undefined || entry === null) return;
  if (entry.address !== result.address) {
    throw new Error(`the result for ${result.address} carries the inventory entry of ${entry.address}`);
  }
  if (typeof entry.kind !== 'string' || typeof entry.specHash !== 'string') throw new Error(`${what} has an inventory entry without kind or spec hash`);
  if (!ORIGINS.has(entry.origin)) throw new Error(`${what} has an inventory entry of unknown origin "${String(entry.origin)}"`);
  if (!Array.isArray(entry.dependsOn)) throw new Error(`${what} has an inventory entry whose dependsOn is not a list`);
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

const INT8_OID = 20;
const TIMESTAMPTZ_OID = 1184;
const parseTimestamptz = pg.types.getTypeParser(TIMESTAMPTZ_OID) as (text: string) => Date;

/** bigint as a number (ids and serials stay far below 2^53), timestamptz as an ISO string in UTC. */
const getTypeParser = ((oid: number, format?: 'text' | 'binary') => {
  if (oid === INT8_OID) {
    return (text: string): number => {
      const n = Number(text);
      if (!Number.isSafeInteger(n)) throw new Error(`bigint ${text} does not fit a JavaScript number`);
      return n;
    };
  }
  if (oid === TIMESTAMPTZ_OID) return (text: string): string => parseTimestamptz(text).toISOString();
  return pg.types.getTypeParser(oid, format ?? 'text');
}) as typeof pg.types.getTypeParser;

/**
 * Splits Capstan's own `schema` parameter off the URL. Server `options` in the URL
 * are kept, with `search_path` added (node-postgres lets the URL's `options`
 * override the configured ones, so they are merged here).
 */
function parseStateUrl(url: string): { connectionString: string; schema: string | undefined; serverOptions: string } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error('the URL cannot be parsed');
  }
  const schema = parsed.searchParams.get('schema') ?? undefined;
  if (schema !== undefined && !SCHEMA_NAME.test(schema)) {
    throw new Error(`invalid schema name "${schema}": use letters, digits and underscores, not starting with a digit`);
  }
  const given = parsed.searchParams.get('options') ?? '';
  parsed.searchParams.delete('schema');
  parsed.searchParams.delete('options');
  const serverOptions = [given, schema !== undefined ? `-c search_path="${schema}"` : ''].filter((o) => o !== '').join(' ');
  return { connectionString: parsed.toString(), schema, serverOptions };
}


function ignoreError(): void {}

function ignoreLostConnection(): void {}

function unknownRun(runId: number, cause?: unknown): Error {
  return new Error(`run ${runId} does not exist`, cause === undefined ? undefined : { cause });
}

function now(): string {
  return new Date().toISOString();
}
