/**
 * The controller's tables (migration 2) on the SQLite connection of a
 * `SqliteStore`. Every method is one statement or one `BEGIN IMMEDIATE`
 * transaction, synchronous on the shared connection, so it cannot interleave
 * with the store's own transactions.
 */
import type BetterSqlite3 from 'better-sqlite3';
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

interface TokenRow {
  id: string;
  name: string;
  role: Role;
  token_hash: string;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
}

interface AuditRow {
  id: number;
  at: string;
  actor: string;
  role: Role | null;
  action: string;
  target: string | null;
  detail: string;
  ip: string | null;
  outcome: string;
}

interface StatusRow {
  stack: string;
  status: string;
  head_commit: string | null;
  last_applied_commit: string | null;
  last_applied_spec_hash: string | null;
  last_run_id: number | null;
  drifted: number;
  error: string | null;
  rollback: string | null;
  paused: string | null;
  sync_requests: number;
  owner: string | null;
  updated_at: string;
}

interface PlanRow {
  stack: string;
  id: string;
  state: StackPlanState;
  plan: string;
  text: string;
  commit_sha: string | null;
  spec_hash: string;
  created_at: string;
  decided_by: string | null;
  decided_at: string | null;
}

/** Patch fields and their columns; JSON columns are encoded by `encode`. */
const STATUS_COLUMNS: Record<keyof StackStatusPatch, keyof StatusRow> = {
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

export class SqliteControllerStore implements ControllerStore {
  readonly #db: BetterSqlite3.Database;

  constructor(db: BetterSqlite3.Database) {
    this.#db = db;
  }

  async createToken(input: { id: string; name: string; role: Role; tokenHash: string; expiresAt: string | null }): Promise<ApiTokenRecord> {
    const row = this.#db
      .prepare<[string, string, string, string, string, string | null], TokenRow>(
        `INSERT INTO api_tokens (id, name, role, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING *`,
      )
      .get(input.id, input.name, input.role, input.tokenHash, now(), input.expiresAt);
    if (!row) throw new Error('INSERT ... RETURNING returned no row');
    return toToken(row);
  }

  async getToken(id: string): Promise<(ApiTokenRecord & { tokenHash: string }) | undefined> {
    const row = this.#db.prepare<[string], TokenRow>('SELECT * FROM api_tokens WHERE id = ?').get(id);
    return row && { ...toToken(row), tokenHash: row.token_hash };
  }

  async listTokens(): Promise<ApiTokenRecord[]> {
    return this.#db.prepare<[], TokenRow>('SELECT * FROM api_tokens ORDER BY created_at, id').all().map(toToken);
  }

  async revokeToken(id: string): Promise<boolean> {
    return this.#db.prepare('UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(now(), id).changes > 0;
  }

  async appendAudit(entry: AuditInput): Promise<AuditRecord> {
    const row = this.#db
      .prepare<unknown[], AuditRow>(
        `INSERT INTO audit_log (at, actor, role, action, target, detail, ip, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING *`,
      )
      .get(now(), entry.actor, entry.role, entry.action, entry.target, JSON.stringify(entry.detail ?? null), entry.ip, entry.outcome);
    if (!row) throw new Error('INSERT ... RETURNING returned no row');
    return toAudit(row);
  }

  async listAudit(options: { limit?: number; beforeId?: number }): Promise<AuditRecord[]> {
    const limit = Math.max(0, Math.floor(options.limit ?? 100));
    const before = options.beforeId ?? Number.MAX_SAFE_INTEGER;
    return this.#db
      .prepare<[number, number], AuditRow>('SELECT * FROM audit_log WHERE id < ? ORDER BY id DESC LIMIT ?')
      .all(before, limit)
      .map(toAudit);
  }

  async pruneAudit(options: { before?: string | undefined; keepRows?: number | undefined }): Promise<number> {
    const prune = this.#db.transaction((): number => {
      let deleted = 0;
      if (options.before !== undefined) deleted += this.#db.prepare('DELETE FROM audit_log WHERE at < ?').run(options.before).changes;
      if (options.keepRows !== undefined) {
        const keep = Math.max(0, Math.floor(options.keepRows));
        deleted +=
          keep === 0
            ? this.#db.prepare('DELETE FROM audit_log').run().changes
            : this.#db.prepare('DELETE FROM audit_log WHERE id < (SELECT id FROM audit_log ORDER BY id DESC LIMIT 1 OFFSET ?)').run(keep - 1).changes;
      }
      return deleted;
    });
    return prune.immediate();
  }

  async getStackStatus(stack: string): Promise<StackStatusRecord | undefined> {
    const row = this.#db.prepare<[string], StatusRow>('SELECT * FROM stack_status WHERE stack = ?').get(stack);
    return row && toStatus(row);
  }

  async listStackStatus(): Promise<StackStatusRecord[]> {
    return this.#db.prepare<[], StatusRow>('SELECT * FROM stack_status ORDER BY stack').all().map(toStatus);
  }

  async updateStackStatus(stack: string, patch: StackStatusPatch): Promise<StackStatusRecord> {
    const at = now();
    const update = this.#db.transaction((): StatusRow => {
      this.#db
        .prepare(`INSERT INTO stack_status (stack, status, updated_at) VALUES (?, 'pending', ?) ON CONFLICT (stack) DO NOTHING`)
        .run(stack, at);
      const sets: string[] = ['updated_at = @updated_at'];
      const values: Record<string, unknown> = { stack, updated_at: at };
      for (const [field, column] of Object.entries(STATUS_COLUMNS) as [keyof StackStatusPatch, keyof StatusRow][]) {
        if (!(field in patch) || patch[field] === undefined) continue;
        sets.push(`${column} = @${column}`);
        values[column] = field === 'rollback' || field === 'paused' ? (patch[field] === null ? null : JSON.stringify(patch[field])) : patch[field];
      }
      const row = this.#db.prepare<Record<string, unknown>, StatusRow>(`UPDATE stack_status SET ${sets.join(', ')} WHERE stack = @stack RETURNING *`).get(values);
      if (!row) throw new Error('UPDATE ... RETURNING returned no row');
      return row;
    });
    return toStatus(update.immediate());
  }

  async requestSync(stack: string): Promise<number> {
    const row = this.#db
      .prepare<[string, string], { sync_requests: number }>(
        `INSERT INTO stack_status (stack, status, updated_at, sync_requests) VALUES (?, 'pending', ?, 1)
         ON CONFLICT (stack) DO UPDATE SET sync_requests = sync_requests + 1
         RETURNING sync_requests`,
      )
      .get(stack, now());
    return row?.sync_requests ?? 0;
  }

  async putPlan(record: Omit<StackPlanRecord, 'decidedBy' | 'decidedAt'>): Promise<void> {
    this.#db
      .prepare(
        `INSERT INTO stack_plans (stack, id, state, plan, text, commit_sha, spec_hash, created_at, decided_by, decided_at)
         VALUES (@stack, @id, @state, @plan, @text, @commit_sha, @spec_hash, @created_at, NULL, NULL)
         ON CONFLICT (stack) DO UPDATE SET id = excluded.id, state = excluded.state, plan = excluded.plan, text = excluded.text,
           commit_sha = excluded.commit_sha, spec_hash = excluded.spec_hash, created_at = excluded.created_at,
           decided_by = NULL, decided_at = NULL`,
      )
      .run({
        stack: record.stack,
        id: record.id,
        state: record.state,
        plan: JSON.stringify(record.plan),
        text: record.text,
        commit_sha: record.commit,
        spec_hash: record.specHash,
        created_at: record.createdAt,
      });
  }

  async getPlan(stack: string): Promise<StackPlanRecord | undefined> {
    const row = this.#db.prepare<[string], PlanRow>('SELECT * FROM stack_plans WHERE stack = ?').get(stack);
    return row && toPlan(row);
  }

  async transitionPlan(
    stack: string,
    from: StackPlanState,
    to: StackPlanState,
    options: { id?: string; by?: string } = {},
  ): Promise<StackPlanRecord | undefined> {
    const row = this.#db
      .prepare<[string, string | null, string, string, string, string | null, string | null], PlanRow>(
        `UPDATE stack_plans SET state = ?, decided_by = COALESCE(?, decided_by), decided_at = ?
         WHERE stack = ? AND state = ? AND (? IS NULL OR id = ?) RETURNING *`,
      )
      .get(to, options.by ?? null, now(), stack, from, options.id ?? null, options.id ?? null);
    return row && toPlan(row);
  }

  async rememberDelivery(source: string, deliveryId: string, keepMs: number): Promise<boolean> {
    const at = new Date();
    const remember = this.#db.transaction((): boolean => {
      this.#db.prepare('DELETE FROM webhook_deliveries WHERE received_at < ?').run(new Date(at.getTime() - keepMs).toISOString());
      const inserted = this.#db
        .prepare('INSERT INTO webhook_deliveries (source, delivery_id, received_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING')
        .run(source, deliveryId, at.toISOString());
      return inserted.changes > 0;
    });
    return remember.immediate();
  }
}

