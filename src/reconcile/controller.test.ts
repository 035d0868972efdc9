import os from 'node:os';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../state/sqlite/sqlite-store.js';
import { controllerStoreOf, type ControllerStore } from '../state/store.js';
import type { StackConfig } from './config.js';
import { Controller, type ControllerObserver, type RunnerOutcome } from './controller.js';
import { EventBus } from './events.js';
import { FakeEngine } from './testing/fake-engine.js';
import { FakeClock, settle } from './testing/fake-clock.js';

const SECOND = 1_000;

function stackConfig(overrides: Partial<StackConfig> = {}): StackConfig {
  return {
    name: 'prod',
    repo: '/srv/git/infra.git',
    branch: 'main',
    path: '.',
    policy: 'auto',
    intervalMs: 60 * SECOND,
    driftIntervalMs: 300 * SECOND,
    selfHeal: false,
    allowMassDelete: false,
    pruneAdopted: false,
    parallelism: 4,
    webhookSecret: undefined,
    labels: {},
    ...overrides,
  };
}

interface Harness {
  clock: FakeClock;
  store: SqliteStore;
  cs: ControllerStore;
  engine: FakeEngine;
  events: EventBus;
  outcomes: RunnerOutcome[];
  controller: Controller;
  newController(replicaId: string): Controller;
}

const open: { stop(): Promise<void> }[] = [];
afterEach(async () => {
  for (const o of open.splice(0)) await o.stop();
});

async function harness(stack: StackConfig | readonly StackConfig[], extra: { passTimeoutMs?: number } = {}): Promise<Harness> {
  const clock = new FakeClock();
  const store = await SqliteStore.open(':memory:');
  const cs = controllerStoreOf(store);
  const engine = new FakeEngine(store);
  const events = new EventBus();
  const outcomes: RunnerOutcome[] = [];
  const observer: ControllerObserver = {
    passFinished: (_s, outcome) => void outcomes.push(outcome),
    stackState: () => undefined,
    resourceApplied: () => undefined,
  };
  const newController = (replicaId: string): Controller => {
    const c = new Controller({
      stacks: Array.isArray(stack) ? stack : [stack as StackConfig],
      store,
      controllerStore: cs,
      engine,
      events,
      clock,
      logger: pino({ level: 'silent' }),
      actor: { user: 'controller', host: os.hostname(), pid: process.pid },
      replicaId,
      concurrency: 2,
      passTimeoutMs: extra.passTimeoutMs ?? 600 * SECOND,
      observer,
      random: () => 0.5,
      leaseRetryMs: 5 * SECOND,
    });
    open.push({ stop: () => c.stop(0) });
    return c;
  };
  const controller = newController('replica-a');
  open.push({ stop: () => store.close() });
  return { clock, store, cs, engine, events, outcomes, controller, newController };
}

