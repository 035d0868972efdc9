/** `notify:` handlers through plan and apply, on the in-memory provider (whose Item kind can be refreshed). */
import { describe, expect, it } from 'vitest';
import { applyPlan } from '../apply/apply.js';
import type { Resource } from '../spec/resource.js';
import type { Plan } from './plan.js';
import { planChanges } from './planner.js';
import { renderPlanText } from './render-text.js';
import { testActor as actor, testSource as source, useMemoryEngine } from './testing/engine.js';
import { bucket, item } from './testing/memory-provider.js';

const engine = useMemoryEngine('capstan-notify-');
const { withTargets } = engine;

const plan = (resources: Resource[]): Promise<Plan> =>
  withTargets((targets, registry) =>
    planChanges({
      stack: 's',
      desired: { targets: [bucket('b')], resources, specHash: JSON.stringify(resources.map((r) => [r.spec, r.notify])), diagnostics: [] },
      source,
      registry,
      store: engine.store,
      targets,
    }),
  );
const apply = (p: Plan) => withTargets((targets, registry) => applyPlan({ plan: p, registry, store: engine.store, targets, actor, parallelism: 4 }));

/** A config item that notifies a handler item, as `File notify: [Exec/reload]` would. */
const stack = (config: string, extra: Resource[] = []) => [item('conf', config, { notify: ['Item/reload'] }), item('reload', 'r'), ...extra];
const change = (p: Plan, address: string) => p.changes.find((c) => c.address === address)!;

describe('notify: handlers', () => {
  it('refreshes a handler once, after the change that notified it, and not when nothing changed', async () => {
    await apply(await plan(stack('v1')));
    engine.world.applied.length = 0;

    const p = await plan(stack('v2'));
    expect(change(p, 'Item/conf')).toMatchObject({ action: 'update', notifies: ['Item/reload'] });
    expect(change(p, 'Item/reload')).toMatchObject({ action: 'update', refresh: true, notifiedBy: ['Item/conf'], reason: 'notified by Item/conf' });
    expect(renderPlanText(p)).toContain('# Item/reload will be refreshed (notified by Item/conf)');
    const r = await apply(p);
    expect(r.status).toBe('succeeded');
    expect(engine.world.applied).toEqual(['update Item/conf', 'refresh Item/reload <- Item/conf']);
    expect(await engine.store.pendingRefreshes('s')).toEqual([]);

    engine.world.applied.length = 0;
    const again = await plan(stack('v2'));
    expect(again.changes.map((c) => c.action)).toEqual(['noop', 'noop']);
    await apply(again);
    expect(engine.world.applied).toEqual([]);
  });

  it('runs a handler notified by several changes once', async () => {
    const resources = (v: string) => [item('a', v, { notify: ['Item/reload'] }), item('b', v, { notify: ['Item/reload'] }), item('reload', 'r')];
    await apply(await plan(resources('1')));
    engine.world.applied.length = 0;
    await apply(await plan(resources('2')));
    expect(engine.world.applied.filter((a) => a.startsWith('refresh'))).toEqual(['refresh Item/reload <- Item/a, Item/b']);
  });

  it('lets a handler whose own spec changed react by that change, not by a second run', async () => {
    await apply(await plan(stack('v1')));
    engine.world.applied.length = 0;
    const p = await plan([item('conf', 'v2', { notify: ['Item/reload'] }), item('reload', 'r2')]);
    expect(change(p, 'Item/reload')).toMatchObject({ action: 'update', notifiedBy: ['Item/conf'] });
    expect(change(p, 'Item/reload').refresh).toBeUndefined();
    await apply(p);
    expect(engine.world.applied).toEqual(['update Item/conf', 'update Item/reload']);
  });

  it('follows a chain of handlers', async () => {
    const resources = (v: string) => [item('conf', v, { notify: ['Item/build'] }), item('build', 'b', { notify: ['Item/restart'] }), item('restart', 'r')];
    await apply(await plan(resources('1')));
    engine.world.applied.length = 0;
    const p = await plan(resources('2'));
    expect(change(p, 'Item/restart')).toMatchObject({ refresh: true, notifiedBy: ['Item/build'] });
    await apply(p);
    expect(engine.world.applied).toEqual(['update Item/conf', 'refresh Item/build <- Item/conf', 'refresh Item/restart <- Item/build']);
  });

  it('keeps a notification whose handler failed, and refreshes it on the next run', async () => {
    await apply(await plan(stack('v1')));
    engine.world.failing.add('reload');
    const failed = await apply(await plan(stack('v2')));
    expect(failed.failures.map((f) => f.address)).toEqual(['Item/reload']);
    expect((await engine.store.pendingRefreshes('s')).map((p) => [p.address, p.notifiedBy, p.runId])).toEqual([['Item/reload', 'Item/conf', failed.run.id]]);

    // The config no longer changes, but the handler never reacted to the last change: it still must.
    engine.world.failing.delete('reload');
    engine.world.applied.length = 0;
    const p = await plan(stack('v2'));
    expect(change(p, 'Item/conf').action).toBe('noop');
    expect(change(p, 'Item/reload')).toMatchObject({
      action: 'update',
      refresh: true,
      reason: `notified by Item/conf in run ${failed.run.id}, not yet refreshed`,
    });
    await apply(p);
    expect(engine.world.applied).toEqual(['refresh Item/reload <- Item/conf']);
    expect(await engine.store.pendingRefreshes('s')).toEqual([]);
    expect((await plan(stack('v2'))).changes.map((c) => c.action)).toEqual(['noop', 'noop']);
  });

  it('skips the handler when its notifier failed, and records nothing pending for it', async () => {
    await apply(await plan(stack('v1')));
    engine.world.failing.add('conf');
    engine.world.applied.length = 0;
    const r = await apply(await plan(stack('v2')));
    expect(r.counts).toMatchObject({ failed: 1, skipped: 1 });
    expect(engine.world.applied).toEqual(['update Item/conf']);
    expect(await engine.store.pendingRefreshes('s')).toEqual([]);
  });

  it('refreshes nothing for a deleted notifier or handler', async () => {
    await apply(await plan(stack('v1')));
    engine.world.applied.length = 0;
    const p = await plan([item('reload', 'r')]);
    expect(change(p, 'Item/conf').action).toBe('delete');
    expect(change(p, 'Item/reload').action).toBe('noop');
  });
});
