/**
 * planChanges(desired, prior) -> Plan: reads live state through the providers,
 * one batch per target and kind, and diffs it against the desired spec and the
 * inventory. It changes nothing.
 */
import { error, hasErrors, warning, type Diagnostic } from '../diag/diagnostic.js';
import { buildResourceGraph, groupByTarget, providedOnTarget } from '../graph/resource-graph.js';
import type { AnyResourceProvider, FieldChange, Reference, ResourceDiff } from '../providers/provider.js';
import type { ProviderRegistry } from '../providers/registry.js';
import { storedTarget, type TargetPool } from '../providers/target-pool.js';
import type { Address, Resource } from '../spec/resource.js';
import type { InventoryEntry, PendingRefresh, Store } from '../state/store.js';
import { canonicalJson, fingerprint, sha256 } from './canonical.js';
import { claimCollisions, machineOfTarget, type ClaimedResource } from '../spec/claims.js';
import type { Policy } from '../policy/policy.js';
import { readLiveState, type LiveRead } from './read-live.js';
import { planRollouts, type RolloutInputs } from './rollout.js';
import { groupBy } from '../util/group-by.js';
import { holdsUnreadSecret, offlineChange } from './offline.js';
import { inScope, type PlanScope, type ScopeSelection } from './scope.js';
import { PLAN_FORMAT_VERSION, type Plan, type PlanSource, type PlannedChange, type PlannedTarget } from './plan.js';

/** The validated desired state (a LoadedStack satisfies it). */
export interface DesiredState extends RolloutInputs {
  readonly targets: readonly Resource[];
  readonly resources: readonly Resource[];
  readonly specHash: string;
  readonly diagnostics: readonly Diagnostic[];
  /** Checked against every plan before it is applied (src/policy/); absent: none. */
  readonly policies?: readonly Policy[] | undefined;
}

export interface PlanOptions {
  readonly stack: string;
  readonly desired: DesiredState;
  readonly source: PlanSource;
  readonly registry: ProviderRegistry;
  readonly store: Store;
  readonly targets: TargetPool;
  /** Deleting more than this share of managed resources needs allowMassDelete. */
  readonly massDeleteThreshold?: number;
  readonly allowMassDelete?: boolean;
  /**
   * Delete resources removed from the spec that Capstan adopted (found already
   * there) as well as those it created. Default false: an adopted resource
   * removed from the spec is forgotten (dropped from the inventory) and left
   * in place, since Capstan never created it.
   */
  readonly pruneAdopted?: boolean;
  /**
   * Plan only these resources (`plan --base`): the others are not read live and
   * the plan holds no change for them; its `scope` says how many were skipped.
   */
  readonly scope?: ScopeSelection | undefined;
  /**
   * Read nothing live (`plan --offline`): compare the spec with the last
   * recorded state only; no target is connected. The plan has `offline: true`
   * and can never be applied.
   */
  readonly offline?: boolean | undefined;
  /** How many target batches are read at once. */
  readonly readConcurrency?: number;
  readonly signal?: AbortSignal;
}

export const DEFAULT_MASS_DELETE_THRESHOLD = 0.5;

const FORGET_ADOPTED_REASON = 'removed from the spec; Capstan adopted it and did not create it, so it is left in place (prune adopted resources to delete it)';

/** One resource to read: desired (from the spec) or orphaned (only in the inventory). */
interface Subject {
  readonly address: Address;
  readonly kind: string;
  readonly provider: AnyResourceProvider;
  readonly target: Resource;
  readonly desired: Resource | undefined;
  readonly managed: InventoryEntry | undefined;
}

export function resourceSpecHash(resource: Pick<Resource, 'target' | 'spec'>): string {
  return sha256(canonicalJson({ target: resource.target, spec: resource.spec }));
}