describe('Controller: policies', () => {
  it('auto: applies each new commit once; a poll on the same commit only fetches', async () => {
    const h = await harness(stackConfig());
    h.engine.commit('c1', { a: '1' });
    h.controller.start();
    await settle();
    expect(h.engine.live.get('a')).toBe('1');
    expect(await h.cs.getStackStatus('prod')).toMatchObject({ status: 'synced', lastAppliedCommit: 'c1', headCommit: 'c1', drifted: 0 });

    await h.clock.advance(60 * SECOND);
    expect(h.engine.calls.plan).toBe(1);
    expect(h.engine.calls.resolve).toBe(2);

    h.engine.commit('c2', { a: '2', b: '1' });
    h.controller.trigger('prod');
    await settle();
    expect(Object.fromEntries(h.engine.live)).toEqual({ a: '2', b: '1' });
    expect(h.engine.appliedCommits).toEqual(['c1', 'c2']);
    expect((await h.store.listRuns({ stack: 'prod' })).map((r) => [r.commit, r.status])).toEqual([
      ['c2', 'succeeded'],
      ['c1', 'succeeded'],
    ]);
  });

  it('auto without selfHeal reports drift found by the drift timer and changes nothing', async () => {
    const h = await harness(stackConfig());
    h.engine.commit('c1', { a: '1', b: '1' });
    h.controller.start();
    await settle();
    h.engine.live.set('a', 'edited by hand');
    await h.clock.advance(299 * SECOND);
    expect((await h.cs.getStackStatus('prod'))?.status).toBe('synced');
    await h.clock.advance(2 * SECOND);
    expect(await h.cs.getStackStatus('prod')).toMatchObject({ status: 'drifted', drifted: 1, lastAppliedCommit: 'c1' });
    expect(h.engine.live.get('a')).toBe('edited by hand');
    expect(h.engine.calls.apply).toBe(1);
    expect(h.events.recent('prod').some((e) => e.type === 'drift.detected')).toBe(true);
  });

  it('auto with selfHeal re-applies the pinned commit when drift is found', async () => {
    const h = await harness(stackConfig({ selfHeal: true }));
    h.engine.commit('c1', { a: '1' });
    h.controller.start();
    await settle();
    h.engine.live.set('a', 'edited by hand');
    h.engine.live.set('stray', 'x');
    await h.clock.advance(301 * SECOND);
    expect(Object.fromEntries(h.engine.live)).toEqual({ a: '1' });
    expect(h.engine.appliedCommits).toEqual(['c1', 'c1']);
    expect(h.outcomes).toContain('healed');
    expect(await h.cs.getStackStatus('prod')).toMatchObject({ status: 'synced', drifted: 0 });
  });

  it('approve: plans and waits; applies the approved plan; refuses a stale one and plans again', async () => {
    const h = await harness(stackConfig({ policy: 'approve' }));
    h.engine.commit('c1', { a: '1' });
    h.controller.start();
    await settle();
    expect(h.engine.calls.apply).toBe(0);
    const pending = await h.cs.getPlan('prod');
    expect(pending).toMatchObject({ state: 'pending', commit: 'c1' });
    expect(await h.cs.getStackStatus('prod')).toMatchObject({ status: 'awaiting-approval' });

    // Polls keep the same pending plan (an operator may be reading it).
    await h.clock.advance(61 * SECOND);
    expect((await h.cs.getPlan('prod'))?.id).toBe(pending!.id);

    await h.cs.transitionPlan('prod', 'pending', 'approved', { id: pending!.id, by: 'alice' });
    await h.controller.requestSync('prod');
    await settle();
    expect(h.engine.live.get('a')).toBe('1');
    expect((await h.cs.getPlan('prod'))?.state).toBe('applied');
    const [run] = await h.store.listRuns({ stack: 'prod' });
    expect(run).toMatchObject({ status: 'succeeded', commit: 'c1', actor: { user: 'alice' } });

    // A plan approved after the live state moved is not applied.
    h.engine.commit('c2', { a: '2' });
    h.controller.trigger('prod');
    await settle();
    const second = await h.cs.getPlan('prod');
    expect(second).toMatchObject({ state: 'pending', commit: 'c2' });
    h.engine.live.set('a', 'moved');
    await h.cs.transitionPlan('prod', 'pending', 'approved', { id: second!.id, by: 'alice' });
    await h.controller.requestSync('prod');
    await settle();
    expect(h.engine.live.get('a')).toBe('moved');
    expect(h.events.recent('prod').some((e) => e.type === 'plan.stale')).toBe(true);
    const third = await h.cs.getPlan('prod');
    expect(third).toMatchObject({ state: 'pending', commit: 'c2' });
    expect(third!.id).not.toBe(second!.id);
  });

  it('plan-only: reports plans and drift, never applies', async () => {
    const h = await harness(stackConfig({ policy: 'plan-only', selfHeal: true }));
    h.engine.commit('c1', { a: '1' });
    h.controller.start();
    await settle();
    expect(h.engine.calls.apply).toBe(0);
    expect(await h.cs.getStackStatus('prod')).toMatchObject({ status: 'out-of-sync', lastAppliedCommit: null });
    expect((await h.cs.getPlan('prod'))?.text).toContain('+ a on Bucket/b');
    await h.clock.advance(301 * SECOND);
    expect(h.engine.calls.apply).toBe(0);
  });
});

