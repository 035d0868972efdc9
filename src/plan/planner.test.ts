import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyPlan } from '../apply/apply.js';
import { error } from '../diag/diagnostic.js';
import { TargetPool } from '../providers/target-pool.js';
import type { Resource } from '../spec/resource.js';
import { SqliteStore } from '../state/sqlite/sqlite-store.js';
import type { Store } from '../state/store.js';
import { detectDrift } from './drift.js';
import { countActions, type Plan } from './plan.js';
import { planChanges } from './planner.js';
import { renderPlanText } from './render-text.js';
import { testActor as actor, testSource as source } from './testing/engine.js';
import { bucket, item, memoryRegistry, memoryWorld, type MemoryWorld } from './testing/memory-provider.js';


let dir: string;
let store: Store;
let world: MemoryWorld;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-plan-'));
  store = await SqliteStore.open(path.join(dir, 'state.db'));
  world = memoryWorld();
});
afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

async function plan(resources: Resource[], extra: { allowMassDelete?: boolean; pruneAdopted?: boolean; diagnostics?: ReturnType<typeof error>[] } = {}): Promise<Plan> {
  const registry = memoryRegistry(world);
  const targets = new TargetPool(registry, { signal: new AbortController().signal });
  try {
    return await planChanges({
      stack: 's',
      desired: { targets: [bucket('b')], resources, specHash: JSON.stringify(resources.map((r) => r.spec)), diagnostics: extra.diagnostics ?? [] },
      source,
      registry,
      store,
      targets,
      allowMassDelete: extra.allowMassDelete ?? false,
      pruneAdopted: extra.pruneAdopted ?? false,
    });
  } finally {
    await targets.close();
  }
}

async function apply(p: Plan, parallelism = 4) {
  const registry = memoryRegistry(world);
  const targets = new TargetPool(registry, { signal: new AbortController().signal });
  try {
    return await applyPlan({ plan: p, registry, store, targets, actor, parallelism });
  } finally {
    await targets.close();
  }
}

const live = () => Object.fromEntries(world.data.get('Bucket/b') ?? []);