export async function planChanges(options: PlanOptions): Promise<Plan> {
  const { desired, registry, store, stack } = options;
  const diagnostics: Diagnostic[] = [...desired.diagnostics];
  const [inventory, priorSerial, pending] = await Promise.all([store.inventory(stack), store.serial(stack), store.pendingRefreshes(stack)]);
  await registry.load([...[...desired.resources, ...desired.targets].map((r) => r.kind), ...inventory.flatMap((e) => [e.kind, e.targetKind])]);
  const base = {
    formatVersion: PLAN_FORMAT_VERSION,
    stack,
    createdAt: new Date().toISOString(),
    source: options.source,
    specHash: desired.specHash,
    priorSerial,
  } as const;
  // A spec with errors never becomes "nothing desired": no changes at all, deletes included.
  if (hasErrors(diagnostics)) return { ...base, targets: {}, changes: [], diagnostics };

  const collected = collectSubjects(desired, inventory, registry, diagnostics);
  const selection = options.scope;
  const all = selection ? collected.filter((s) => inScope(selection, s.address)) : collected;
  const scope: PlanScope | undefined = selection && {
    base: selection.base,
    changed: all.filter((s) => selection.changed.has(s.address)).length,
    dependents: all.filter((s) => selection.dependents.has(s.address)).length,
    planned: all.length,
    total: collected.length,
    skipped: collected.length - all.length,
  };
  // Forgetting needs no live state: the object is left as it is, wherever it is.
  const forgotten = all.filter((s) => !s.desired && s.managed?.origin === 'adopted' && !options.pruneAdopted);
  const subjects = all.filter((s) => !forgotten.includes(s));
  const targets: Record<Address, PlannedTarget> = {};
  for (const s of subjects) targets[s.target.address] = { kind: s.target.kind, spec: s.target.spec };

  const graph = buildResourceGraph(desired.resources, registry);
  const finish = (changes: PlannedChange[]): Plan => {
    changes.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
    const notified = markNotified(changes, desired.resources, pending);
    checkMassDelete(notified, inventory.length, options, diagnostics);
    // A health check that does not render for a host is an error diagnostic: apply refuses such a plan.
    const rollouts = planRollouts(desired, notified, registry, diagnostics);
    return {
      ...base,
      ...(options.offline ? { offline: true as const } : {}),
      targets,
      changes: notified,
      ...(rollouts.length > 0 ? { rollouts } : {}),
      ...(scope ? { scope } : {}),
      diagnostics,
    };
  };
  if (options.offline) {
    const unread = all.filter((s) => s.desired && holdsUnreadSecret(s.desired.spec)).length;
    if (unread > 0) {
      diagnostics.push(
        warning(`no age identity: the secrets of ${unread} resource(s) were not decrypted; their values are unknown and taken as unchanged`, {
          detail: 'a changed reference or secret file is still seen by --base; give --identity to compare the values',
        }),
      );
    }
    return finish(
      all.map((s) => {
        const isForgotten = forgotten.includes(s);
        const change = offlineChange({
          address: s.address,
          kind: s.kind,
          target: s.target.address,
          label: s.provider.describe?.((s.desired ?? s.managed)?.spec),
          desired: s.desired && {
            spec: s.desired.spec,
            specHash: resourceSpecHash(s.desired),
            dependsOn: graph.has(s.address) ? [...graph.dependenciesOf(s.address)].sort() : [],
          },
          managed: s.managed,
          forgets: isForgotten || (s.managed !== undefined && s.provider.forgetsOnDelete?.(s.managed.spec) === true),
        });
        return isForgotten ? { ...change, reason: FORGET_ADOPTED_REASON, origin: 'adopted' as const } : change;
      }),
    );
  }
  const live = await readLiveState(
    subjects.map((s) => ({ ...s, spec: s.desired ? s.desired.spec : s.managed?.spec })),
    options.targets,
    { concurrency: options.readConcurrency ?? 16, signal: options.signal ?? new AbortController().signal },
  );
  const dependents = new Map<Address, Address[]>();
  for (const entry of inventory) {
    for (const dep of entry.dependsOn) {
      const list = dependents.get(dep) ?? [];
      list.push(entry.address);
      dependents.set(dep, list);
    }
  }

  // Aliases only the live machine shows (a symbolic link to a directory inside the root): the plan is an error.
  diagnostics.push(...claimCollisions(locatedClaims(subjects, live, registry), { when: 'the live machine resolves both to it' }));

  const desiredAddresses = new Set(desired.resources.map((r) => r.address));
  const providedByTarget = lazyProvided(desired.resources, registry);
  const changes: PlannedChange[] = forgotten.map((s) => ({
    address: s.address,
    kind: s.kind,
    target: s.target.address,
    action: 'noop',
    label: s.managed?.spec === undefined ? undefined : s.provider.describe?.(s.managed.spec),
    reason: FORGET_ADOPTED_REASON,
    before: null,
    after: null,
    prior: s.managed?.spec ?? null,
    fields: [],
    waitsFor: [],
    dependsOn: [],
    specHash: null,
    liveFingerprint: null,
    managed: true,
    origin: 'adopted',
    recordOnly: true,
    forget: true,
  }));
  const deletedAlongside = (of: Subject) =>
    subjects
      .filter((o) => !o.desired && o !== of && o.target.address === of.target.address && o.managed !== undefined)
      .map((o) => ({ kind: o.kind, spec: o.managed!.spec }));
  for (const s of subjects) {
    const read = live.get(s.address);
    if (!read || 'error' in read) {
      diagnostics.push(error(read?.error ?? 'live state was not read', { address: s.address, source: s.desired?.source }));
      continue;
    }
    const prior = s.managed ? s.managed.spec : null;
    if (s.desired) {
      const diff = withCreateFields(s.provider.diff(s.desired.spec, read.live, prior), read.creates);
      diagnostics.push(...refusalDiagnostics(s.desired, diff), ...unresolvedDiagnostics(s.desired, read.unresolved, providedByTarget));
      const dependsOn = graph.has(s.address) ? [...graph.dependenciesOf(s.address)].sort() : [];
      const specHash = resourceSpecHash(s.desired);
      changes.push({
        address: s.address,
        kind: s.kind,
        target: s.target.address,
        action: diff.action,
        label: s.provider.describe?.(s.desired.spec),
        reason: diff.reason,
        before: read.live,
        after: s.desired.spec,
        prior,
        fields: diff.fields,
        waitsFor: dependsOn,
        dependsOn,
        specHash,
        liveFingerprint: fingerprint(read.live),
        managed: s.managed !== undefined,
        origin: s.managed?.origin ?? null,
        recordOnly:
          diff.action === 'noop' &&
          (s.managed === undefined || s.managed.specHash !== specHash || canonicalJson(s.managed.dependsOn) !== canonicalJson(dependsOn)),
        ...(s.managed === undefined && read.live !== null && read.live !== undefined && diff.action !== 'create' ? { adopt: true as const } : {}),
      });
    } else if (prior !== null && s.provider.forgetsOnDelete?.(prior) === true) {
      changes.push({
        address: s.address,
        kind: s.kind,
        target: s.target.address,
        action: 'noop',
        label: s.provider.describe?.(prior),
        reason: 'removed from the spec; deleting it would change nothing on the target, so Capstan only stops managing it',
        before: read.live,
        after: null,
        prior,
        fields: [],
        waitsFor: [],
        dependsOn: [],
        specHash: null,
        liveFingerprint: fingerprint(read.live),
        managed: true,
        origin: s.managed?.origin ?? null,
        recordOnly: true,
        forget: true,
      });
    } else {
      const refusal = prior !== null && s.provider.refuseDelete ? s.provider.refuseDelete(prior, read.live, deletedAlongside(s)) : undefined;
      if (refusal !== undefined) diagnostics.push(error(refusal, { address: s.address }));
      changes.push({
        address: s.address,
        kind: s.kind,
        target: s.target.address,
        action: 'delete',
        label: s.managed?.spec === undefined ? undefined : s.provider.describe?.(s.managed.spec),
        reason: read.live === null ? 'removed from the spec (already absent)' : 'removed from the spec',
        before: read.live,
        after: null,
        prior,
        fields: [],
        // Deletes run in reverse: wait for the managed resources that depended on this one.
        waitsFor: (dependents.get(s.address) ?? []).filter((a) => !desiredAddresses.has(a)),
        dependsOn: [],
        specHash: null,
        liveFingerprint: fingerprint(read.live),
        managed: true,
        origin: s.managed?.origin ?? null,
        recordOnly: false,
      });
    }
  }
  return finish(changes);
}