describe('Controller: a branch that moved backwards', () => {
  it('auto: a force-push to an older commit whose plan deletes waits for approval, says so, and applies once approved', async () => {
    const h = await harness(stackConfig());
    h.engine.commit('c1', { a: '1' });
    h.controller.start();
    await settle();
    h.engine.commit('c2', { a: '2', b: '1' });
    h.controller.trigger('prod');
    await settle();
    expect(Object.fromEntries(h.engine.live)).toEqual({ a: '2', b: '1' });

    h.engine.forcePush('c1');
    h.controller.trigger('prod');
    await settle();
    expect(Object.fromEntries(h.engine.live)).toEqual({ a: '2', b: '1' });
    expect(h.outcomes.at(-1)).toBe('awaiting-approval');
    expect(await h.cs.getStackStatus('prod')).toMatchObject({ status: 'awaiting-approval', headCommit: 'c1', lastAppliedCommit: 'c2' });
    const pending = await h.cs.getPlan('prod');
    expect(pending).toMatchObject({ state: 'pending', commit: 'c1', plan: { branchMovedBackwards: { branch: 'main', from: 'c2', to: 'c1' } } });
    expect(pending!.text).toContain('warning: the branch main moved backwards from c2 to c1');
    expect(h.events.recent('prod').find((e) => e.type === 'branch.moved-backwards')).toMatchObject({ message: expect.stringContaining('moved backwards from c2 to c1'), data: { from: 'c2', to: 'c1' } });
    // Polls on the same head do not apply it either.
    await h.clock.advance(61 * SECOND);
    expect(h.engine.live.has('b')).toBe(true);

    await h.cs.transitionPlan('prod', 'pending', 'approved', { id: pending!.id, by: 'otto' });
    await h.controller.requestSync('prod');
    await settle();
    expect(Object.fromEntries(h.engine.live)).toEqual({ a: '1' });
    expect(await h.cs.getStackStatus('prod')).toMatchObject({ status: 'synced', lastAppliedCommit: 'c1' });
    const [run] = await h.store.listRuns({ stack: 'prod', limit: 1 });
    expect(run).toMatchObject({ commit: 'c1', status: 'succeeded', actor: { user: 'otto' } });
    await settle();
    expect((await h.store.listEvents(run!.id)).map((e) => e.type)).toContain('branch.moved-backwards');
  });

  it('auto: moving back without deleting anything applies at once, with the warning on the plan', async () => {
    const h = await harness(stackConfig());
    h.engine.commit('c1', { a: '1' });
    h.controller.start();
    await settle();
    h.engine.commit('c2', { a: '2' });
    h.controller.trigger('prod');
    await settle();
    h.engine.forcePush('c1');
    h.controller.trigger('prod');
    await settle();
    expect(h.engine.live.get('a')).toBe('1');
    expect(h.engine.appliedCommits).toEqual(['c1', 'c2', 'c1']);
    expect(await h.cs.getPlan('prod')).toMatchObject({ state: 'applied', plan: { branchMovedBackwards: { from: 'c2', to: 'c1' } } });
  });

  it('a new commit on top is not a move backwards, nor is a rollback asked for through the API', async () => {
    const h = await harness(stackConfig());
    h.engine.commit('c1', { a: '1', b: '1' });
    h.controller.start();
    await settle();
    h.engine.commit('c2', { a: '1' });
    h.controller.trigger('prod');
    await settle();
    expect(h.engine.live.has('b')).toBe(false);
    expect((await h.cs.getPlan('prod'))?.plan).not.toHaveProperty('branchMovedBackwards');
    await h.cs.updateStackStatus('prod', { rollback: { commit: 'c1', head: 'c2' } });
    await h.controller.requestSync('prod');
    await settle();
    expect(h.engine.live.get('b')).toBe('1');
    expect(h.events.recent('prod').some((e) => e.type === 'branch.moved-backwards')).toBe(false);
  });
});

