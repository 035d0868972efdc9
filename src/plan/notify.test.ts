/** `notify:` handlers through plan and apply, on the in-memory provider (whose Item kind can be refreshed). */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyPlan } from '../apply/apply.js';
import { TargetPool } from '../providers/target-pool.js';
import type { Resource } from '../spec/resource.js';
import { SqliteStore } from '../state/sqlite/sqlite-store.js';
import type { Store } from '../state/store.js';
import type { Plan } from './plan.js';
import { planChanges } from './planner.js';
import { renderPlanText } from './render-text.js';
import { bucket, item, memoryRegistry, memoryWorld, type MemoryWorld } from './testing/memory-provider.js';

const actor = { user: 'tester', host: os.hostname(), pid: process.pid };
const source = { dir: '/repo', repo: null, ref: null, commit: 'a'.repeat(40), author: 'A <a@x>', message: 'msg', dirty: false };

let dir: string;
let store: Store;
let world: MemoryWorld;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-notify-'));
  store = await SqliteStore.open(path.join(dir, 'state.db'));
  world = memoryWorld();
});
afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

async function withTargets<T>(fn: (targets: TargetPool, registry: ReturnType<typeof memoryRegistry>) => Promise<T>): Promise<T> {
  const registry = memoryRegistry(world);
  const targets = new TargetPool(registry, { signal: new AbortController().signal });
  try {
    return await fn(targets, registry);
  } finally {
    await targets.close();
  }
}

const plan = (resources: Resource[]): Promise<Plan> =>
  withTargets((targets, registry) =>
    planChanges({
      stack: 's',
      desired: { targets: [bucket('b')], resources, specHash: JSON.stringify(resources.map((r) => [r.spec, r.notify])), diagnostics: [] },
      source,
      registry,
      store,
      targets,
    }),
  );
const apply = (p: Plan) => withTargets((targets, registry) => applyPlan({ plan: p, registry, store, targets, actor, parallelism: 4 }));

/** A config item that notifies a handler item, as `File notify: [Exec/reload]` would. */
const stack = (config: string, extra: Resource[] = []) => [item('conf', config, { notify: ['Item/reload'] }), item('reload', 'r'), ...extra];
const change = (p: Plan, address: string) => p.changes.find((c) => c.address === address)!;

describe('notify: handlers', () => {
  it('refreshes a handler once, after the change that notified it, and not when nothing changed', async () => {
    await apply(await plan(stack('v1')));
    world.applied.length = 0;

    const p = await plan(stack('v2'));
    expect(change(p, 'Item/conf')).toMatchObject({ action: 'update', notifies: ['Item/reload'] });
    expect(change(p, 'Item/reload')).toMatchObject({ action: 'update', refresh: true, notifiedBy: ['Item/conf'], reason: 'notified by Item/conf' });
    expect(renderPlanText(p)).toContain('# Item/reload will be refreshed (notified by Item/conf)');
    const r = await apply(p);
    expect(r.status).toBe('succeeded');
    expect(world.applied).toEqual(['update Item/conf', 'refresh Item/reload <- Item/conf']);
    expect(await store.pendingRefreshes('s')).toEqual([]);

    world.applied.length = 0;
    const again = await plan(stack('v2'));
    expect(again.changes.map((c) => c.action)).toEqual(['noop', 'noop']);
    await apply(again);
    expect(world.applied).toEqual([]);
  });

  it('runs a handler notified by several changes once', async () => {
    const resources = (v: string) => [item('a', v, { notify: ['Item/reload'] }), item('b', v, { notify: ['Item/reload'] }), item('reload', 'r')];
    await apply(await plan(resources('1')));
    world.applied.length = 0;
    await apply(await plan(resources('2')));
    expect(world.applied.filter((a) => a.startsWith('refresh'))).toEqual(['refresh Item/reload <- Item/a, Item/b']);
  });

  it('lets a handler whose own spec changed react by that change, not by a second run', async () => {
    await apply(await plan(stack('v1')));
    world.applied.length = 0;
    const p = await plan([item('conf', 'v2', { notify: ['Item/reload'] }), item('reload', 'r2')]);
    expect(change(p, 'Item/reload')).toMatchObject({ action: 'update', notifiedBy: ['Item/conf'] });
    expect(change(p, 'Item/reload').refresh).toBeUndefined();
    await apply(p);
    expect(world.applied).toEqual(['update Item/conf', 'update Item/reload']);
  });

  it('follows a chain of handlers', async () => {
    const resources = (v: string) => [item('conf', v, { notify: ['Item/build'] }), item('build', 'b', { notify: ['Item/restart'] }), item('restart', 'r')];
    await apply(await plan(resources('1')));
    world.applied.length = 0;
    const p = await plan(resources('2'));
    expect(change(p, 'Item/restart')).toMatchObject({ refresh: true, notifiedBy: ['Item/build'] });
    await apply(p);
    expect(world.applied).toEqual(['update Item/conf', 'refresh Item/build <- Item/conf', 'refresh Item/restart <- Item/build']);
  });

  it('keeps a notification whose handler failed, and refreshes it on the next run', async () => {
    await apply(await plan(stack('v1')));
    world.failing.add('reload');
    const failed = await apply(await plan(stack('v2')));
    expect(failed.failures.map((f) => f.address)).toEqual(['Item/reload']);
    expect((await store.pendingRefreshes('s')).map((p) => [p.address, p.notifiedBy, p.runId])).toEqual([['Item/reload', 'Item/conf', failed.run.id]]);

    // The config no longer changes, but the handler never reacted to the last change: it still must.
    world.failing.delete('reload');
    world.applied.length = 0;
    const p = await plan(stack('v2'));
    expect(change(p, 'Item/conf').action).toBe('noop');
    expect(change(p, 'Item/reload')).toMatchObject({
      action: 'update',
      refresh: true,
      reason: `notified by Item/conf in run ${failed.run.id}, not yet refreshed`,
    });
    await apply(p);
    expect(world.applied).toEqual(['refresh Item/reload <- Item/conf']);
    expect(await store.pendingRefreshes('s')).toEqual([]);
    expect((await plan(stack('v2'))).changes.map((c) => c.action)).toEqual(['noop', 'noop']);
  });

  it('skips the handler when its notifier failed, and records nothing pending for it', async () => {
    await apply(await plan(stack('v1')));
    world.failing.add('conf');
    world.applied.length = 0;
    const r = await apply(await plan(stack('v2')));
    expect(r.counts).toMatchObject({ failed: 1, skipped: 1 });
    expect(world.applied).toEqual(['update Item/conf']);
    expect(await store.pendingRefreshes('s')).toEqual([]);
  });

  it('refreshes nothing for a deleted notifier or handler', async () => {
    await apply(await plan(stack('v1')));
    world.applied.length = 0;
    const p = await plan([item('reload', 'r')]);
    expect(change(p, 'Item/conf').action).toBe('delete');
    expect(change(p, 'Item/reload').action).toBe('noop');
  });
});