/**
 * Handlers: a change of a resource with `notify:` makes each handler it names
 * react once, after it. A handler with nothing to change of its own becomes an
 * `update` that refreshes it; one with its own change keeps it (that change is
 * its reaction). Notifications an earlier run recorded but whose handler never
 * reacted (it failed, was skipped, or the process died) count too.
 */
function markNotified(changes: readonly PlannedChange[], resources: readonly Resource[], pending: readonly PendingRefresh[]): PlannedChange[] {
  const handlersOf = new Map<Address, readonly Address[]>();
  for (const r of resources) if (r.notify?.length) handlersOf.set(r.address, r.notify);
  const notifiedBy = new Map<Address, Set<Address>>();
  const note = (handler: Address, by: Address): void => {
    const set = notifiedBy.get(handler) ?? new Set();
    set.add(by);
    notifiedBy.set(handler, set);
  };
  for (const p of pending) note(p.address, p.notifiedBy);
  const earlier = groupBy(pending, (p) => p.address);
  // A handler that reacts notifies its own handlers in turn (a chain of handlers), so iterate to a fixpoint.
  const byAddress = new Map(changes.map((c) => [c.address, c]));
  const changing = new Set<Address>();
  const queue: Address[] = changes.filter((c) => c.action === 'create' || c.action === 'update' || c.action === 'replace').map((c) => c.address);
  for (const handler of notifiedBy.keys()) if (byAddress.get(handler)?.action === 'noop') queue.push(handler);
  while (queue.length > 0) {
    const address = queue.pop()!;
    if (changing.has(address)) continue;
    changing.add(address);
    for (const handler of handlersOf.get(address) ?? []) {
      note(handler, address);
      if (!changing.has(handler) && byAddress.get(handler)?.action === 'noop') queue.push(handler);
    }
  }
  const reacts = (c: PlannedChange): boolean => changing.has(c.address);

  return changes.map((c) => {
    const handlers = reacts(c) ? handlersOf.get(c.address) : undefined;
    const withNotifies = handlers ? { ...c, notifies: handlers } : c;
    const by = notifiedBy.get(c.address);
    if (!by || c.action === 'delete' || c.forget) return withNotifies;
    const list = [...by].sort();
    if (c.action !== 'noop') return { ...withNotifies, notifiedBy: list };
    const carried = earlier.get(c.address) ?? [];
    const fromThisPlan = list.filter((a) => !carried.some((p) => p.notifiedBy === a));
    const reason = [
      ...(fromThisPlan.length > 0 ? [`notified by ${fromThisPlan.join(', ')}`] : []),
      ...(carried.length > 0 ? [`notified by ${carried.map((p) => `${p.notifiedBy} in run ${p.runId}`).join(', ')}, not yet refreshed`] : []),
    ].join('; ');
    return { ...withNotifies, action: 'update', refresh: true, notifiedBy: list, reason, recordOnly: false };
  });
}

