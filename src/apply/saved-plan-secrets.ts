/**
 * A saved plan holds only the digests of its secrets (`{"$sensitive": ...}`), so
 * before it is applied the values come back from the spec loaded again: a change
 * takes the re-loaded resource's spec, a target the re-loaded target's spec,
 * when their digests say they are the same. When a secret's digest differs (the
 * secret changed, or another identity decrypted it), the plan is stale.
 */
import { canonicalJson } from '../plan/canonical.js';
import type { Plan, PlannedChange, PlannedTarget } from '../plan/plan.js';
import { resourceSpecHash } from '../plan/planner.js';
import { isSensitiveDigest } from '../secrets/sensitive.js';
import type { Address, Resource } from '../spec/resource.js';

export interface RestoredPlan {
  readonly plan: Plan;
  /** Why the saved plan cannot be applied; empty when every secret was found. */
  readonly reasons: string[];
}

/** Does a value hold a secret's digest anywhere inside? */
export function holdsSecretDigest(value: unknown, depth = 0): boolean {
  if (isSensitiveDigest(value)) return true;
  if (depth > 64 || typeof value !== 'object' || value === null) return false;
  return Object.values(value).some((v) => holdsSecretDigest(v, depth + 1));
}

export function restoreSecrets(plan: Plan, reloaded: { readonly targets: readonly Resource[]; readonly resources: readonly Resource[] }): RestoredPlan {
  const reasons: string[] = [];
  const resources = new Map(reloaded.resources.map((r) => [r.address, r]));
  const targetsNow = new Map(reloaded.targets.map((t) => [t.address, t]));

  const changes = plan.changes.map((c): PlannedChange => {
    if (c.after === null || !holdsSecretDigest(c.after)) return c;
    const now = resources.get(c.address);
    if (!now || resourceSpecHash(now) !== c.specHash) {
      reasons.push(`${c.address}: a secret of its spec changed since the plan was made`);
      return c;
    }
    return { ...c, after: now.spec };
  });

  const targets: Record<Address, PlannedTarget> = {};
  for (const [address, t] of Object.entries(plan.targets)) {
    if (!holdsSecretDigest(t.spec)) {
      targets[address] = t;
      continue;
    }
    const now = targetsNow.get(address);
    if (!now || canonicalJson(now.spec) !== canonicalJson(t.spec)) {
      reasons.push(`${address}: a secret of the target changed since the plan was made, or the target left the spec`);
      targets[address] = t;
      continue;
    }
    targets[address] = { kind: t.kind, spec: now.spec };
  }
  return { plan: { ...plan, changes, targets }, reasons };
}
