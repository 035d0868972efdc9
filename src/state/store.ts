/**
 * The state store contract. Implementations: `sqlite/` (embedded default) and,
 * with the controller, `postgres/`. Both pass the same suite (store.suite.ts).
 *
 * Durability: every method that writes has committed when its promise resolves.
 * `recordResults` is called as each resource finishes, so a process killed at any
 * moment loses at most the results it had not yet been told about; the next run
 * reads live state again and converges.
 *
 * Errors: `lock` throws `StackLockedError` naming the holder; every other failure
 * is an I/O error thrown as is.
 */
import type { Address } from '../spec/resource.js';

export type RunKind = 'apply' | 'plan' | 'drift';
export type RunStatus = 'running' | 'succeeded' | 'failed' | 'interrupted';
export type ResultStatus = 'succeeded' | 'failed' | 'skipped';
export type RecordedAction = 'create' | 'update' | 'replace' | 'delete' | 'noop';

/** Who is running: shown in history and in the lock error. */
export interface Actor {
  readonly user: string;
  readonly host: string;
  readonly pid: number;
}

export interface RunCounts {
  create: number;
  update: number;
  replace: number;
  delete: number;
  noop: number;
  failed: number;
  skipped: number;
}

export interface RunInput {
  readonly stack: string;
  readonly kind: RunKind;
  readonly actor: Actor;
  readonly commit: string | null;
  readonly author: string | null;
  readonly message: string | null;
  readonly specHash: string | null;
}

export interface RunRecord extends RunInput {
  readonly id: number;
  readonly status: RunStatus;
  readonly startedAt: string;
  readonly finishedAt: string | null;
  readonly counts: RunCounts;
  readonly error: string | null;
}

/** One resource Capstan manages: created by it, or adopted (found already matching and recorded). */
export interface InventoryEntry {
  readonly address: Address;
  readonly kind: string;
  /** Target address, e.g. `Host/web-1`; null for targets themselves. */
  readonly target: Address | null;
  /** The target's spec as last applied, so an orphan can still be reached after its target left the spec. */
  readonly targetSpec: unknown;
  readonly targetKind: string | null;
  /** The last applied spec (already resolved): drift compares live state against it. */
  readonly spec: unknown;
  readonly specHash: string;
  readonly liveFingerprint: string | null;
  /** Addresses this resource depended on when applied: deletes run in reverse of these edges. */
  readonly dependsOn: readonly Address[];
  readonly origin: 'created' | 'adopted';
  readonly updatedAt: string;
  readonly lastRunId: number;
}

/** The outcome of one resource in one run. `inventory` is the entry to store, or null to remove it. */
export interface ResourceResult {
  readonly address: Address;
  readonly action: RecordedAction;
  readonly status: ResultStatus;
  readonly error: string | null;
  readonly durationMs: number;
  /** undefined: leave the inventory as it is (failed, skipped). */
  readonly inventory?: Omit<InventoryEntry, 'updatedAt' | 'lastRunId'> | null | undefined;
  /**
   * Handlers this (successful) change notified: recorded as pending refreshes in
   * the same transaction as the result, so a run killed before a handler ran
   * still runs it next time.
   */
  readonly notify?: readonly Address[] | undefined;
  /** This resource reacted to its notifications (refreshed or re-applied): its pending refreshes are cleared. */
  readonly refreshed?: boolean | undefined;
}

/** A notification a handler has not reacted to yet. */
export interface PendingRefresh {
  /** The handler to refresh. */
  readonly address: Address;
  /** The resource whose change notified it. */
  readonly notifiedBy: Address;
  readonly runId: number;
  readonly at: string;
}

/** The event type of a provider's note on a change (`ProviderContext.note`), e.g. where a backup was kept. */
export const RESOURCE_NOTE = 'resource.note';

export interface EventRecord {
  readonly id: number;
  readonly runId: number;
  readonly at: string;
  readonly address: Address | null;
  readonly type: string;
  readonly message: string;
}

export interface LockHolder extends Actor {
  readonly runId?: number | undefined;
  readonly since: string;
}

export interface StackLock {
  readonly stack: string;
  readonly holder: LockHolder;
  /** Removes the lock if this acquisition still holds it; calling it again does nothing. */
  release(): Promise<void>;
  /** Names the run working under this lock, so `StackLockedError` can show it. Throws if the lock was lost. */
  setRunId?(runId: number): Promise<void>;
  /**
   * Optional: aborts when this acquisition stops holding the lock (released, or
   * its connection lost), so a long-lived holder such as the controller stops
   * writing at once.
   */
  readonly signal?: AbortSignal;
}