/** Apply would refuse the change (`ResourceDiff.refusal`): an error now, at the field at fault. */
function refusalDiagnostics(resource: Resource, diff: ResourceDiff): Diagnostic[] {
  if (!diff.refusal) return [];
  const { message, field } = diff.refusal;
  return [error(message, { address: resource.address, source: field ? resource.positionOf(['spec', ...field]) : resource.source })];
}

/** A diff of a resource read as absent, showing what its create will give where the provider reported it (`ReadContext.creates`). */
function withCreateFields(diff: ResourceDiff, creates: readonly FieldChange[] | undefined): ResourceDiff {
  if (!creates?.length || (diff.action !== 'create' && diff.action !== 'replace')) return diff;
  const byPath = new Map(creates.map((f) => [f.path, f]));
  return { ...diff, fields: diff.fields.map((f) => byPath.get(f.path) ?? f) };
}

/**
 * References the live target lacks (`ReadContext.unresolved`), like Ansible's
 * check mode: a warning when a resource of the stack on the same target provides
 * it (the graph runs that one first), an error otherwise (apply would fail).
 */
function unresolvedDiagnostics(
  resource: Resource,
  unresolved: readonly Reference[] | undefined,
  providedByTarget: (target: Address) => ReadonlyMap<string, readonly Address[]>,
): Diagnostic[] {
  if (!unresolved?.length || resource.target === undefined) return [];
  const host = resource.target;
  const provided = providedByTarget(host);
  return unresolved.map((ref) => {
    const where = { address: resource.address, source: resource.positionOf(['spec', ...ref.field]) };
    const providers = provided.get(ref.key);
    if (providers?.length) return warning(`${ref.label} does not exist on ${host} yet: ${providers.join(', ')} creates it first`, where);
    return error(`${ref.label} does not exist on ${host}`, {
      ...where,
      detail: `declare it in the stack on ${host} so that it is created first, create it on the host, or change ${ref.field.join('.')}`,
    });
  });
}

