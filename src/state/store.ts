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
}

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
  listResults(runId: number): Promise<(ResourceResult & { finishedAt: string })[]>;
  listEvents(runId: number): Promise<EventRecord[]>;
  inventory(stack: string): Promise<InventoryEntry[]>;
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

export function emptyCounts(): RunCounts {
  return { create: 0, update: 0, replace: 0, delete: 0, noop: 0, failed: 0, skipped: 0 };
}