describe('planChanges and applyPlan', () => {
  it('plans creates, applies them, then plans nothing; reads once per target and kind', async () => {
    const p1 = await plan([item('a', '1'), item('b', '2')]);
    expect(countActions(p1.changes)).toMatchObject({ create: 2 });
    expect(world.readCalls).toBe(1);
    const r = await apply(p1);
    expect(r.status).toBe('succeeded');
    expect(live()).toEqual({ a: '1', b: '2' });
    const p2 = await plan([item('a', '1'), item('b', '2')]);
    expect(p2.changes.map((c) => c.action)).toEqual(['noop', 'noop']);
    expect(p2.changes.some((c) => c.recordOnly)).toBe(false);
    expect(renderPlanText(p2)).toContain('No changes');
  });

  it("records a provider's notes on a change in the run's events and tells the reporter", async () => {
    world.notes.set('a', 'kept the old value as a~');
    const heard: string[] = [];
    const registry = memoryRegistry(world);
    const targets = new TargetPool(registry, { signal: new AbortController().signal });
    const p = await plan([item('a', '1'), item('b', '2')]);
    const reporter = { started: () => undefined, began: () => undefined, finished: () => undefined, ended: () => undefined, note: (m: string) => void heard.push(m) };
    const r = await applyPlan({ plan: p, registry, store, targets, actor, reporter }).finally(() => targets.close());
    expect(heard).toEqual(['Item/a: kept the old value as a~']);
    expect((await store.listEvents(r.run.id)).map((e) => [e.type, e.address, e.message])).toEqual([['resource.note', 'Item/a', 'kept the old value as a~']]);
  });

  it('records the run with its commit and counts, and bumps the serial', async () => {
    const before = await store.serial('s');
    const r = await apply(await plan([item('a', '1')]));
    expect(r.run).toMatchObject({ commit: source.commit, author: source.author, message: 'msg', status: 'succeeded' });
    expect(r.counts.create).toBe(1);
    expect(await store.serial('s')).toBeGreaterThan(before);
    const inventory = await store.inventory('s');
    expect(inventory.map((e) => [e.address, e.origin, e.target])).toEqual([['Item/a', 'created', 'Bucket/b']]);
  });

  it('orders a resource after the one that provides what it references, warning that it is missing until then', async () => {
    // Without the edge, apply would write `a` (first in address order) before `z`, which it needs, and fail.
    const p = await plan([item('a', '1', { needs: 'z' }), item('z', '2')]);
    expect(p.changes.find((c) => c.address === 'Item/a')?.dependsOn).toEqual(['Item/z']);
    expect(p.diagnostics).toEqual([
      { severity: 'warning', summary: 'key z does not exist on Bucket/b yet: Item/z creates it first', address: 'Item/a', source: expect.anything() },
    ]);
    const r = await apply(p, 1);
    expect(r.status).toBe('succeeded');
    expect(world.applied).toEqual(['create Item/z', 'create Item/a']);
    expect((await plan([item('a', '1', { needs: 'z' }), item('z', '2')])).diagnostics).toEqual([]);
  });

  it("shows in a create's fields what the provider's read says the create will give, in place of the spec's value", async () => {
    world.creates.set('a', 'resolved-2.1');
    world.creates.set('b', 'resolved-9');
    world.data.set('Bucket/b', new Map([['b', 'old']]));
    const p = await plan([item('a', 'pattern-2.*'), item('b', 'pattern-9.*')]);
    expect(p.changes.find((c) => c.address === 'Item/a')).toMatchObject({ action: 'create', fields: [{ path: 'value', before: null, after: 'resolved-2.1' }] });
    // Only for a resource read as absent: an update shows the provider's own diff.
    expect(p.changes.find((c) => c.address === 'Item/b')).toMatchObject({ action: 'update', fields: [{ path: 'value', before: 'old', after: 'pattern-9.*' }] });
    expect(renderPlanText(p)).toContain('+ value: "resolved-2.1"');
  });

  it('makes a reference that nothing on the target provides a plan error, which apply refuses', async () => {
    const p = await plan([item('a', '1', { needs: 'nowhere' })]);
    expect(p.diagnostics).toEqual([
      expect.objectContaining({ severity: 'error', summary: 'key nowhere does not exist on Bucket/b', address: 'Item/a', detail: expect.stringContaining('change needs') }),
    ]);
    await expect(apply(p)).rejects.toThrow('the plan has errors');
    expect(world.applied).toEqual([]);
  });

  it("makes a diff's refusal a plan error at the resource, which apply refuses", async () => {
    world.data.set('Bucket/b', new Map([['a', 'frozen']]));
    const p = await plan([item('a', 'thawed')]);
    expect(p.diagnostics).toEqual([expect.objectContaining({ severity: 'error', summary: 'a is frozen', address: 'Item/a' })]);
    await expect(apply(p)).rejects.toThrow('the plan has errors');
    expect(live()).toEqual({ a: 'frozen' });
  });

  it("makes a provider's refusal of a delete a plan error, unless what it names goes in the same plan", async () => {
    await apply(await plan([item('a', '1'), item('b', '1', { needs: 'a' }), item('c', 'k'), item('d', 'k'), item('e', 'k')]));
    world.data.get('Bucket/b')!.set('a', 'frozen');
    const refused = await plan([item('b', '1', { needs: 'a' }), item('c', 'k'), item('d', 'k'), item('e', 'k')]);
    expect(refused.diagnostics).toEqual([expect.objectContaining({ severity: 'error', summary: 'a is frozen', address: 'Item/a' })]);
    await expect(apply(refused)).rejects.toThrow('the plan has errors');
    const both = await plan([item('c', 'k'), item('d', 'k'), item('e', 'k')]);
    expect(both.diagnostics).toEqual([]);
    expect((await apply(both)).status).toBe('succeeded');
    expect(live()).toEqual({ c: 'k', d: 'k', e: 'k' });
  });

  it('adopts an object that already matches, without touching it', async () => {
    world.data.set('Bucket/b', new Map([['a', '1']]));
    const p = await plan([item('a', '1')]);
    expect(p.changes[0]).toMatchObject({ action: 'noop', recordOnly: true, managed: false });
    await apply(p);
    expect(world.applied).toEqual([]);
    expect((await store.inventory('s')).map((e) => e.origin)).toEqual(['adopted']);
  });

  it('deletes only what the inventory holds, dependents first', async () => {
    await apply(await plan([item('base', '1'), item('top', '2', { dependsOn: ['Item/base'] }), item('keep1', 'k'), item('keep2', 'k'), item('keep3', 'k')]));
    world.data.get('Bucket/b')!.set('unmanaged', 'x');
    world.applied.length = 0;
    const p = await plan([item('keep1', 'k'), item('keep2', 'k'), item('keep3', 'k')]);
    expect(Object.fromEntries(p.changes.filter((c) => c.action !== 'noop').map((c) => [c.address, c.action]))).toEqual({ 'Item/base': 'delete', 'Item/top': 'delete' });
    await apply(p, 10);
    expect(world.applied).toEqual(['delete Item/top', 'delete Item/base']);
    expect(live()).toEqual({ keep1: 'k', keep2: 'k', keep3: 'k', unmanaged: 'x' });
  });

  it('refuses to delete more than half of the managed resources unless allowed', async () => {
    await apply(await plan([item('a', '1'), item('b', '1'), item('c', '1')]));
    const refused = await plan([item('a', '1')]);
    expect(refused.diagnostics.map((d) => d.summary).join()).toMatch(/deletes 2 of 3 managed resources/);
    await expect(apply(refused)).rejects.toThrow(/has errors/);
    const emptied = await plan([]);
    expect(emptied.diagnostics.map((d) => d.summary).join()).toMatch(/deletes 3 of 3/);
    const allowed = await plan([item('a', '1')], { allowMassDelete: true });
    expect(allowed.diagnostics).toEqual([]);
  });

  it('never plans deletes from a spec with errors', async () => {
    await apply(await plan([item('a', '1')]));
    const p = await plan([], { diagnostics: [error('broken', { source: { file: 'x.yaml', line: 1, col: 1 } })], allowMassDelete: true });
    expect(p.changes).toEqual([]);
  });

  it('skips dependents of a failure, records everything, and the next run converges', async () => {
    world.failing.add('a');
    const p = await plan([item('a', '1'), item('b', '2', { dependsOn: ['Item/a'] }), item('c', '3')]);
    const r = await apply(p);
    expect(r.status).toBe('failed');
    expect(r.counts).toMatchObject({ create: 1, failed: 1, skipped: 1 });
    expect(r.failures).toEqual([{ address: 'Item/a', error: 'cannot write a' }]);
    const results = await store.listResults(r.run.id);
    expect(results.find((x) => x.address === 'Item/b')).toMatchObject({ status: 'skipped', error: 'skipped: Item/a did not succeed' });
    world.failing.clear();
    const again = await apply(await plan([item('a', '1'), item('b', '2', { dependsOn: ['Item/a'] }), item('c', '3')]));
    expect(again.counts).toMatchObject({ create: 2, failed: 0 });
    expect(live()).toEqual({ a: '1', b: '2', c: '3' });
  });

  it('replaces when the identity changes', async () => {
    await apply(await plan([item('a', '1', { key: 'old' })]));
    const p = await plan([item('a', '1', { key: 'new' })]);
    expect(p.changes[0]).toMatchObject({ action: 'replace', reason: 'key changed' });
    await apply(p);
    expect(live()).toEqual({ new: '1' });
  });

  it('catches a provider that breaks its promise', async () => {
    const registry = memoryRegistry(world);
    const provider = registry.resource('Item')!;
    const original = provider.apply.bind(provider);
    provider.apply = async (h, req, ctx) => ({ ...(await original(h, req, ctx)), value: 'something else' });
    const targets = new TargetPool(registry, { signal: new AbortController().signal });
    const p = await plan([item('a', '1')]);
    const r = await applyPlan({ plan: p, registry, store, targets, actor });
    expect(r.failures[0]!.error).toMatch(/provider Item broke its promise: after apply, value still differ/);
  });

  it('a graceful stop lets the changes in flight finish and records them; the rest are skipped', async () => {
    const registry = memoryRegistry(world);
    const provider = registry.resource('Item')!;
    const original = provider.apply.bind(provider);
    const stop = new AbortController();
    const seenAborted: boolean[] = [];
    provider.apply = async (h, req, ctx) => {
      stop.abort(new Error('SIGINT'));
      await new Promise((r) => setTimeout(r, 5));
      seenAborted.push(ctx.signal.aborted);
      return original(h, req, ctx);
    };
    const targets = new TargetPool(registry, { signal: new AbortController().signal });
    const p = await plan([item('a', '1'), item('b', '2'), item('c', '3')]);
    const r = await applyPlan({ plan: p, registry, store, targets, actor, parallelism: 1, signal: stop.signal });
    expect(r.status).toBe('interrupted');
    expect(seenAborted).toEqual([false]);
    expect(r.counts).toMatchObject({ create: 1, skipped: 2 });
    expect((await store.inventory('s')).map((e) => e.address)).toEqual(['Item/a']);
  });

  it('detects drift against the last applied spec', async () => {
    await apply(await plan([item('a', '1'), item('b', '2')]));
    const registry = memoryRegistry(world);
    const targets = new TargetPool(registry, { signal: new AbortController().signal });
    expect((await detectDrift({ stack: 's', store, registry, targets })).drifted).toBe(0);
    world.data.get('Bucket/b')!.set('a', 'changed by hand');
    world.data.get('Bucket/b')!.delete('b');
    const report = await detectDrift({ stack: 's', store, registry, targets });
    expect(report.resources.map((r) => [r.address, r.status])).toEqual([
      ['Item/a', 'drifted'],
      ['Item/b', 'missing'],
    ]);
  });
});

