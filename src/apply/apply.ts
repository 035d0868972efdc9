/**
 * apply(plan) -> run: carries out exactly the plan's changes along the
 * dependency graph. Deletes go first, dependents before what they depended on;
 * then creates, updates and replaces, dependencies first. Each result is
 * recorded durably as it finishes. A failed change skips its dependents; the
 * rest goes on. The hosts of a planned rollout go out batch by batch instead,
 * each batch judged before the next starts (see rollout.ts).
 *
 * When the store cannot record a result (after the recorder's bounded retries)
 * or the stack's lock is lost, no further change starts; the changes in flight
 * finish; every result the store did not take is handed to the recovery sink
 * (see recovery.ts) and returned in `storeFailure`; the run's status is
 * `failed`.
 */
import { hasErrors } from '../diag/diagnostic.js';
import { fingerprint } from '../plan/canonical.js';
import { isChange, type Plan, type PlannedChange } from '../plan/plan.js';
import { messageOf } from '../plan/read-live.js';
import type { AnyResourceProvider } from '../providers/provider.js';
import type { ProviderRegistry } from '../providers/registry.js';
import { storedTarget, type TargetPool } from '../providers/target-pool.js';
import { emptyCounts, RESOURCE_NOTE, type Actor, type InventoryEntry, type ResourceResult, type RunCounts, type RunRecord, type RunStatus, type Store } from '../state/store.js';
import { ResultRecorder, type RecordRetry } from './recorder.js';
import type { RecoverySink } from './recovery.js';
import { silentReporter, type ApplyReporter } from './reporter.js';
import { RolloutJudge, RolloutSchedule, type GateNode, type RolloutOutcome } from './rollout.js';
import { walk, type NodeOutcome } from './walk.js';
import type { HostTransport } from '../transport/transport.js';
import type { Address } from '../spec/resource.js';
import { groupBy } from '../util/group-by.js';

export const DEFAULT_PARALLELISM = 10;

export interface ApplyOptions {
  readonly plan: Plan;
  readonly registry: ProviderRegistry;
  readonly store: Store;
  readonly targets: TargetPool;
  readonly actor: Actor;
  readonly parallelism?: number;
  /** Abort to stop taking new work; in-flight changes finish and are recorded. */
  readonly signal?: AbortSignal;
  /**
   * Abort to cancel the changes in flight too (a hard stop). Kept apart from
   * `signal` on purpose: a graceful stop must let a change that already wrote
   * its object read it back and record it, or the store would lose a result.
   */
  readonly cancel?: AbortSignal;
  readonly reporter?: ApplyReporter;
  /** Called once the run exists, e.g. to name it in the stack lock. */
  readonly onRunStarted?: (run: RunRecord) => void;
  /** Aborts when the stack's lock is lost: no new change starts, as when the store fails. */
  readonly lockLost?: AbortSignal;
  /** Where results the store could not take are saved; without it they are only returned. */
  readonly recovery?: RecoverySink;
  readonly recordRetry?: RecordRetry;
}

/** The store stopped taking results (or the lock was lost) during the run. */
export interface StoreFailure {
  readonly error: string;
  /** Results the store never took, in the order they finished. */
  readonly unrecorded: readonly ResourceResult[];
  /** Where they were saved; null when there is no sink or no place took them (then `recoveryError` says why). */
  readonly recoveryFile: string | null;
  readonly recoveryError: string | null;
}

export interface ApplyResult {
  readonly run: RunRecord;
  readonly status: Exclude<RunStatus, 'running'>;
  readonly counts: RunCounts;
  readonly failures: readonly { address: string; error: string }[];
  /** One per planned rollout: how far it went, which hosts changed and which did not. */
  readonly rollouts: readonly RolloutOutcome[];
  readonly storeFailure?: StoreFailure | undefined;
}

export class PlanNotApplicableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PlanNotApplicableError';
  }
}

interface ChangeNode {
  readonly key: string;
  readonly waitsFor: readonly string[];
  readonly change: PlannedChange;
}
type Node = ChangeNode | GateNode;