function toToken(row: TokenRow): ApiTokenRecord {
  return { id: row.id, name: row.name, role: row.role, createdAt: row.created_at, expiresAt: row.expires_at, revokedAt: row.revoked_at };
}

function toAudit(row: AuditRow): AuditRecord {
  return {
    id: row.id,
    at: row.at,
    actor: row.actor,
    role: row.role,
    action: row.action,
    target: row.target,
    detail: JSON.parse(row.detail) as unknown,
    ip: row.ip,
    outcome: row.outcome,
  };
}

function toStatus(row: StatusRow): StackStatusRecord {
  return {
    stack: row.stack,
    status: row.status,
    headCommit: row.head_commit,
    lastAppliedCommit: row.last_applied_commit,
    lastAppliedSpecHash: row.last_applied_spec_hash,
    lastRunId: row.last_run_id,
    drifted: row.drifted,
    error: row.error,
    rollback: row.rollback === null ? null : (JSON.parse(row.rollback) as StackStatusRecord['rollback']),
    paused: row.paused === null ? null : (JSON.parse(row.paused) as StackStatusRecord['paused']),
    syncRequests: row.sync_requests,
    owner: row.owner,
    updatedAt: row.updated_at,
  };
}

function toPlan(row: PlanRow): StackPlanRecord {
  return {
    stack: row.stack,
    id: row.id,
    state: row.state,
    plan: JSON.parse(row.plan) as unknown,
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
