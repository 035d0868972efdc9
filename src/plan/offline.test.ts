import { describe, expect, it } from 'vitest';
import { applyPlan, PlanNotApplicableError } from '../apply/apply.js';
import type { Resource } from '../spec/resource.js';
import type { Plan } from './plan.js';
import { renderPlanText } from './render-text.js';
import { OFFLINE_BANNER } from './offline.js';
import { planInMemory, testActor, useMemoryEngine } from './testing/engine.js';
import { item } from './testing/memory-provider.js';

const engine = useMemoryEngine('capstan-offline-');

const plan = (resources: Resource[], offline: boolean): Promise<Plan> => planInMemory(engine, resources, { offline });

const apply = (p: Plan) => engine.withTargets((targets, registry) => applyPlan({ plan: p, registry, store: engine.store, targets, actor: testActor, parallelism: 2 }));

describe('plan --offline', () => {
  it('without recorded state plans every resource as a create, reading nothing and connecting to nothing', async () => {
    const p = await plan([item('a', '1'), item('b', '2')], true);
    expect(p.offline).toBe(true);
    expect(p.changes.map((c) => `${c.action} ${c.address}`)).toEqual(['create Item/a', 'create Item/b']);
    expect(engine.world.readCalls).toBe(0);
    expect(engine.world.data.size).toBe(0); // the bucket was never connected
    const text = renderPlanText(p);
    expect(text.startsWith(OFFLINE_BANNER)).toBe(true);
    expect(text).toContain('no recorded state yet');
  });

  it('compares the spec with the last applied one: shows spec changes and deletes, not drift', async () => {
    await apply(await plan([item('a', '1'), item('b', '2'), item('c', '3')], false));
    engine.world.data.get('Bucket/b')!.set('b', 'drifted');
    engine.world.readCalls = 0;
    const p = await plan([item('a', '9'), item('b', '2')], true);
    expect(engine.world.readCalls).toBe(0);
    expect(p.changes.map((c) => `${c.action} ${c.address}`)).toEqual(['update Item/a', 'noop Item/b', 'delete Item/c']);
    expect(p.changes[0]!.fields).toEqual([{ path: 'value', before: '1', after: '9' }]);
    expect(renderPlanText(p)).toContain(OFFLINE_BANNER);
    expect(renderPlanText(p)).not.toContain('no recorded state yet');
    // The online plan sees the drift the offline one cannot.
    const online = await plan([item('a', '9'), item('b', '2')], false);
    expect(online.changes.find((c) => c.address === 'Item/b')!.action).toBe('update');
  });

  it('can never be applied', async () => {
    const p = await plan([item('a', '1')], true);
    await expect(apply(p)).rejects.toThrow(PlanNotApplicableError);
    expect(engine.world.applied).toEqual([]);
  });
});