export async function applyPlan(options: ApplyOptions): Promise<ApplyResult> {
  const { plan, registry, store, targets } = options;
  if (hasErrors(plan.diagnostics)) throw new PlanNotApplicableError('the plan has errors and cannot be applied');
  if (plan.offline) throw new PlanNotApplicableError('the plan was made offline (against the last recorded state, not the live targets) and cannot be applied: make it again without --offline');
  const signal = options.signal ?? new AbortController().signal;
  const cancel = options.cancel ?? new AbortController().signal;
  const reporter = options.reporter ?? silentReporter;
  await registry.load(plan.changes.map((c) => c.kind).concat(Object.values(plan.targets).map((t) => t.kind)));

  const run = await store.startRun({
    stack: plan.stack,
    kind: 'apply',
    actor: options.actor,
    commit: plan.source.commit,
    author: plan.source.author,
    message: plan.source.message,
    specHash: plan.specHash,
  });
  options.onRunStarted?.(run);
  const storeLost = new AbortController();
  const recorder = new ResultRecorder(store, run.id, {
    ...(options.recordRetry ? { retry: options.recordRetry } : {}),
    onLost: (err) => storeLost.abort(err),
  });
  // Stop starting changes on an interrupt, a lost store or a lost lock.
  const stopped = AbortSignal.any([signal, storeLost.signal, ...(options.lockLost ? [options.lockLost] : [])]);
  const failures: { address: string; error: string }[] = [];
  const work = plan.changes.filter((c) => isChange(c.action) || c.recordOnly);
  reporter.started(work.filter((c) => isChange(c.action)).length, run.id);

  const outcomes = new Map<Address, ResourceResult['status']>();
  /** Every result of this run, recorded or not: the counts when the store stopped taking them. */
  const tally = emptyCounts();
  const finish = async (change: PlannedChange, result: Omit<ResourceResult, 'address' | 'action'>): Promise<void> => {
    outcomes.set(change.address, result.status);
    if (result.status === 'failed' && result.error) failures.push({ address: change.address, error: result.error });
    const record = { address: change.address, action: change.action, ...result };
    tally[result.status === 'succeeded' ? change.action : result.status] += 1;
    await recorder.record(record);
    if (isChange(change.action) || result.status !== 'succeeded') {
      reporter.finished({ change, status: result.status, error: result.error, durationMs: result.durationMs });
    }
  };

  /** A provider's notes on a successful change: in the output, and in the run's events (best effort: the result is what counts). */
  const recordNotes = async (address: Address, notes: readonly string[]): Promise<void> => {
    for (const message of notes) {
      reporter.note?.(`${address}: ${message}`);
      try {
        await store.appendEvent(run.id, { address, type: RESOURCE_NOTE, message });
      } catch (err) {
        reporter.note?.(`${address}: the note above could not be recorded in the run's history: ${messageOf(err)}`);
      }
    }
  };

  const runChange = async (change: PlannedChange): Promise<NodeOutcome> => {
    const started = performance.now();
    if (!isChange(change.action)) {
      // Unchanged but not yet in the inventory: adopt it; removed from the spec but only adopted: forget it. Never touching the live object.
      const inventory = change.forget ? null : inventoryEntry(plan, change, change.origin ?? 'adopted');
      await finish(change, { status: 'succeeded', error: null, durationMs: 0, inventory });
      return 'succeeded';
    }
    reporter.began(change);
    try {
      const provider = registry.resource(change.kind);
      if (!provider) throw new Error(`no provider for kind ${change.kind}`);
      const target = plan.targets[change.target];
      if (!target) throw new Error(`the plan has no target ${change.target}`);
      const handle = await targets.connect(storedTarget(change.target, target.kind, target.spec));
      let live: unknown;
      const notes: string[] = [];
      const context = { ...targets.contextFor(cancel), note: (message: string) => void notes.push(message) };
      if (change.refresh) {
        if (!provider.refresh) throw new Error(`${change.kind} cannot be notified: its provider has no refresh`);
        live = await provider.refresh(
          handle,
          { address: change.address, desired: change.after, live: change.before, notifiedBy: change.notifiedBy ?? [] },
          context,
        );
      } else {
        live = await provider.apply(
          handle,
          { action: change.action as Exclude<PlannedChange['action'], 'noop'>, address: change.address, desired: change.after, prior: change.prior, live: change.before },
          context,
        );
      }
      checkPromise(provider, change, live);
      await recordNotes(change.address, notes);
      const entry =
        change.action === 'delete'
          ? null
          : { ...inventoryEntry(plan, change, change.origin ?? (change.action === 'create' ? 'created' : 'adopted')), liveFingerprint: fingerprint(live) };
      await finish(change, {
        status: 'succeeded',
        error: null,
        durationMs: performance.now() - started,
        inventory: entry,
        // Recorded with the result, in one transaction: a crash from here on still runs the handlers next time.
        ...(change.notifies?.length ? { notify: change.notifies } : {}),
        ...(change.notifiedBy?.length ? { refreshed: true } : {}),
      });
      return 'succeeded';
    } catch (err) {
      await finish(change, { status: 'failed', error: messageOf(err), durationMs: performance.now() - started });
      return 'failed';
    }
  };

  const changesOn = groupBy(work, (c) => c.target);
  const schedule = new RolloutSchedule(plan.rollouts ?? [], changesOn);
  const judge = new RolloutJudge(
    schedule,
    (host) => changesOn.get(host) ?? [],
    (address) => outcomes.get(address),
    (host) => () => hostTransport(plan, targets, host),
    cancel,
  );
  const skipReasons = new Map<string, string>();
  const runGate = async (gate: GateNode): Promise<NodeOutcome> => {
    const verdict = await judge.judge(gate);
    skipReasons.set(gate.key, verdict.skipReason);
    if (verdict.message !== null) {
      reporter.note?.(verdict.message);
      if (!recorder.failure()) {
        await store.appendEvent(run.id, { address: null, type: verdict.ok ? 'rollout.batch' : 'rollout.stopped', message: verdict.message });
      }
    }
    return verdict.ok ? 'succeeded' : 'failed';
  };

  const callbacks = {
    run: (n: Node) => ('change' in n ? runChange(n.change) : runGate(n)),
    skip: (n: Node, because: string) =>
      'change' in n
        ? finish(n.change, { status: 'skipped', error: `skipped: ${skipReasons.get(because) ?? `${because} did not succeed`}`, durationMs: 0 })
        : Promise.resolve(),
    interrupted: (n: Node) =>
      'change' in n && isChange(n.change.action)
        ? finish(n.change, { status: 'skipped', error: 'interrupted before it started', durationMs: 0 })
        : Promise.resolve(),
  };
  const concurrency = Math.max(1, options.parallelism ?? DEFAULT_PARALLELISM);
  // Hosts outside any rollout: deletes first (dependents before what they depended on), then the rest.
  // Hosts in a rollout: one walk, batch after batch; on each host its deletes still go first.
  const deletesOn = groupBy(
    work.filter((c) => c.action === 'delete' && schedule.has(c.target)).map((c) => ({ target: c.target, address: c.address })),
    (d) => d.target,
  );
  const toNode = (c: PlannedChange): ChangeNode => ({
    key: c.address,
    waitsFor: [...c.waitsFor, ...schedule.waitsFor(c, (deletesOn.get(c.target) ?? []).map((d) => d.address))],
    change: c,
  });
  const deletes = work.filter((c) => c.action === 'delete' && !schedule.has(c.target)).map(toNode);
  const others: Node[] = [...work.filter((c) => c.action !== 'delete' || schedule.has(c.target)).map(toNode), ...schedule.gates];
  try {
    await walk<Node>(deletes, callbacks, { concurrency, signal: stopped });
    await walk<Node>(others, callbacks, { concurrency, signal: stopped });
    await recorder.drain();
  } finally {
    reporter.ended();
  }

  const rollouts = judge.outcomes();
  const stops = rollouts.filter((r) => r.stopped).map((r) => r.stopped!.message);
  const lost = recorder.failure();
  const lockLost = options.lockLost?.aborted === true && !signal.aborted;
  const storeFailure = lost
    ? await saveUnrecorded(options.recovery, plan.stack, run.id, messageOf(lost.error), lost.unrecorded)
    : undefined;
  const status = lost || lockLost ? 'failed' : signal.aborted ? 'interrupted' : failures.length > 0 || stops.length > 0 ? 'failed' : 'succeeded';
  const why = [
    ...(lost ? [`the state store failed: ${messageOf(lost.error)}`] : []),
    ...(lockLost ? [messageOf(options.lockLost!.reason)] : []),
    ...(failures.length > 0 ? [`${failures.length} resource(s) failed`] : []),
    ...stops,
  ].join('; ');
  const error = signal.aborted && !lost && !lockLost ? 'interrupted by a signal' : why || null;
  let finished: RunRecord;
  try {
    finished = await store.finishRun(run.id, status, error);
  } catch (err) {
    if (!lost && !lockLost) throw err;
    // The store is gone: the next run marks this one (see recovery.ts and Store.lock).
    finished = { ...run, status, error, finishedAt: new Date().toISOString(), counts: tally };
  }
  const counts = lost ? tally : finished.counts;
  return { run: finished, status, counts, failures, rollouts, ...(storeFailure ? { storeFailure } : {}) };
}

