/**
 * The controller's tables (migration 2) in the PostgreSQL store, shared by every
 * replica. Same semantics as `../sqlite/controller-store.ts`; each method is one
 * statement, or one transaction where it takes two, so concurrent replicas see
 * each other's writes whole: a sync requested through one replica is counted
 * once, a plan moves state only from the state it was in (compare-and-set), a
 * webhook delivery is new for exactly one of the replicas that receive it.
 */
import { sql, type Kysely, type Selectable } from 'kysely';
import type {
  ApiTokenRecord,
  AuditInput,
  AuditRecord,
  ControllerStore,
  Role,
  StackPlanRecord,
  StackPlanState,
  StackStatusPatch,
  StackStatusRecord,
} from '../store.js';
import type { AuditLogTable, StackPlansTable, StackStatusTable, StateTables, ApiTokensTable } from './migrations.js';

type StatusColumns = Omit<StackStatusTable, 'stack' | 'updated_at' | 'sync_requests'>;

/** Patch fields and their columns. */
const STATUS_COLUMNS: Record<keyof StackStatusPatch, keyof StatusColumns> = {
  status: 'status',
  headCommit: 'head_commit',
  lastAppliedCommit: 'last_applied_commit',
  lastAppliedSpecHash: 'last_applied_spec_hash',
  lastRunId: 'last_run_id',
  drifted: 'drifted',
  error: 'error',
  rollback: 'rollback',
  paused: 'paused',
  owner: 'owner',
};

export class PostgresControllerStore implements ControllerStore {
  readonly #db: Kysely<StateTables>;

  constructor(db: Kysely<StateTables>) {
    this.#db = db;
  }

  async createToken(input: { id: string; name: string; role: Role; tokenHash: string; expiresAt: string | null }): Promise<ApiTokenRecord> {
    const row = await this.#db
      .insertInto('api_tokens')
      .values({ id: input.id, name: input.name, role: input.role, token_hash: input.tokenHash, created_at: now(), expires_at: input.expiresAt })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toToken(row);
  }

  async getToken(id: string): Promise<(ApiTokenRecord & { tokenHash: string }) | undefined> {
    const row = await this.#db.selectFrom('api_tokens').selectAll().where('id', '=', id).executeTakeFirst();
    return row && { ...toToken(row), tokenHash: row.token_hash };
  }

  async listTokens(): Promise<ApiTokenRecord[]> {
    const rows = await this.#db.selectFrom('api_tokens').selectAll().orderBy('created_at').orderBy('id').execute();
    return rows.map(toToken);
  }