export interface Store {
  /**
   * Takes the stack's writer lock or throws `StackLockedError`. A lock left by a
   * process on this host that no longer exists is taken over, and that process's
   * runs still marked running are marked interrupted.
   */
  lock(stack: string, actor: Actor): Promise<StackLock>;
  startRun(input: RunInput): Promise<RunRecord>;
  /** Records results durably, updates the inventory and run counts; bumps the stack's serial when the inventory changed. */
  recordResults(runId: number, results: readonly ResourceResult[]): Promise<void>;
  appendEvent(runId: number, event: { address: Address | null; type: string; message: string }): Promise<void>;
  finishRun(runId: number, status: Exclude<RunStatus, 'running'>, error?: string | null): Promise<RunRecord>;
  getRun(runId: number): Promise<RunRecord | undefined>;
  listRuns(options: { stack?: string; limit?: number }): Promise<RunRecord[]>;
  /** Whether an `apply` run of `stack` pinned to `commit` (a full SHA) succeeded: what a rollback may go back to. */
  hasApplied(stack: string, commit: string): Promise<boolean>;
  listResults(runId: number): Promise<(ResourceResult & { finishedAt: string })[]>;
  listEvents(runId: number): Promise<EventRecord[]>;
  inventory(stack: string): Promise<InventoryEntry[]>;
  /**
   * Notifications not yet acted on, by handler then notifier. A result with
   * `refreshed`, or one that deletes the handler from the inventory, clears them.
   */
  pendingRefreshes(stack: string): Promise<PendingRefresh[]>;
  /** Increases each time the stack's inventory changes; a saved plan records it to detect that state moved. */
  serial(stack: string): Promise<number>;
  close(): Promise<void>;
}

export class StackLockedError extends Error {
  constructor(
    readonly stackName: string,
    readonly holder: LockHolder,
  ) {
    super(
      `stack "${stackName}" is locked by ${holder.user}@${holder.host} (pid ${holder.pid}` +
        `${holder.runId !== undefined ? `, run ${holder.runId}` : ''}) since ${holder.since}`,
    );
    this.name = 'StackLockedError';
  }
}

/**
 * The net effect of a batch of results on the pending refreshes, in result
 * order: the handlers whose notifications are cleared (they reacted, or left
 * the inventory), then the notifications recorded after the last clear of
 * their handler, each once. A store applies `clear` before `add`.
 */
export function pendingRefreshEdits(results: readonly ResourceResult[]): { clear: Address[]; add: { address: Address; notifiedBy: Address }[] } {
  const cleared = new Set<Address>();
  const added = new Map<Address, Set<Address>>();
  for (const result of results) {
    if (result.status !== 'succeeded') continue;
    if (result.refreshed || result.inventory === null) {
      cleared.add(result.address);
      added.delete(result.address);
    }
    for (const handler of result.notify ?? []) {
      const by = added.get(handler) ?? new Set<Address>();
      by.add(result.address);
      added.set(handler, by);
    }
  }
  const add = [...added].flatMap(([address, by]) => [...by].map((notifiedBy) => ({ address, notifiedBy })));
  return { clear: [...cleared], add };
}

export function emptyCounts(): RunCounts {
  return { create: 0, update: 0, replace: 0, delete: 0, noop: 0, failed: 0, skipped: 0 };
}

// ---------------------------------------------------------------------------
// The controller's extension (`capstan serve`): API tokens, the audit log, the
// plan awaiting approval, each stack's status and webhook delivery ids.
//
// A store offers it through `controllerStore()` (see `controllerStoreOf`), so
// test doubles and CLI-only stores need not implement it. Same durability and
// error rules as `Store`.

export type Role = 'viewer' | 'operator' | 'admin';
export const ROLES: readonly Role[] = ['viewer', 'operator', 'admin'];

/** An API token as listed; the token itself is never stored, only its SHA-256. */
export interface ApiTokenRecord {
  readonly id: string;
  readonly name: string;
  readonly role: Role;
  readonly createdAt: string;
  readonly expiresAt: string | null;
  readonly revokedAt: string | null;
}

export interface AuditInput {
  /** Who: a token's `name (id)`, or `webhook:<provider>`. */
  readonly actor: string;
  readonly role: Role | null;
  /** What, e.g. `stack.approve`, `token.create`. */
  readonly action: string;
  /** On what, e.g. the stack name or a token id. */
  readonly target: string | null;
  readonly detail: unknown;
  /** From where: the client's address. */
  readonly ip: string | null;
  /** `ok`, `denied`, `rejected: <why>`, ... */
  readonly outcome: string;
}

export interface AuditRecord extends AuditInput {
  readonly id: number;
  readonly at: string;
}

