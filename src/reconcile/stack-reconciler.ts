/**
 * One reconcile pass of one stack: level-based, so it carries no event. Each
 * pass re-reads git (the branch, pinned to its current SHA) and, when a look
 * is due, the live state; it then acts on the stack's policy.
 *
 * When is the live state read (a "full" pass)? When the pinned commit moved
 * since the last full pass, a drift check is due (`driftInterval`), a sync was
 * requested, or an approved plan waits. Otherwise a pass only fetches.
 *
 * What a full pass does:
 * - invalid spec: a failed `plan` run with the diagnostics, status `invalid`,
 *   `TerminalError` (no retry until the commit moves or a sync is requested);
 * - an approved plan: applied if the saved-plan staleness check passes, else
 *   marked `stale` and replaced by a new plan;
 * - no changes: `synced` at this commit;
 * - a spec not applied yet (a new commit): `auto` applies, `approve` stores the
 *   plan as pending, `plan-only` stores it;
 * - the branch moved backwards (its head is an ancestor of the commit last
 *   applied, see branch-move.ts): the plan says so; under `auto`, a plan that
 *   deletes anything waits for approval instead of being applied;
 * - the spec already applied but the live state differs (drift): `auto` with
 *   `selfHeal` re-applies it; otherwise the drift is reported (and, under
 *   `approve`, offered as a plan to approve).
 *
 * A failed apply throws `ApplyFailedError` (backoff). Plans with errors
 * (e.g. a refused mass delete, an unreadable target) throw too.
 */
import { restoreSecrets } from '../apply/saved-plan-secrets.js';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { ApplyResult } from '../apply/apply.js';
import type { ApplyReporter } from '../apply/reporter.js';
import { formatDiagnostic, hasErrors, sortDiagnostics, type Diagnostic } from '../diag/diagnostic.js';
import { countActions, hasChanges, isChange, type Plan } from '../plan/plan.js';
import type { DesiredState } from '../plan/planner.js';
import { renderPlanText } from '../plan/render-text.js';
import { changesOf, evaluatePolicies, type PolicyReport } from '../policy/evaluate.js';
import type { SourceInfo } from '../source/source.js';
import type { Actor, ControllerStore, StackLock, StackPlanRecord, StackPlanState, StackStatusPatch, StackStatusRecord, Store } from '../state/store.js';
import { jittered } from './backoff.js';
import type { Clock } from './clock.js';
import type { StackConfig } from './config.js';
import type { EventBus, EventInput } from './events.js';
import { branchMoveOf, deletesAnything, describeMove, markMovedBackwards, type BranchMove, type ControllerPlan } from './branch-move.js';
import { ApplyFailedError, TerminalError, type PassResult } from './result.js';
import type { EngineSession, StackEngine } from './run-stack.js';

/** Hears what passes find, for metrics. */
export interface ReconcileObserver {
  resourceApplied(kind: string, status: string): void;
}

export interface ReconcilerDeps {
  readonly store: Store;
  readonly controllerStore: ControllerStore;
  readonly engine: StackEngine;
  readonly events: EventBus;
  readonly clock: Clock;
  /** This process: host and pid mark its runs (a dead replica's runs are then marked interrupted). */
  readonly actor: Actor;
  readonly replicaId: string;
  readonly observer?: ReconcileObserver | undefined;
  readonly random?: (() => number) | undefined;
}

export interface PassContext {
  readonly passId: string;
  readonly signal: AbortSignal;
  readonly log: Logger;
  readonly lock: StackLock | undefined;
}

/** What this process remembers between passes (losing it costs one extra full pass). */
interface StackMemory {
  lastCheckedCommit: string | null;
  lastFullCheckAt: number;
  handledSyncRequests: number;
  terminalCommit: string | null;
}

const MIN_REQUEUE_MS = 1_000;

export class StackReconciler {
  readonly #deps: ReconcilerDeps;
  readonly #memory = new Map<string, StackMemory>();

  constructor(deps: ReconcilerDeps) {
    this.#deps = deps;
  }

  /** Forget what was seen: the next pass of `stack` is a full one. */
  forget(stack: string): void {
    this.#memory.delete(stack);
  }