describe('Controller: the loop', () => {
  it('an invalid spec is a terminal error: a failed plan run, nothing applied, no retry until a new commit', async () => {
    const h = await harness(stackConfig());
    h.engine.commit('c1', { a: '1' });
    h.controller.start();
    await settle();
    h.engine.commit('bad', { a: '2' }, ['spec.content: expected string']);
    h.controller.trigger('prod');
    await settle();
    expect(h.engine.live.get('a')).toBe('1');
    const status = await h.cs.getStackStatus('prod');
    expect(status).toMatchObject({ status: 'invalid', lastAppliedCommit: 'c1' });
    expect(status?.error).toContain('app.yaml:3:1: spec.content: expected string');
    const [failed] = await h.store.listRuns({ stack: 'prod' });
    expect(failed).toMatchObject({ kind: 'plan', status: 'failed', commit: 'bad' });
    expect((await h.store.listEvents(failed!.id)).map((e) => e.message)).toEqual(['app.yaml:3:1: spec.content: expected string']);
    expect(h.outcomes.at(-1)).toBe('terminal');

    // No backoff retries: the next look is the poll, and it does not load the bad commit again.
    expect(h.controller.runtime('prod').nextPassInMs).toBe(60 * SECOND);
    const loads = h.engine.calls.load;
    await h.clock.advance(20 * 60 * SECOND);
    expect(h.engine.calls.load).toBe(loads);

    h.engine.commit('fixed', { a: '3' });
    h.controller.trigger('prod');
    await settle();
    expect(h.engine.live.get('a')).toBe('3');
    expect((await h.cs.getStackStatus('prod'))?.status).toBe('synced');
  });

  it('backs off exponentially after errors and resets after a success', async () => {
    const h = await harness(stackConfig());
    h.engine.commit('c1', { a: '1' });
    h.engine.resolveFailures = 4;
    h.controller.start();
    await settle();
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      delays.push(h.controller.runtime('prod').nextPassInMs!);
      await h.clock.advance(delays.at(-1)!);
    }
    expect(delays).toEqual([1_000, 2_000, 4_000, 8_000]);
    expect(h.outcomes).toEqual(['error', 'error', 'error', 'error', 'applied']);
    expect(h.controller.runtime('prod').failures).toBe(0);
    expect(h.controller.runtime('prod').nextPassInMs).toBe(60 * SECOND);
  });

  it('a push during an apply is reconciled right after it, on the new commit, in one follow-up pass', async () => {
    const h = await harness(stackConfig());
    h.engine.commit('c1', { a: '1' });
    let open!: () => void;
    h.engine.applyGate = new Promise<void>((resolve) => (open = resolve));
    h.controller.start();
    await settle();
    expect(h.controller.runtime('prod').reconciling).toBe(true);
    h.engine.commit('c2', { a: '2' });
    for (let i = 0; i < 5; i++) h.controller.trigger('prod');
    h.engine.applyGate = undefined;
    open();
    await settle();
    expect(h.engine.appliedCommits).toEqual(['c1', 'c2']);
    expect(h.engine.live.get('a')).toBe('2');
    expect(h.outcomes).toEqual(['applied', 'applied']);
  });

  it('many triggers for one commit cause one apply', async () => {
    const h = await harness(stackConfig());
    h.engine.commit('c1', { a: '1' });
    h.controller.start();
    await settle();
    h.engine.commit('c2', { a: '2' });
    for (let i = 0; i < 20; i++) h.controller.trigger('prod');
    await settle();
    for (let i = 0; i < 20; i++) h.controller.trigger('prod');
    await settle();
    expect(h.engine.appliedCommits).toEqual(['c1', 'c2']);
  });

  it('a pass over its timeout is stopped through its signal, recorded, and retried with backoff', async () => {
    const h = await harness(stackConfig(), { passTimeoutMs: 30 * SECOND });
    h.engine.commit('c1', { a: '1' });
    h.engine.hangApplies = true;
    h.controller.start();
    await settle();
    await h.clock.advance(30 * SECOND);
    expect(h.outcomes).toEqual(['error']);
    expect(h.controller.runtime('prod').lastPass?.error).toMatch(/longer than 30s/);
    const [run] = await h.store.listRuns({ stack: 'prod' });
    expect(run?.status).toBe('interrupted');
    h.engine.hangApplies = false;
    await h.clock.advance(1 * SECOND);
    expect(h.engine.live.get('a')).toBe('1');
  });

  it('a thrown non-Error never kills the loop', async () => {
    const h = await harness(stackConfig());
    h.engine.commit('c1', { a: '1' });
    const original = h.engine.load.bind(h.engine);
    let once = true;
    h.engine.load = async (dir) => {
      if (once) {
        once = false;
        throw 'a string, not an Error';
      }
      return original(dir);
    };
    h.controller.start();
    await settle();
    expect(h.outcomes).toEqual(['error']);
    await h.clock.advance(1 * SECOND);
    expect(h.outcomes).toEqual(['error', 'applied']);
  });
});