/**
 * The life of a stack's current plan: `latest` (shown, nothing to decide),
 * `pending` (waits for approval), `approved` (to be applied by the next pass),
 * `applied`, `stale` (refused by the staleness check), `superseded` (a newer
 * commit replaced it before it was approved).
 */
export type StackPlanState = 'latest' | 'pending' | 'approved' | 'applied' | 'stale' | 'superseded';

export interface StackPlanRecord {
  readonly stack: string;
  readonly id: string;
  readonly state: StackPlanState;
  /** The Plan value (JSON). */
  readonly plan: unknown;
  /** The plan as text, as `capstan plan` shows it. */
  readonly text: string;
  readonly commit: string | null;
  readonly specHash: string;
  readonly createdAt: string;
  readonly decidedBy: string | null;
  readonly decidedAt: string | null;
}

export interface StackStatusRecord {
  readonly stack: string;
  /** `pending`, `synced`, `out-of-sync`, `awaiting-approval`, `drifted`, `failed`, `invalid`, ... */
  readonly status: string;
  readonly headCommit: string | null;
  readonly lastAppliedCommit: string | null;
  readonly lastAppliedSpecHash: string | null;
  readonly lastRunId: number | null;
  readonly drifted: number;
  readonly error: string | null;
  /** Set by a rollback: apply `commit` instead of the branch while the branch stays at `head`. */
  readonly rollback: { readonly commit: string; readonly head: string | null; readonly by?: string | null } | null;
  /** Set by a pause: the controller leaves the stack alone (no fetch, plan, apply or heal) until it is resumed. */
  readonly paused: { readonly by: string; readonly at: string } | null;
  /** Increases on each sync asked for through any replica; the stack's owner watches it. */
  readonly syncRequests: number;
  /** The replica that reconciled it last. */
  readonly owner: string | null;
  readonly updatedAt: string;
}

export type StackStatusPatch = Partial<Omit<StackStatusRecord, 'stack' | 'updatedAt' | 'syncRequests'>>;

export interface ControllerStore {
  createToken(input: { id: string; name: string; role: Role; tokenHash: string; expiresAt: string | null }): Promise<ApiTokenRecord>;
  /** The token with this id and its stored hash, revoked or expired ones included. */
  getToken(id: string): Promise<(ApiTokenRecord & { readonly tokenHash: string }) | undefined>;
  listTokens(): Promise<ApiTokenRecord[]>;
  /** Returns false when no unrevoked token has this id. */
  revokeToken(id: string): Promise<boolean>;

  appendAudit(entry: AuditInput): Promise<AuditRecord>;
  /** Newest first. */
  listAudit(options: { limit?: number; beforeId?: number }): Promise<AuditRecord[]>;
  /**
   * Retention: deletes the entries older than `before` (ISO time), and all but
   * the newest `keepRows`; either may be absent. Returns how many were deleted.
   */
  pruneAudit(options: { before?: string | undefined; keepRows?: number | undefined }): Promise<number>;

  getStackStatus(stack: string): Promise<StackStatusRecord | undefined>;
  listStackStatus(): Promise<StackStatusRecord[]>;
  /** Creates the row when missing (status `pending` unless the patch says otherwise). */
  updateStackStatus(stack: string, patch: StackStatusPatch): Promise<StackStatusRecord>;
  /** Counts one more sync request for the stack; returns the new count. */
  requestSync(stack: string): Promise<number>;

  /** Replaces the stack's current plan. */
  putPlan(record: Omit<StackPlanRecord, 'decidedBy' | 'decidedAt'>): Promise<void>;
  getPlan(stack: string): Promise<StackPlanRecord | undefined>;
  /**
   * Moves the current plan from `from` to `to` (compare-and-set): only if it is
   * in state `from` and, when `id` is given, has that id. Returns the updated
   * record, or undefined when nothing matched.
   */
  transitionPlan(stack: string, from: StackPlanState, to: StackPlanState, options?: { id?: string; by?: string }): Promise<StackPlanRecord | undefined>;

  /** Remembers a webhook delivery; false when it was seen already (a replay). Forgets ids older than `keepMs`. */
  rememberDelivery(source: string, deliveryId: string, keepMs: number): Promise<boolean>;
}

/** A store that can hold what the controller needs. */
export interface ControllerCapable {
  controllerStore(): ControllerStore;
}

export function controllerStoreOf(store: Store): ControllerStore {
  const capable = store as Partial<ControllerCapable>;
  if (typeof capable.controllerStore !== 'function') {
    throw new Error('this state store cannot hold the controller\'s tables (tokens, audit, plans); use sqlite: or postgres://');
  }
  return capable.controllerStore();
}