  async revokeToken(id: string): Promise<boolean> {
    const result = await this.#db
      .updateTable('api_tokens')
      .set({ revoked_at: now() })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  async appendAudit(entry: AuditInput): Promise<AuditRecord> {
    const row = await this.#db
      .insertInto('audit_log')
      .values({
        at: now(),
        actor: entry.actor,
        role: entry.role,
        action: entry.action,
        target: entry.target,
        detail: JSON.stringify(entry.detail ?? null),
        ip: entry.ip,
        outcome: entry.outcome,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toAudit(row);
  }

  async listAudit(options: { limit?: number; beforeId?: number }): Promise<AuditRecord[]> {
    const limit = Math.max(0, Math.floor(options.limit ?? 100));
    const rows = await this.#db
      .selectFrom('audit_log')
      .selectAll()
      .where('id', '<', options.beforeId ?? Number.MAX_SAFE_INTEGER)
      .orderBy('id', 'desc')
      .limit(limit)
      .execute();
    return rows.map(toAudit);
  }

  async pruneAudit(options: { before?: string | undefined; keepRows?: number | undefined }): Promise<number> {
    return this.#db.transaction().execute(async (trx) => {
      let deleted = 0n;
      if (options.before !== undefined) deleted += (await trx.deleteFrom('audit_log').where('at', '<', options.before).executeTakeFirst()).numDeletedRows;
      if (options.keepRows !== undefined) {
        const keep = Math.max(0, Math.floor(options.keepRows));
        const query = trx.deleteFrom('audit_log');
        const result =
          keep === 0
            ? await query.executeTakeFirst()
            : await query
                .where('id', '<', (eb) => eb.selectFrom('audit_log').select('id').orderBy('id', 'desc').limit(1).offset(keep - 1))
                .executeTakeFirst();
        deleted += result.numDeletedRows;
      }
      return Number(deleted);
    });
  }

  async getStackStatus(stack: string): Promise<StackStatusRecord | undefined> {
    const row = await this.#db.selectFrom('stack_status').selectAll().where('stack', '=', stack).executeTakeFirst();
    return row && toStatus(row);
  }

  async listStackStatus(): Promise<StackStatusRecord[]> {
    return (await this.#db.selectFrom('stack_status').selectAll().orderBy('stack').execute()).map(toStatus);
  }

  /** One upsert: a new row takes the patch over the defaults; an existing one changes only the patched columns. */
  async updateStackStatus(stack: string, patch: StackStatusPatch): Promise<StackStatusRecord> {
    const patched: Partial<Record<keyof StatusColumns, unknown>> = {};
    for (const [field, column] of Object.entries(STATUS_COLUMNS) as [keyof StackStatusPatch, keyof StatusColumns][]) {
      if (!(field in patch) || patch[field] === undefined) continue;
      patched[column] = field === 'rollback' || field === 'paused' ? (patch[field] === null ? null : JSON.stringify(patch[field])) : patch[field];
    }
    const inserted: Record<string, unknown> = { status: 'pending', ...patched, stack, updated_at: now() };
    const names = Object.keys(inserted);
    const updated = ['updated_at', ...Object.keys(patched)];
    const { rows } = await sql<Selectable<StackStatusTable>>`
      INSERT INTO stack_status (${sql.join(names.map((n) => sql.ref(n)))})
      VALUES (${sql.join(names.map((n) => inserted[n]))})
      ON CONFLICT (stack) DO UPDATE SET ${sql.join(updated.map((c) => sql`${sql.ref(c)} = ${sql.ref(`excluded.${c}`)}`))}
      RETURNING *`.execute(this.#db);
    const row = rows[0];
    if (!row) throw new Error('INSERT ... RETURNING returned no row');
    return toStatus(row);
  }

  async requestSync(stack: string): Promise<number> {
    const row = await this.#db
      .insertInto('stack_status')
      .values({ stack, status: 'pending', updated_at: now(), sync_requests: 1 })
      .onConflict((oc) => oc.column('stack').doUpdateSet((eb) => ({ sync_requests: eb('stack_status.sync_requests', '+', 1) })))
      .returning('sync_requests')
      .executeTakeFirstOrThrow();
    return row.sync_requests;
  }

  async putPlan(record: Omit<StackPlanRecord, 'decidedBy' | 'decidedAt'>): Promise<void> {
    await this.#db
      .insertInto('stack_plans')
      .values({
        stack: record.stack,
        id: record.id,
        state: record.state,
        plan: JSON.stringify(record.plan ?? null),
        text: record.text,
        commit_sha: record.commit,
        spec_hash: record.specHash,
        created_at: record.createdAt,
        decided_by: null,
        decided_at: null,
      })
      .onConflict((oc) =>
        oc.column('stack').doUpdateSet((eb) => ({
          id: eb.ref('excluded.id'),
          state: eb.ref('excluded.state'),
          plan: eb.ref('excluded.plan'),
          text: eb.ref('excluded.text'),
          commit_sha: eb.ref('excluded.commit_sha'),
          spec_hash: eb.ref('excluded.spec_hash'),
          created_at: eb.ref('excluded.created_at'),
          decided_by: null,
          decided_at: null,
        })),
      )
      .execute();
  }

  async getPlan(stack: string): Promise<StackPlanRecord | undefined> {
    const row = await this.#db.selectFrom('stack_plans').selectAll().where('stack', '=', stack).executeTakeFirst();
    return row && toPlan(row);
  }

  async transitionPlan(
    stack: string,
    from: StackPlanState,
    to: StackPlanState,
    options: { id?: string; by?: string } = {},
  ): Promise<StackPlanRecord | undefined> {
    let query = this.#db
      .updateTable('stack_plans')
      .set((eb) => ({ state: to, decided_by: eb.fn.coalesce(eb.val(options.by ?? null), eb.ref('decided_by')), decided_at: now() }))
      .where('stack', '=', stack)
      .where('state', '=', from);
    if (options.id !== undefined) query = query.where('id', '=', options.id);
    const row = await query.returningAll().executeTakeFirst();
    return row && toPlan(row);
  }

  async rememberDelivery(source: string, deliveryId: string, keepMs: number): Promise<boolean> {
    const at = new Date();
    return this.#db.transaction().execute(async (trx) => {
      await trx
        .deleteFrom('webhook_deliveries')
        .where('received_at', '<', new Date(at.getTime() - keepMs).toISOString())
        .execute();
      const inserted = await trx
        .insertInto('webhook_deliveries')
        .values({ source, delivery_id: deliveryId, received_at: at.toISOString() })
        .onConflict((oc) => oc.doNothing())
        .executeTakeFirst();
      return (inserted.numInsertedOrUpdatedRows ?? 0n) > 0n;
    });
  }
}

function toToken(row: Selectable<ApiTokensTable>): ApiTokenRecord {
  return { id: row.id, name: row.name, role: row.role, createdAt: row.created_at, expiresAt: row.expires_at, revokedAt: row.revoked_at };
}

function toAudit(row: Selectable<AuditLogTable>): AuditRecord {
  return {
    id: row.id,
    at: row.at,
    actor: row.actor,
    role: row.role,
    action: row.action,
    target: row.target,
    detail: row.detail,
    ip: row.ip,
    outcome: row.outcome,
  };
}

function toStatus(row: Selectable<StackStatusTable>): StackStatusRecord {
  return {
    stack: row.stack,
    status: row.status,
    headCommit: row.head_commit,
    lastAppliedCommit: row.last_applied_commit,
    lastAppliedSpecHash: row.last_applied_spec_hash,
    lastRunId: row.last_run_id,
    drifted: row.drifted,
    error: row.error,
    rollback: (row.rollback ?? null) as StackStatusRecord['rollback'],
    paused: (row.paused ?? null) as StackStatusRecord['paused'],
    syncRequests: row.sync_requests,
    owner: row.owner,
    updatedAt: row.updated_at,
  };
}

function toPlan(row: Selectable<StackPlansTable>): StackPlanRecord {
  return {
    stack: row.stack,
    id: row.id,
    state: row.state,
    plan: row.plan,
    text: row.text,
    commit: row.commit_sha,
    specHash: row.spec_hash,
    createdAt: row.created_at,
    decidedBy: row.decided_by,
    decidedAt: row.decided_at,
  };
}

function now(): string {
  return new Date().toISOString();
}