describe('Controller: graceful stop', () => {
  it('lets a pass in flight finish within the grace period, and takes no new work', async () => {
    const h = await harness(stackConfig());
    h.engine.commit('c1', { a: '1' });
    let open!: () => void;
    h.engine.applyGate = new Promise<void>((resolve) => (open = resolve));
    h.controller.start();
    await settle();
    let stopped = false;
    const stopping = h.controller.stop(30 * SECOND).then(() => (stopped = true));
    expect(h.controller.trigger('prod')).toBe(false);
    await h.clock.advance(10 * SECOND);
    expect(stopped).toBe(false);
    open();
    await settle();
    await stopping;
    expect(h.engine.live.get('a')).toBe('1');
    expect((await h.store.listRuns({ stack: 'prod' }))[0]?.status).toBe('succeeded');
    // The stack lock is released: another process may take the stack.
    const lock = await h.store.lock('prod', { user: 'cli', host: os.hostname(), pid: process.pid });
    await lock.release();
    await h.clock.advance(120 * SECOND);
    expect(h.engine.calls.resolve).toBe(1);
  });

  it('stops an apply still running after the grace period through its signal, recording it as interrupted', async () => {
    const h = await harness(stackConfig());
    h.engine.commit('c1', { a: '1' });
    h.engine.hangApplies = true;
    h.controller.start();
    await settle();
    const stopping = h.controller.stop(5 * SECOND);
    await h.clock.advance(5 * SECOND);
    await stopping;
    expect(h.engine.live.has('a')).toBe(false);
    expect((await h.store.listRuns({ stack: 'prod' }))[0]?.status).toBe('interrupted');
  });
});

