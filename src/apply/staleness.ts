/**
 * A saved plan describes one moment. Before applying it, check that the spec,
 * the state store and the live objects it will change are still what it saw;
 * otherwise the plan must be made again.
 */
import { fingerprint } from '../plan/canonical.js';
import { isChange, type Plan } from '../plan/plan.js';
import { readLiveState, type LiveSubject } from '../plan/read-live.js';
import type { ProviderRegistry } from '../providers/registry.js';
import { storedTarget, type TargetPool } from '../providers/target-pool.js';
import type { Store } from '../state/store.js';

export interface StalenessCheck {
  readonly plan: Plan;
  /** Hash of the spec as it is now. */
  readonly currentSpecHash: string;
  readonly store: Store;
  readonly registry: ProviderRegistry;
  readonly targets: TargetPool;
  readonly signal?: AbortSignal;
}

/** Returns the reasons the plan is stale; empty when it can be applied. */
export async function findStaleness(check: StalenessCheck): Promise<string[]> {
  const { plan } = check;
  const reasons: string[] = [];
  if (check.currentSpecHash !== plan.specHash) {
    reasons.push('the spec changed since the plan was made');
  }
  const serial = await check.store.serial(plan.stack);
  if (serial !== plan.priorSerial) {
    reasons.push(`the state of stack "${plan.stack}" changed since the plan was made (serial ${plan.priorSerial} -> ${serial}): another apply ran`);
  }
  await check.registry.load(plan.changes.map((c) => c.kind).concat(Object.values(plan.targets).map((t) => t.kind)));
  const subjects: LiveSubject[] = [];
  for (const change of plan.changes) {
    if (!isChange(change.action)) continue;
    const provider = check.registry.resource(change.kind);
    const target = plan.targets[change.target];
    if (!provider || !target) {
      reasons.push(`${change.address}: kind or target unknown to this version of Capstan`);
      continue;
    }
    subjects.push({
      address: change.address,
      kind: change.kind,
      provider,
      target: storedTarget(change.target, target.kind, target.spec),
      spec: change.after ?? change.prior,
    });
  }
  const live = await readLiveState(subjects, check.targets, { concurrency: 16, signal: check.signal ?? new AbortController().signal });
  const moved: string[] = [];
  for (const change of plan.changes) {
    const read = live.get(change.address);
    if (!read) continue;
    if ('error' in read) reasons.push(`${change.address}: ${read.error}`);
    else if (fingerprint(read.live) !== change.liveFingerprint) moved.push(change.address);
  }
  if (moved.length > 0) {
    const shown = moved.slice(0, 10).join(', ') + (moved.length > 10 ? ` and ${moved.length - 10} more` : '');
    reasons.push(`the live state changed since the plan was made: ${shown}`);
  }
  return reasons;
}
