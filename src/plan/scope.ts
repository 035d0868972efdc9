/**
 * A plan scoped to what a diff touches (`capstan plan --base REF`): the
 * resources whose expanded document changed between two commits of the spec
 * (added, removed or different after templates and vars), plus everything that
 * depends on them in the graph (a handler they notify is one). The planner
 * reads only those live; the rest are counted and not read at all.
 */
import { buildResourceGraph } from '../graph/resource-graph.js';
import type { ProviderRegistry } from '../providers/registry.js';
import type { Address, Resource } from '../spec/resource.js';
import { canonicalJson } from './canonical.js';

/** The resources and targets of one side of the comparison, as the loader expanded them. */
export interface ScopeSide {
  readonly targets: readonly Resource[];
  readonly resources: readonly Resource[];
}

export interface ScopeSelection {
  /** What the comparison was made against: the ref as given and the commit it named. */
  readonly base: { readonly ref: string; readonly commit: string };
  /** Added, removed or changed between base and head. */
  readonly changed: ReadonlySet<Address>;
  /** Not changed themselves, but depending (transitively) on a changed one in head. */
  readonly dependents: ReadonlySet<Address>;
}

/** What a scoped plan says about itself (the plan JSON's `scope`). */
export interface PlanScope {
  readonly base: { readonly ref: string; readonly commit: string };
  readonly changed: number;
  readonly dependents: number;
  /** Resources read and planned: changed + dependents that the plan holds. */
  readonly planned: number;
  /** Every resource the plan would have read without the scope (the spec's, and the inventory's orphans). */
  readonly total: number;
  /** total - planned: not read live at all. */
  readonly skipped: number;
}

/** The resources a diff from `base` to `head` touches, and their dependents in `head`'s graph. */
export function selectTouched(
  base: ScopeSide,
  head: ScopeSide,
  registry: ProviderRegistry,
  ref: { ref: string; commit: string },
): ScopeSelection {
  const document = (r: Resource): string => canonicalJson({ target: r.target, dependsOn: r.dependsOn, notify: r.notify ?? [], spec: r.spec });
  const baseTargets = new Map(base.targets.map((t) => [t.address, canonicalJson(t.spec)]));
  // A target whose own spec changed (a Host's address, its vars) touches every resource on it.
  const changedTargets = new Set(head.targets.filter((t) => baseTargets.get(t.address) !== canonicalJson(t.spec)).map((t) => t.address));
  const before = new Map(base.resources.map((r) => [r.address, document(r)]));
  const changed = new Set<Address>();
  for (const r of head.resources) {
    if (before.get(r.address) !== document(r) || (r.target !== undefined && changedTargets.has(r.target))) changed.add(r.address);
  }
  const headAddresses = new Set(head.resources.map((r) => r.address));
  for (const r of base.resources) if (!headAddresses.has(r.address)) changed.add(r.address);

  const graph = buildResourceGraph(head.resources, registry);
  const dependents = new Set<Address>();
  const queue = [...changed].filter((a) => graph.has(a));
  while (queue.length > 0) {
    for (const d of graph.dependentsOf(queue.pop()!)) {
      if (changed.has(d) || dependents.has(d)) continue;
      dependents.add(d);
      queue.push(d);
    }
  }
  return { base: ref, changed, dependents };
}

export function inScope(selection: ScopeSelection, address: Address): boolean {
  return selection.changed.has(address) || selection.dependents.has(address);
}

/** "Planned 4 of 1,003 resources: 3 changed between abc1234 and HEAD, 1 depends on them; 999 not read" */
export function describeScope(scope: PlanScope): string {
  const n = (x: number): string => x.toLocaleString('en-US');
  const base = scope.base.ref === scope.base.commit ? scope.base.commit.slice(0, 12) : `${scope.base.ref} (${scope.base.commit.slice(0, 12)})`;
  return (
    `Planned ${n(scope.planned)} of ${n(scope.total)} resources: ${n(scope.changed)} changed between ${base} and HEAD, ` +
    `${n(scope.dependents)} ${scope.dependents === 1 ? 'depends' : 'depend'} on them; ${n(scope.skipped)} not read`
  );
}