describe('adopting what already exists', () => {
  const bucketOf = () => {
    const b = world.data.get('Bucket/b') ?? new Map<string, string>();
    world.data.set('Bucket/b', b);
    return b;
  };

  it('says "adopt" for an object that exists with the right content, and records it as adopted', async () => {
    bucketOf().set('found', 'v');
    const p = await plan([item('found', 'v'), item('made', 'v')]);
    const found = p.changes.find((c) => c.address === 'Item/found')!;
    expect(found).toMatchObject({ action: 'noop', adopt: true, recordOnly: true });
    expect(p.changes.find((c) => c.address === 'Item/made')!.adopt).toBeUndefined();
    expect(JSON.parse(JSON.stringify(p)).changes.find((c: { address: string }) => c.address === 'Item/found').adopt).toBe(true);
    const text = renderPlanText(p);
    expect(text).toContain('  # Item/found will be adopted: it already exists and matches the spec');
    expect(text).toMatch(/^ {2}adopt Item\/found on Bucket\/b$/m);
    expect(text).toContain('Plan: 1 to create, 0 to update, 0 to replace, 0 to delete, 1 to adopt.');
    await apply(p);
    expect((await store.inventory('s')).map((e) => [e.address, e.origin])).toEqual([
      ['Item/found', 'adopted'],
      ['Item/made', 'created'],
    ]);
    // Adopted once: the next plan has nothing to say.
    expect(renderPlanText(await plan([item('found', 'v'), item('made', 'v')]))).toContain('No changes');
  });

  it('marks an update of an unmanaged object as an adoption too', async () => {
    bucketOf().set('found', 'old');
    const p = await plan([item('found', 'new')]);
    expect(p.changes[0]).toMatchObject({ action: 'update', adopt: true });
    expect(renderPlanText(p)).toMatch(/^ {2}~ adopt Item\/found on Bucket\/b$/m);
  });

  it('forgets an adopted resource removed from the spec and leaves it in place; deletes it only when asked to prune adopted ones', async () => {
    bucketOf().set('found', 'v');
    await apply(await plan([item('found', 'v'), item('made', 'v'), item('other', 'v')]));

    const forget = await plan([item('other', 'v')], { allowMassDelete: true });
    expect(forget.changes.find((c) => c.address === 'Item/found')).toMatchObject({ action: 'noop', forget: true, recordOnly: true });
    expect(forget.changes.find((c) => c.address === 'Item/made')).toMatchObject({ action: 'delete' });
    const text = renderPlanText(forget);
    expect(text).toMatch(/^ {2}forget Item\/found on Bucket\/b$/m);
    expect(text).toContain('Plan: 0 to create, 0 to update, 0 to replace, 1 to delete, 1 to forget.');
    const pruned = await plan([item('other', 'v')], { allowMassDelete: true, pruneAdopted: true });
    expect(pruned.changes.find((c) => c.address === 'Item/found')).toMatchObject({ action: 'delete' });

    await apply(forget);
    expect(live()).toEqual({ found: 'v', other: 'v' });
    expect((await store.inventory('s')).map((e) => e.address)).toEqual(['Item/other']);
    expect(world.applied.filter((a) => a.includes('found'))).toEqual([]);
  });
});