describe('Controller: one writer per stack across replicas', () => {
  it('only the replica holding the stack lock reconciles; another takes over when it stops', async () => {
    const h = await harness(stackConfig());
    h.engine.commit('c1', { a: '1' });
    h.controller.start();
    await settle();
    const b = h.newController('replica-b');
    b.start();
    await settle();
    expect(h.controller.runtime('prod').owned).toBe(true);
    expect(b.runtime('prod').owned).toBe(false);
    expect(h.outcomes).toEqual(['applied', 'not-owner']);

    // A sync asked of the replica that does not own the stack reaches the owner through the store.
    h.engine.commit('c2', { a: '2' });
    await b.requestSync('prod');
    await h.clock.advance(2 * SECOND);
    expect(h.engine.appliedCommits).toEqual(['c1', 'c2']);
    expect((await h.cs.getStackStatus('prod'))?.owner).toBe('replica-a');

    await h.controller.stop(0);
    h.engine.commit('c3', { a: '3' });
    await h.clock.advance(5 * SECOND);
    expect(b.runtime('prod').owned).toBe(true);
    expect(h.engine.appliedCommits).toEqual(['c1', 'c2', 'c3']);
    expect((await h.cs.getStackStatus('prod'))?.owner).toBe('replica-b');
  });

  it('a lost lock stops the pass in flight; the replica then competes for the stack again', async () => {
    const h = await harness(stackConfig());
    h.engine.commit('c1', { a: '1' });
    const losers: AbortController[] = [];
    const realLock = h.store.lock.bind(h.store);
    h.store.lock = async (stack, actor) => {
      const lock = await realLock(stack, actor);
      const lost = new AbortController();
      losers.push(lost);
      return Object.assign(lock, { signal: lost.signal });
    };
    h.engine.hangApplies = true;
    h.controller.start();
    await settle();
    expect(h.controller.runtime('prod').owned).toBe(true);
    losers[0]!.abort(new Error('connection lost'));
    await settle();
    expect(h.controller.runtime('prod').owned).toBe(false);
    expect((await h.store.listRuns({ stack: 'prod' }))[0]?.status).toBe('interrupted');
    expect(h.outcomes).toEqual(['error']);
  });
});

