/**
 * A StackEngine over an in-memory "git" (commits of key → value items) and an
 * in-memory live world, recording runs in a real store. For unit tests of the
 * reconcile loop's decisions; the real engine is exercised end to end.
 */
import type { ApplyResult } from '../../apply/apply.js';
import { error } from '../../diag/diagnostic.js';
import type { Plan, PlannedChange } from '../../plan/plan.js';
import type { DesiredState } from '../../plan/planner.js';
import type { SourceInfo } from '../../source/source.js';
import type { Store } from '../../state/store.js';
import type { ApplyInput, EngineSession, PlanInput, StackEngine, StackSource } from '../run-stack.js';

export interface FakeCommit {
  readonly items: Record<string, string>;
  /** The commit it was made on (the head at the time), or null for the first. */
  readonly parent?: string | null;
  /** Spec errors: the commit is invalid. */
  readonly errors?: readonly string[];
}

export class FakeEngine implements StackEngine {
  readonly commits = new Map<string, FakeCommit>();
  head = '';
  readonly live = new Map<string, string>();
  /** Bumped on every apply that changed something: a saved plan records it. */
  serial = 0;
  readonly calls = { resolve: 0, load: 0, plan: 0, apply: 0 };
  readonly appliedCommits: (string | null)[] = [];
  /** Make the next `resolve` calls throw. */
  resolveFailures = 0;
  /** When set, every apply waits for it before changing anything. */
  applyGate: Promise<void> | undefined;
  /** Applies that wait until aborted. */
  hangApplies = false;

  constructor(private readonly store: Store) {}

  /** A new commit on top of the head, which it becomes. */
  commit(sha: string, items: Record<string, string>, errors?: string[]): void {
    this.commits.set(sha, { items, errors, parent: this.head === '' ? null : this.head });
    this.head = sha;
  }

  /** Moves the branch to `sha` without a commit, like `git push --force`. */
  forcePush(sha: string): void {
    if (!this.commits.has(sha)) throw new Error(`no commit ${sha}`);
    this.head = sha;
  }

  async isAncestor(query: { ancestor: string; descendant: string }): Promise<boolean> {
    for (let c: string | null | undefined = query.descendant; c; c = this.commits.get(c)?.parent) if (c === query.ancestor) return true;
    return false;
  }

  async resolve(source: StackSource): Promise<SourceInfo> {
    this.calls.resolve += 1;
    if (this.resolveFailures > 0) {
      this.resolveFailures -= 1;
      throw new Error('cannot fetch: connection refused');
    }
    const sha = source.ref === 'main' || source.ref === 'HEAD' ? this.head : source.ref;
    if (!this.commits.has(sha)) throw new Error(`ref "${source.ref}" not found`);
    return { dir: sha, repo: source.repo, ref: source.ref, commit: sha, author: 'Ada <ada@example.com>', message: `commit ${sha}`, dirty: null };
  }

  async load(dir: string): Promise<DesiredState> {
    this.calls.load += 1;
    const c = this.commits.get(dir)!;
    return {
      targets: [],
      resources: [],
      specHash: `spec:${JSON.stringify(c.items)}`,
      diagnostics: (c.errors ?? []).map((e) => error(e, { source: { file: 'app.yaml', line: 3, col: 1 } })),
      ...({ items: c.items } as object),
    };
  }

  session(signal: AbortSignal): EngineSession {
    return {
      plan: async (input) => this.#plan(input),
      staleness: async (plan, currentSpecHash) => {
        const reasons: string[] = [];
        if (plan.specHash !== currentSpecHash) reasons.push('the spec changed since the plan was made');
        if (plan.priorSerial !== this.serial) reasons.push('another apply ran');
        for (const c of plan.changes) if ((this.live.get(c.address) ?? null) !== c.liveFingerprint) reasons.push(`${c.address} moved`);
        return reasons;
      },
      apply: async (input) => this.#apply(input, signal),
      close: async () => undefined,
    };
  }

  #plan(input: PlanInput): Plan {
    this.calls.plan += 1;
    const items = (input.desired as unknown as { items: Record<string, string> }).items;
    const changes: PlannedChange[] = [];
    const change = (address: string, action: PlannedChange['action'], after: string | null): PlannedChange => ({
      address,
      kind: 'Item',
      target: 'Bucket/b',
      action,
      before: this.live.get(address) ?? null,
      after,
      prior: null,
      fields: [],
      waitsFor: [],
      dependsOn: [],
      specHash: null,
      liveFingerprint: this.live.get(address) ?? null,
      managed: true,
      origin: 'created',
      recordOnly: false,
    });
    for (const [k, v] of Object.entries(items)) {
      const live = this.live.get(k);
      changes.push(change(k, live === undefined ? 'create' : live === v ? 'noop' : 'update', v));
    }
    for (const k of this.live.keys()) if (!(k in items)) changes.push(change(k, 'delete', null));
    return {
      formatVersion: 1,
      stack: input.stack,
      createdAt: new Date().toISOString(),
      source: input.source,
      specHash: input.desired.specHash,
      priorSerial: this.serial,
      targets: {},
      changes,
      diagnostics: [],
    };
  }

  async #apply(input: ApplyInput, signal: AbortSignal): Promise<ApplyResult> {
    this.calls.apply += 1;
    const { plan } = input;
    const run = await this.store.startRun({ stack: plan.stack, kind: 'apply', actor: input.actor, commit: plan.source.commit, author: null, message: null, specHash: plan.specHash });
    input.onRunStarted(run);
    input.reporter.started(plan.changes.filter((c) => c.action !== 'noop').length, run.id);
    if (this.applyGate) await this.applyGate;
    if (this.hangApplies) await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    const interrupted = signal.aborted;
    if (!interrupted) {
      for (const c of plan.changes) {
        if (c.action === 'noop') continue;
        if (c.action === 'delete') this.live.delete(c.address);
        else this.live.set(c.address, c.after as string);
        input.reporter.finished({ change: c, status: 'succeeded', error: null, durationMs: 0 });
      }
      this.serial += 1;
      this.appliedCommits.push(plan.source.commit);
    }
    const status = interrupted ? 'interrupted' : 'succeeded';
    const finished = await this.store.finishRun(run.id, status, interrupted ? 'interrupted by a signal' : null);
    return { run: finished, status, counts: finished.counts, failures: [], rollouts: [] };
  }
}