/** Hands what the store did not take to the sink; never throws (the caller reports both outcomes). */
async function saveUnrecorded(
  sink: RecoverySink | undefined,
  stack: string,
  runId: number,
  error: string,
  unrecorded: readonly ResourceResult[],
): Promise<StoreFailure> {
  if (!sink) return { error, unrecorded, recoveryFile: null, recoveryError: 'no place to save them was given' };
  try {
    return { error, unrecorded, recoveryFile: await sink.write({ stack, runId, error, results: unrecorded }), recoveryError: null };
  } catch (err) {
    return { error, unrecorded, recoveryFile: null, recoveryError: messageOf(err) };
  }
}

/** The transport of a host, for a health check's command: only host-like targets have one. */
async function hostTransport(plan: Plan, targets: TargetPool, host: Address): Promise<HostTransport> {
  const target = plan.targets[host];
  if (!target) throw new Error(`the plan has no target ${host}`);
  const handle = await targets.connect(storedTarget(host, target.kind, target.spec));
  const transport = (handle as { transport?: HostTransport }).transport;
  if (!transport) throw new Error(`${host} is a ${target.kind}: a command health check needs a host with a transport`);
  return transport;
}

function inventoryEntry(
  plan: Plan,
  change: PlannedChange,
  origin: InventoryEntry['origin'],
): Omit<InventoryEntry, 'updatedAt' | 'lastRunId'> {
  const target = plan.targets[change.target];
  return {
    address: change.address,
    kind: change.kind,
    target: change.target,
    targetKind: target?.kind ?? null,
    targetSpec: target?.spec ?? null,
    spec: change.after,
    specHash: change.specHash ?? '',
    liveFingerprint: change.liveFingerprint,
    dependsOn: change.dependsOn,
    origin,
  };
}

/** The provider promised, through its diff, that applying converges: hold it to that. */
function checkPromise(provider: AnyResourceProvider, change: PlannedChange, live: unknown): void {
  if (change.action === 'delete') {
    if (live !== null && live !== undefined) throw new Error(`provider ${provider.kind} reported the resource still present after delete`);
    return;
  }
  const after = provider.diff(change.after, live ?? null, change.after);
  if (after.action !== 'noop') {
    const fields = after.fields.map((f) => f.path).join(', ') || after.action;
    throw new Error(`provider ${provider.kind} broke its promise: after apply, ${fields} still differ from the spec`);
  }
}