describe('Controller: changing the stack list at runtime', () => {
  const stage = stackConfig({ name: 'stage', repo: '/srv/git/stage.git' });

  /** The repositories resolved, in order: which stacks had passes. */
  function recordResolves(engine: FakeEngine): string[] {
    const repos: string[] = [];
    const real = engine.resolve.bind(engine);
    engine.resolve = async (source) => {
      repos.push(source.repo);
      return real(source);
    };
    return repos;
  }

  it('an added stack is reconciled at once; an identical list changes nothing', async () => {
    const h = await harness(stackConfig());
    h.engine.commit('c1', { a: '1' });
    const resolved = recordResolves(h.engine);
    h.controller.start();
    await settle();
    expect(resolved).toEqual(['/srv/git/infra.git']);

    const diff = await h.controller.setStacks([stackConfig(), stage]);
    expect(diff).toEqual({ added: ['stage'], updated: [], removed: [], unchanged: ['prod'] });
    await settle();
    expect(resolved).toEqual(['/srv/git/infra.git', '/srv/git/stage.git']);
    expect(h.controller.stacks.map((s) => s.name)).toEqual(['prod', 'stage']);
    expect(h.controller.runtime('stage')).toMatchObject({ owned: true, lastPass: { outcome: expect.any(String) } });
    expect(await h.cs.getStackStatus('stage')).toMatchObject({ headCommit: 'c1', owner: 'replica-a' });

    expect(await h.controller.setStacks([stackConfig(), stage])).toEqual({ added: [], updated: [], removed: [], unchanged: ['prod', 'stage'] });
    await settle();
    expect(resolved).toHaveLength(2);
    await expect(h.controller.setStacks([stage, stage])).rejects.toThrow('stack "stage" is configured twice');
    expect(h.controller.stacks.map((s) => s.name)).toEqual(['prod', 'stage']);

    // Removing an idle stack drops its timer.
    expect(h.controller.runtime('stage').nextPassInMs).not.toBeNull();
    expect(await h.controller.setStacks([stackConfig()])).toMatchObject({ removed: ['stage'] });
    expect(h.controller.runtime('stage')).toMatchObject({ owned: false, nextPassInMs: null, lastPass: null });
    await h.clock.advance(10 * 60 * SECOND);
    expect(resolved.filter((r) => r === '/srv/git/stage.git')).toHaveLength(1);
  });

  it('a removed stack is no longer listed or scheduled; its pass in flight finishes, then its lock is released; its history stays', async () => {
    const h = await harness([stackConfig(), stage]);
    h.engine.commit('c1', { a: '1' });
    const resolved = recordResolves(h.engine);
    let open!: () => void;
    h.engine.applyGate = new Promise<void>((resolve) => (open = resolve));
    h.controller.start();
    await settle();
    expect(h.controller.runtime('prod').reconciling).toBe(true);

    const diff = await h.controller.setStacks([stage]);
    expect(diff).toEqual({ added: [], updated: [], removed: ['prod'], unchanged: ['stage'] });
    expect(h.controller.stacks.map((s) => s.name)).toEqual(['stage']);
    expect(h.controller.trigger('prod')).toBe(false);
    expect(h.controller.runtime('prod').owned).toBe(true);
    open();
    await settle();
    // Not aborted: the apply ran to its end.
    expect((await h.store.listRuns({ stack: 'prod' })).map((r) => r.status)).toEqual(['succeeded']);
    expect(h.controller.runtime('prod')).toMatchObject({ owned: false, nextPassInMs: null });
    const lock = await h.store.lock('prod', { user: 'cli', host: os.hostname(), pid: process.pid });
    await lock.release();

    const before = resolved.filter((r) => r === '/srv/git/infra.git').length;
    await h.clock.advance(10 * 60 * SECOND);
    expect(resolved.filter((r) => r === '/srv/git/infra.git')).toHaveLength(before);
    expect(resolved.filter((r) => r === '/srv/git/stage.git').length).toBeGreaterThan(1);
    expect(await h.cs.getStackStatus('prod')).toMatchObject({ lastAppliedCommit: 'c1' });
  });

  it('a changed stack: the pass in flight finishes on the old config, the next one uses the new config', async () => {
    const h = await harness(stackConfig());
    h.engine.commit('c1', { a: '1' });
    h.engine.commit('c2', { a: '2' });
    let open!: () => void;
    h.engine.applyGate = new Promise<void>((resolve) => (open = resolve));
    h.controller.start();
    await settle();

    const pinned = stackConfig({ branch: 'c1', intervalMs: 10 * SECOND });
    expect(await h.controller.setStacks([pinned])).toEqual({ added: [], updated: ['prod'], removed: [], unchanged: [] });
    expect(h.controller.stack('prod')).toBe(pinned);
    open();
    await settle();
    expect(h.engine.appliedCommits).toEqual(['c2', 'c1']);
    expect(h.engine.live.get('a')).toBe('1');
    expect(await h.cs.getStackStatus('prod')).toMatchObject({ headCommit: 'c1', lastAppliedCommit: 'c1' });
    // A change on the same commit (here the path) still gets a full pass: it may change what is desired.
    const plans = h.engine.calls.plan;
    await h.controller.setStacks([{ ...pinned, path: 'other' }]);
    await settle();
    expect(h.engine.calls.plan).toBe(plans + 1);
    // The new interval too.
    const resolves = h.engine.calls.resolve;
    await h.clock.advance(11 * SECOND);
    expect(h.engine.calls.resolve).toBe(resolves + 1);

    // Changed during a pass on the same commit: the follow-up pass is a full one too.
    h.engine.applyGate = new Promise<void>((resolve) => (open = resolve));
    h.engine.commit('c3', { a: '3' });
    const following = stackConfig({ path: 'other' });
    await h.controller.setStacks([following]);
    await settle();
    expect(h.controller.runtime('prod').reconciling).toBe(true);
    const plansBefore = h.engine.calls.plan;
    await h.controller.setStacks([{ ...following, path: 'again' }]);
    open();
    await settle();
    expect(h.engine.appliedCommits).toEqual(['c2', 'c1', 'c3']);
    expect(h.engine.calls.plan).toBe(plansBefore + 1);
  });
});