/** `providedOnTarget` of each target's desired resources, computed on first use: most plans have no unresolved reference. */
function lazyProvided(resources: readonly Resource[], registry: ProviderRegistry): (target: Address) => ReadonlyMap<string, readonly Address[]> {
  let byTarget: Map<Address, readonly Resource[]> | undefined;
  const cache = new Map<Address, Map<string, Address[]>>();
  return (target) => {
    let provided = cache.get(target);
    if (!provided) {
      byTarget ??= groupByTarget(resources);
      provided = providedOnTarget(byTarget.get(target) ?? [], registry);
      cache.set(target, provided);
    }
    return provided;
  };
}

/** The claims the providers reported while reading (`ReadContext.located`), for the desired resources. */
function locatedClaims(subjects: readonly Subject[], live: ReadonlyMap<Address, LiveRead>, registry: ProviderRegistry): ClaimedResource[] {
  const out: ClaimedResource[] = [];
  for (const s of subjects) {
    const read = live.get(s.address);
    if (!s.desired || !read || !('located' in read) || !read.located) continue;
    const machine = machineOfTarget(s.target, registry);
    if (machine !== undefined) out.push({ resource: s.desired, machine, claims: read.located });
  }
  return out;
}

function collectSubjects(
  desired: DesiredState,
  inventory: readonly InventoryEntry[],
  registry: ProviderRegistry,
  diagnostics: Diagnostic[],
): Subject[] {
  const targetsByAddress = new Map(desired.targets.map((t) => [t.address, t]));
  const managed = new Map(inventory.map((e) => [e.address, e]));
  const subjects: Subject[] = [];
  for (const r of desired.resources) {
    // A declaration (no target) is rendered and tested, never applied.
    if (r.target === undefined && registry.resource(r.kind)?.targetOptional) continue;
    const provider = registry.resource(r.kind);
    const target = r.target ? targetsByAddress.get(r.target) : undefined;
    if (!provider || !target) {
      diagnostics.push(error(`no provider or target for ${r.kind}`, { address: r.address, source: r.source }));
      continue;
    }
    subjects.push({ address: r.address, kind: r.kind, provider, target, desired: r, managed: managed.get(r.address) });
  }
  const desiredAddresses = new Set(desired.resources.map((r) => r.address));
  for (const entry of inventory) {
    if (desiredAddresses.has(entry.address)) continue;
    const provider = registry.resource(entry.kind);
    if (!provider || !entry.target || !entry.targetKind) {
      diagnostics.push(
        error(`the state holds ${entry.address} of kind ${entry.kind}, which no provider handles; it cannot be deleted`, {
          address: entry.address,
        }),
      );
      continue;
    }
    const target = targetsByAddress.get(entry.target) ?? storedTarget(entry.target, entry.targetKind, entry.targetSpec);
    subjects.push({ address: entry.address, kind: entry.kind, provider, target, desired: undefined, managed: entry });
  }
  return subjects;
}

function checkMassDelete(
  changes: readonly PlannedChange[],
  managedCount: number,
  options: PlanOptions,
  diagnostics: Diagnostic[],
): void {
  if (options.allowMassDelete) return;
  // Kinds whose drop loses data (a database): any delete or replace of one needs the flag, whatever the count.
  for (const c of changes) {
    if ((c.action === 'delete' || c.action === 'replace') && options.registry.resource(c.kind)?.destructiveDelete) {
      diagnostics.push(
        error(`the plan ${c.action === 'delete' ? 'drops' : 'drops and recreates'} ${c.address}, which loses what it holds; if that is intended, run again with --allow-mass-delete`, {
          address: c.address,
        }),
      );
    }
  }
  const deletes = changes.filter((c) => c.action === 'delete').length;
  if (deletes === 0) return;
  const threshold = options.massDeleteThreshold ?? DEFAULT_MASS_DELETE_THRESHOLD;
  if (deletes === managedCount || deletes > managedCount * threshold) {
    diagnostics.push(
      error(
        `the plan deletes ${deletes} of ${managedCount} managed resources (more than ${Math.round(threshold * 100)}%); ` +
          'if that is intended, run again with --allow-mass-delete',
      ),
    );
  }
}

