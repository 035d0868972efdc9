/**
 * Rollouts at plan time: which hosts of each group with `rollout:` settings go
 * out in which batch, the failure budget, and the health check rendered for each
 * host. The plan carries the result, so a saved plan rolls out exactly as shown.
 *
 * A host belongs to the rollout of the first of its groups (in the order its
 * `groups:` lists them) that has rollout settings. Only hosts with a change in
 * this plan take part; percentages are of the group's members, so a batch of
 * "25%" means the same number of hosts whatever changed.
 */
import { error, type Diagnostic } from '../diag/diagnostic.js';
import type { ProviderRegistry } from '../providers/registry.js';
import { allowedFailures, batchSize, HealthCheckRenderError, renderHealthCheck, type HostGroupSpec, type RenderedHealthCheck, type RenderedProbe } from '../spec/host-group.js';
import type { Address, Resource } from '../spec/resource.js';
import { groupBy } from '../util/group-by.js';
import { isChange, type PlannedChange, type PlannedRollout } from './plan.js';

export interface RolloutInputs {
  readonly targets: readonly Resource[];
  readonly hostGroups?: Readonly<Record<string, HostGroupSpec>> | undefined;
  readonly varsByTarget?: Readonly<Record<Address, Readonly<Record<string, unknown>>>> | undefined;
  readonly groupMembers?: Readonly<Record<string, readonly Address[]>> | undefined;
}

export function planRollouts(
  inputs: RolloutInputs,
  changes: readonly PlannedChange[],
  registry: ProviderRegistry,
  diagnostics: Diagnostic[],
): PlannedRollout[] {
  const groups = inputs.hostGroups ?? {};
  const withRollout = new Set(Object.keys(groups).filter((g) => groups[g]!.rollout !== undefined));
  if (withRollout.size === 0) return [];

  const changed = new Set(changes.filter((c) => isChange(c.action)).map((c) => c.target));
  const rolloutOf = (target: Resource) => registry.target(target.kind)?.groupsOf(target.spec).find((g) => withRollout.has(g));
  const hostsOf = groupBy(
    inputs.targets.filter((t) => changed.has(t.address) && rolloutOf(t) !== undefined),
    (t) => rolloutOf(t)!,
  );

  const rollouts: PlannedRollout[] = [];
  for (const group of [...hostsOf.keys()].sort()) {
    const rollout = groups[group]!.rollout!;
    const hosts = hostsOf.get(group)!.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const members = inputs.groupMembers?.[group]?.length ?? hosts.length;
    const size = batchSize(rollout, members);
    const batches: Address[][] = [];
    for (let i = 0; i < hosts.length; i += size) batches.push(hosts.slice(i, i + size).map((h) => h.address));

    let healthChecks: Record<Address, RenderedHealthCheck> | null = null;
    if (rollout.healthCheck) {
      healthChecks = {};
      for (const host of hosts) {
        try {
          healthChecks[host.address] = renderHealthCheck(rollout.healthCheck, inputs.varsByTarget?.[host.address] ?? {}, host.name);
        } catch (e) {
          if (!(e instanceof HealthCheckRenderError)) throw e;
          diagnostics.push(error(`rollout of group ${group}: ${e.message}`, { address: host.address, source: host.source }));
        }
      }
    }
    rollouts.push({ group, batches, members, maxFailures: allowedFailures(rollout, members), healthChecks });
  }
  return rollouts;
}

/** A probe for people: `GET http://...`, `tcp 10.0.0.1:22`, `command systemctl is-active nginx`. */
export function describeProbe(probe: RenderedProbe): string {
  switch (probe.type) {
    case 'http':
      return `GET ${probe.url}`;
    case 'tcp':
      return `tcp ${probe.address.includes(':') ? `[${probe.address}]` : probe.address}:${probe.port}`;
    case 'command':
      return `command ${probe.argv.join(' ')}`;
  }
}