  /** Whether a sync was requested (through any replica) that no pass of this process has handled. */
  syncPending(status: StackStatusRecord): boolean {
    return status.syncRequests > this.#memoryOf(status.stack).handledSyncRequests;
  }

  async reconcile(stack: StackConfig, ctx: PassContext): Promise<PassResult> {
    const { engine, controllerStore: cs, clock } = this.#deps;
    const memory = this.#memoryOf(stack.name);
    let status = (await cs.getStackStatus(stack.name)) ?? (await cs.updateStackStatus(stack.name, { status: 'pending' }));
    // Paused: not even a fetch. Resuming asks for a sync, which makes the next pass a full one.
    if (status.paused) return { outcome: 'paused', requeueAfter: stack.intervalMs };

    const head = await engine.resolve({ repo: stack.repo, ref: stack.branch, path: stack.path });
    let source = head;
    if (status.rollback) {
      if (status.rollback.head !== null && status.rollback.head !== head.commit) {
        this.#emit(stack, ctx, { type: 'rollback.ended', runId: null, message: `a new commit ${short(head.commit)} ends the rollback to ${short(status.rollback.commit)}` });
        status = await cs.updateStackStatus(stack.name, { rollback: null });
      } else {
        source = await engine.resolve({ repo: stack.repo, ref: status.rollback.commit, path: stack.path });
      }
    }
    if (status.headCommit !== head.commit) status = await cs.updateStackStatus(stack.name, { headCommit: head.commit });

    const planRecord = await cs.getPlan(stack.name);
    // Only the approve policy applies approved plans (the policy may have changed since), and auto those it held
    // back because the branch moved backwards.
    const approvable = stack.policy === 'approve' || (stack.policy === 'auto' && branchMoveOf(planRecord?.plan) !== null);
    const approved = planRecord?.state === 'approved' && approvable ? planRecord : undefined;
    const syncRequested = status.syncRequests > memory.handledSyncRequests;
    const driftDue = clock.now() >= memory.lastFullCheckAt + stack.driftIntervalMs;
    const moved = source.commit !== memory.lastCheckedCommit;
    if (!moved && !driftDue && !syncRequested && !approved) {
      return { outcome: 'unchanged', requeueAfter: this.#nextDelay(stack, memory) };
    }
    if (!moved && !syncRequested && !approved && memory.terminalCommit === source.commit) {
      // The spec at this commit was invalid: nothing will change until a new commit.
      memory.lastFullCheckAt = clock.now();
      throw new TerminalError(status.error ?? `the spec at commit ${short(source.commit)} is invalid`);
    }
    ctx.log.info({ commit: source.commit, moved, driftDue, syncRequested, approved: Boolean(approved) }, 'full pass');
    memory.handledSyncRequests = status.syncRequests;

    const desired = await engine.load(source.dir);
    if (hasErrors(desired.diagnostics)) {
      await this.#recordInvalidSpec(stack, ctx, source, desired.diagnostics, desired.specHash);
      memory.terminalCommit = source.commit;
      memory.lastCheckedCommit = source.commit;
      memory.lastFullCheckAt = clock.now();
      throw new TerminalError(`the spec at commit ${short(source.commit)} is invalid: ${firstError(desired.diagnostics)}`);
    }
    memory.terminalCommit = null;

    // A rollback is asked for; a branch that moved back under the controller is not: say so (branch-move.ts).
    const movedBack = source === head ? await this.#movedBackwards(stack, ctx, status, head) : null;
    const session = engine.session(ctx.signal);
    try {
      const result = await this.#reconcileLive(stack, ctx, session, { source, status, approved, desired, movedBackwards: movedBack });
      memory.lastCheckedCommit = source.commit;
      memory.lastFullCheckAt = clock.now();
      return { outcome: result, requeueAfter: this.#nextDelay(stack, memory) };
    } finally {
      await session.close();
    }
  }

  async #reconcileLive(
    stack: StackConfig,
    ctx: PassContext,
    session: EngineSession,
    input: {
      source: SourceInfo;
      status: StackStatusRecord;
      approved: StackPlanRecord | undefined;
      desired: DesiredState;
      movedBackwards: BranchMove | null;
    },
  ): Promise<PassResult['outcome']> {
    const { controllerStore: cs } = this.#deps;
    const { source, status } = input;

    if (input.approved) {
      // The stored plan holds only the digests of its secrets: their values come back from the spec just loaded.
      const restored = restoreSecrets(input.approved.plan as Plan, input.desired);
      const saved = restored.plan;
      const reasons = [...restored.reasons, ...(await session.staleness(saved, input.desired.specHash))];
      // An approved plan is checked with who approved it: a policy may ask for approvers.
      const report = reasons.length === 0 ? checkPolicies(input.desired, stack, saved, input.approved.decidedBy ? [input.approved.decidedBy] : []) : undefined;
      if (report?.denied) {
        await cs.transitionPlan(stack.name, 'approved', 'stale', { id: input.approved.id });
        return this.#deny(stack, ctx, saved, report, `the approved plan ${input.approved.id}`);
      }
      if (reasons.length === 0) {
        const result = await this.#apply(stack, ctx, session, saved, input.approved.decidedBy ?? 'approved', 'approved plan');
        await cs.transitionPlan(stack.name, 'approved', 'applied', { id: input.approved.id });
        await this.#afterApply(stack, result, saved, { drifted: 0, storePlan: false });
        return 'applied';
      }
      await cs.transitionPlan(stack.name, 'approved', 'stale', { id: input.approved.id });
      this.#emit(stack, ctx, { type: 'plan.stale', runId: null, message: `the approved plan ${input.approved.id} is stale and was not applied: ${reasons.join('; ')}`, data: { reasons } });
      ctx.log.warn({ planId: input.approved.id, reasons }, 'approved plan is stale; planning again');
    }

    const planned = await session.plan({
      stack: stack.name,
      desired: input.desired,
      source: planSource(source),
      allowMassDelete: stack.allowMassDelete,
      pruneAdopted: stack.pruneAdopted,
    });
    const move = input.movedBackwards;
    const plan: ControllerPlan = move ? markMovedBackwards(planned, move) : planned;
    if (hasErrors(plan.diagnostics)) {
      // The planner speaks to CLI users; under the controller the switch is the stack's setting.
      const message = firstError(plan.diagnostics).replace('run again with --allow-mass-delete', 'set allowMassDelete: true on the stack in the controller configuration');
      await this.#putPlan(stack, plan, 'latest');
      await cs.updateStackStatus(stack.name, { status: 'failed', error: `the plan has errors: ${message}`, owner: this.#deps.replicaId });
      this.#emit(stack, ctx, { type: 'plan.failed', runId: null, message });
      throw new Error(`the plan of commit ${short(source.commit)} has errors: ${message}`);
    }

    const needsApply = hasChanges(plan) || plan.changes.some((c) => c.recordOnly);
    const changed = plan.changes.filter((c) => isChange(c.action)).length;
    const lastApplied = status.lastAppliedSpecHash ?? (await this.#lastAppliedSpecHash(stack.name));
    const isNew = plan.specHash !== lastApplied;

    if (!needsApply) {
      await this.#putPlan(stack, plan, 'latest');
      await cs.updateStackStatus(stack.name, {
        status: 'synced',
        lastAppliedCommit: source.commit,
        lastAppliedSpecHash: plan.specHash,
        drifted: 0,
        error: null,
        owner: this.#deps.replicaId,
      });
      return 'in-sync';
    }

    if (!isNew) {
      // The spec is what was applied last: every change is drift.
      this.#emit(stack, ctx, { type: 'drift.detected', runId: null, message: `${changed} resource(s) drifted from commit ${short(source.commit)}`, data: { addresses: plan.changes.filter((c) => isChange(c.action)).map((c) => c.address) } });
      if (stack.policy === 'auto' && stack.selfHeal) {
        const report = checkPolicies(input.desired, stack, plan, []);
        if (report.denied) return this.#deny(stack, ctx, plan, report, 'the self-heal plan');
        const result = await this.#apply(stack, ctx, session, plan, 'controller', 'self-heal');
        await this.#afterApply(stack, result, plan, { drifted: 0, storePlan: true });
        return 'healed';
      }
      const pending = stack.policy === 'approve' ? await this.#offer(stack, ctx, plan) : (await this.#putPlan(stack, plan, 'latest'), false);
      await cs.updateStackStatus(stack.name, { status: 'drifted', drifted: changed, error: null, owner: this.#deps.replicaId });
      return pending ? 'awaiting-approval' : 'drifted';
    }

    if (move) {
      this.#emit(stack, ctx, { type: 'branch.moved-backwards', runId: null, message: `${describeMove(move)}: the plan reverts to ${short(move.to)}`, data: { ...move } });
    }
    switch (stack.policy) {
      case 'auto': {
        if (move && deletesAnything(plan)) {
          await this.#offer(stack, ctx, plan);
          await cs.updateStackStatus(stack.name, { status: 'awaiting-approval', error: null, owner: this.#deps.replicaId });
          ctx.log.warn({ ...move }, 'the branch moved backwards and the plan deletes resources: waiting for approval although the policy is auto');
          return 'awaiting-approval';
        }
        const report = checkPolicies(input.desired, stack, plan, []);
        if (report.denied) return this.#deny(stack, ctx, plan, report, `the plan of commit ${short(source.commit)}`);
        const result = await this.#apply(stack, ctx, session, plan, 'controller', `commit ${short(source.commit)}`);
        await this.#afterApply(stack, result, plan, { drifted: 0, storePlan: true });
        return 'applied';
      }
      case 'approve':
        await this.#offer(stack, ctx, plan);
        await cs.updateStackStatus(stack.name, { status: 'awaiting-approval', error: null, owner: this.#deps.replicaId });
        return 'awaiting-approval';
      case 'plan-only':
        await this.#putPlan(stack, plan, 'latest');
        await cs.updateStackStatus(stack.name, { status: 'out-of-sync', error: null, owner: this.#deps.replicaId });
        return 'planned';
    }
  }

  /** A plan a policy denies: stored as the latest plan, not applied; the status and an event say why. */
  async #deny(stack: StackConfig, ctx: PassContext, plan: Plan, report: PolicyReport, what: string): Promise<'denied'> {
    const denials = report.verdicts.filter((v) => v.effect === 'deny');
    const message = `${what} is denied by policy: ${denials.map((v) => `${v.message} (Policy/${v.policy})`).join('; ')}`;
    await this.#putPlan(stack, plan, 'latest');
    await this.#deps.controllerStore.updateStackStatus(stack.name, { status: 'denied', error: `denied by policy: ${denials.map((v) => v.message).join('; ')}`, owner: this.#deps.replicaId });
    this.#emit(stack, ctx, { type: 'plan.denied', runId: null, message, data: { verdicts: report.verdicts } });
    ctx.log.warn({ verdicts: report.verdicts.length }, 'plan denied by policy; not applied');
    return 'denied';
  }

  /** Stores the plan as pending approval, unless the same plan already waits. Returns true. */
  async #offer(stack: StackConfig, ctx: PassContext, plan: Plan): Promise<boolean> {
    const current = await this.#deps.controllerStore.getPlan(stack.name);
    if (current?.state === 'pending' && samePlan(current.plan as Plan, plan)) return true;
    const id = await this.#putPlan(stack, plan, 'pending');
    const n = countActions(plan.changes);
    this.#emit(stack, ctx, {
      type: 'plan.pending',
      runId: null,
      message: `plan ${id} for commit ${short(plan.source.commit)} awaits approval: ${n.create} to create, ${n.update} to update, ${n.replace} to replace, ${n.delete} to delete`,
      data: { planId: id, commit: plan.source.commit },
    });
    return true;
  }

  async #putPlan(stack: StackConfig, plan: Plan, state: StackPlanState): Promise<string> {
    const id = randomUUID().slice(0, 8);
    await this.#deps.controllerStore.putPlan({
      stack: stack.name,
      id,
      state,
      plan,
      text: renderPlanText(plan),
      commit: plan.source.commit,
      specHash: plan.specHash,
      createdAt: plan.createdAt,
    });
    return id;
  }

  async #apply(stack: StackConfig, ctx: PassContext, session: EngineSession, plan: Plan, user: string, why: string): Promise<ApplyResult> {
    const { observer, events } = this.#deps;
    let runId: number | null = null;
    const emit = (input: Omit<EventInput, 'stack' | 'passId' | 'runId'>): void => void events.emit({ ...input, stack: stack.name, passId: ctx.passId, runId });
    const reporter: ApplyReporter = {
      started: (total, id) => {
        runId = id;
        emit({ type: 'apply.started', message: `applying ${total} change(s) of commit ${short(plan.source.commit)} (${why})`, data: { commit: plan.source.commit } });
      },
      began: (change) => emit({ type: 'resource.started', message: `${change.action} ${change.address}`, data: { address: change.address, action: change.action } }),
      finished: (o) => {
        observer?.resourceApplied(o.change.kind, o.status);
        emit({ type: 'resource.finished', message: `${o.change.action} ${o.change.address}: ${o.status}${o.error ? `: ${o.error}` : ''}`, data: { address: o.change.address, action: o.change.action, status: o.status, kind: o.change.kind } });
      },
      ended: () => undefined,
    };
    const result = await session.apply({
      plan,
      actor: { ...this.#deps.actor, user },
      parallelism: stack.parallelism,
      reporter,
      onRunStarted: (run) => {
        ctx.log.info({ storeRunId: run.id, commit: plan.source.commit, why }, 'apply started');
        void this.#deps.store.appendEvent(run.id, { address: null, type: 'controller', message: `applied by the controller (${why}; policy ${stack.policy}; pass ${ctx.passId})` }).catch(() => undefined);
        void ctx.lock?.setRunId?.(run.id).catch(() => undefined);
        const move = branchMoveOf(plan);
        if (move) void this.#deps.store.appendEvent(run.id, { address: null, type: 'branch.moved-backwards', message: `${describeMove(move)}: this run applies the older commit` }).catch(() => undefined);
      },
    });
    const c = result.counts;
    ctx.log.info({ storeRunId: result.run.id, status: result.status, counts: c }, 'apply finished');
    emit({ type: 'apply.finished', message: `run ${result.run.id} ${result.status}: ${c.create} created, ${c.update} updated, ${c.replace} replaced, ${c.delete} deleted, ${c.failed} failed, ${c.skipped} skipped`, data: { status: result.status, counts: c } });
    return result;
  }

  async #afterApply(stack: StackConfig, result: ApplyResult, plan: Plan, values: { drifted: number; storePlan: boolean }): Promise<void> {
    const { controllerStore: cs } = this.#deps;
    // The plan just applied becomes the stack's current plan (an approved one already is).
    if (values.storePlan) await this.#putPlan(stack, plan, 'applied');
    if (result.status === 'succeeded') {
      await cs.updateStackStatus(stack.name, {
        status: 'synced',
        lastAppliedCommit: plan.source.commit,
        lastAppliedSpecHash: plan.specHash,
        lastRunId: result.run.id,
        drifted: values.drifted,
        error: null,
        owner: this.#deps.replicaId,
      });
      return;
    }
    const first = result.failures[0];
    const error = `run ${result.run.id} ${result.status}${first ? `: ${first.address}: ${first.error}` : ''}`;
    await cs.updateStackStatus(stack.name, { status: 'failed', lastRunId: result.run.id, error, owner: this.#deps.replicaId });
    throw new ApplyFailedError(error, result.run.id);
  }

  /** An invalid spec: a failed `plan` run carrying every error, visible in history and the API. */
  async #recordInvalidSpec(stack: StackConfig, ctx: PassContext, source: SourceInfo, diagnostics: readonly Diagnostic[], specHash: string): Promise<void> {
    const { store, controllerStore: cs } = this.#deps;
    const errors = sortDiagnostics(diagnostics).filter((d) => d.severity === 'error');
    const run = await store.startRun({ stack: stack.name, kind: 'plan', actor: { ...this.#deps.actor, user: 'controller' }, commit: source.commit, author: source.author, message: source.message, specHash });
    for (const d of errors) await store.appendEvent(run.id, { address: d.address ?? null, type: 'diagnostic', message: formatDiagnostic(d) });
    const summary = `${errors.length} error(s) in the spec at commit ${short(source.commit)}: ${firstError(errors)}`;
    await store.finishRun(run.id, 'failed', summary);
    const patch: StackStatusPatch = { status: 'invalid', error: summary, lastRunId: run.id, owner: this.#deps.replicaId };
    await cs.updateStackStatus(stack.name, patch);
    this.#emit(stack, ctx, { type: 'plan.failed', runId: run.id, message: summary, data: { diagnostics: errors.map(formatDiagnostic) } });
    ctx.log.warn({ storeRunId: run.id, commit: source.commit, errors: errors.length }, 'invalid spec: waiting for a new commit');
  }

  /** The move when the branch head is an ancestor of the commit last applied (never for the commit itself). */
  async #movedBackwards(stack: StackConfig, ctx: PassContext, status: StackStatusRecord, head: SourceInfo): Promise<BranchMove | null> {
    const from = status.lastAppliedCommit;
    const to = head.commit;
    if (!from || !to || from === to) return null;
    try {
      return (await this.#deps.engine.isAncestor({ repo: stack.repo, ancestor: to, descendant: from })) ? { branch: stack.branch, from, to } : null;
    } catch (err) {
      // The commit last applied may be gone from the mirror: then the history cannot say, and nothing is held back.
      ctx.log.warn({ err, from, to }, 'cannot tell whether the branch moved backwards');
      return null;
    }
  }

  async #lastAppliedSpecHash(stack: string): Promise<string | null> {
    const runs = await this.#deps.store.listRuns({ stack, limit: 50 });
    return runs.find((r) => r.kind === 'apply' && r.status === 'succeeded')?.specHash ?? null;
  }

  #nextDelay(stack: StackConfig, memory: StackMemory): number {
    const poll = jittered(stack.intervalMs, 0.1, this.#deps.random);
    const driftIn = memory.lastFullCheckAt + stack.driftIntervalMs - this.#deps.clock.now();
    return Math.max(MIN_REQUEUE_MS, Math.round(Math.min(poll, driftIn)));
  }

  #memoryOf(stack: string): StackMemory {
    let m = this.#memory.get(stack);
    if (!m) this.#memory.set(stack, (m = { lastCheckedCommit: null, lastFullCheckAt: Number.NEGATIVE_INFINITY, handledSyncRequests: 0, terminalCommit: null }));
    return m;
  }

  #emit(stack: StackConfig, ctx: PassContext, input: Omit<EventInput, 'stack' | 'passId'>): void {
    this.#deps.events.emit({ ...input, stack: stack.name, passId: ctx.passId });
  }
}

function planSource(info: SourceInfo): Plan['source'] {
  return { dir: info.dir, repo: info.repo, ref: info.ref, commit: info.commit, author: info.author, message: info.message, dirty: info.dirty };
}

/** The same changes against the same state: a pending plan need not be replaced (nor re-approved). */
function samePlan(a: Plan, b: Plan): boolean {
  if (a.specHash !== b.specHash || a.priorSerial !== b.priorSerial || a.changes.length !== b.changes.length) return false;
  return a.changes.every((c, i) => {
    const d = b.changes[i];
    return d !== undefined && c.address === d.address && c.action === d.action && c.liveFingerprint === d.liveFingerprint;
  });
}

function firstError(diagnostics: readonly Diagnostic[]): string {
  const d = sortDiagnostics(diagnostics).find((x) => x.severity === 'error');
  return d ? formatDiagnostic(d) : 'unknown error';
}

export function short(commit: string | null | undefined): string {
  return commit ? commit.slice(0, 12) : '(none)';
}

/** The stack's policies against a plan, with the approvers recorded for it. */
function checkPolicies(desired: DesiredState, stack: StackConfig, plan: Plan, approvals: readonly string[]): PolicyReport {
  return evaluatePolicies(desired.policies ?? [], changesOf(plan), { stack: { name: stack.name, labels: stack.labels }, approvals });
}
