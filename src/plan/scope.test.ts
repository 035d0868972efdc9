import { describe, expect, it } from 'vitest';
import { applyPlan } from '../apply/apply.js';
import type { Resource } from '../spec/resource.js';
import type { Plan } from './plan.js';
import { renderPlanText } from './render-text.js';
import { describeScope, selectTouched, type ScopeSelection } from './scope.js';
import { planInMemory, testActor, useMemoryEngine } from './testing/engine.js';
import { bucket, item } from './testing/memory-provider.js';

const engine = useMemoryEngine('capstan-scope-');
const BASE = { ref: 'main', commit: 'b'.repeat(40) };

function side(resources: Resource[]) {
  return { targets: [bucket('b')], resources };
}

const plan = (resources: Resource[], scope?: ScopeSelection): Promise<Plan> => planInMemory(engine, resources, { scope });

function fleet(n: number, overrides: Record<string, string> = {}): Resource[] {
  const out: Resource[] = [];
  for (let i = 0; i < n; i++) {
    const name = `f${i}`;
    out.push(item(name, overrides[name] ?? 'v', name === 'f1' ? { dependsOn: ['Item/f0'] } : {}));
  }
  return out;
}

describe('a plan scoped to a diff (plan --base)', () => {
  it('reads only the resources the diff touches and their dependents, and counts the rest as skipped', async () => {
    const before = fleet(1000);
    const applied = await plan(before);
    await engine.withTargets((targets, registry) => applyPlan({ plan: applied, registry, store: engine.store, targets, actor: testActor, parallelism: 8 }));

    // f0 (f1 depends on it), f500 and f999 change; f1 is a dependent only.
    const after = fleet(1000, { f0: 'w', f500: 'w', f999: 'w' });
    const scope = await engine.withTargets(async (_t, registry) => selectTouched(side(before), side(after), registry, BASE));
    expect([...scope.changed].sort()).toEqual(['Item/f0', 'Item/f500', 'Item/f999']);
    expect([...scope.dependents]).toEqual(['Item/f1']);

    engine.world.readKeys.length = 0;
    const p = await plan(after, scope);
    expect(engine.world.readKeys.sort()).toEqual(['f0', 'f1', 'f500', 'f999']);
    expect(p.changes.map((c) => `${c.action} ${c.address}`)).toEqual(['update Item/f0', 'noop Item/f1', 'update Item/f500', 'update Item/f999']);
    expect(p.scope).toEqual({ base: BASE, changed: 3, dependents: 1, planned: 4, total: 1000, skipped: 996 });
    expect(renderPlanText(p)).toContain(`Planned 4 of 1,000 resources: 3 changed between main (${'b'.repeat(12)}) and HEAD, 1 depends on them; 996 not read`);
  });

  it('plans the delete of a resource removed between base and head, and not the orphans the diff did not touch', async () => {
    const applied = await plan([item('a', '1'), item('b', '1'), item('c', '1')]);
    await engine.withTargets((targets, registry) => applyPlan({ plan: applied, registry, store: engine.store, targets, actor: testActor, parallelism: 2 }));
    // c was removed before base (not yet applied), b between base and head.
    const base = [item('a', '1'), item('b', '1')];
    const head = [item('a', '1')];
    const scope = await engine.withTargets(async (_t, registry) => selectTouched(side(base), side(head), registry, BASE));
    engine.world.readKeys.length = 0;
    const p = await plan(head, scope);
    expect(p.changes.map((c) => `${c.action} ${c.address}`)).toEqual(['delete Item/b']);
    expect(engine.world.readKeys).toEqual(['b']);
    expect(p.scope).toMatchObject({ changed: 1, planned: 1, total: 3, skipped: 2 });
  });

  it('counts a change of the target itself, of dependsOn or of notify as touching the resource', async () => {
    const base = [item('a', '1'), item('b', '1'), item('c', '1')];
    const head = [item('a', '1', { dependsOn: ['Item/c'] }), item('b', '1', { notify: ['Item/c'] }), item('c', '1')];
    const scope = await engine.withTargets(async (_t, registry) => selectTouched(side(base), side(head), registry, BASE));
    expect([...scope.changed].sort()).toEqual(['Item/a', 'Item/b']);
    // c is notified by b: a handler depends on what notifies it.
    expect([...scope.dependents]).toEqual(['Item/c']);

    const movedTarget = { ...bucket('b'), spec: { groups: ['new'] } };
    const all = await engine.withTargets(async (_t, registry) => selectTouched(side(base), { targets: [movedTarget], resources: base }, registry, BASE));
    expect([...all.changed].sort()).toEqual(['Item/a', 'Item/b', 'Item/c']);
  });

  it('says "depend" for several dependents and shows a bare commit when the ref is one', () => {
    const commit = 'c'.repeat(40);
    expect(describeScope({ base: { ref: commit, commit }, changed: 1, dependents: 2, planned: 3, total: 3, skipped: 0 })).toBe(
      `Planned 3 of 3 resources: 1 changed between ${'c'.repeat(12)} and HEAD, 2 depend on them; 0 not read`,
    );
  });
});
