/**
 * An offline plan (`capstan plan --offline`): the spec against the last
 * recorded state (the specs applied, from the store's inventory), with no live
 * read, no connection to any target and no credentials. It shows what the
 * spec changes since the last apply; drift on the targets is not visible, and
 * it can never be applied (apply refuses a plan with `offline: true`).
 */
import type { FieldChange } from '../providers/provider.js';
import { digestOf, UNREAD_DIGEST_PREFIX } from '../secrets/sensitive.js';
import { canonicalJson } from './canonical.js';
import type { PlannedChange } from './plan.js';

export const OFFLINE_BANNER = 'OFFLINE PLAN: compared with the last recorded state, not the live hosts; drift is not visible';
export const OFFLINE_NO_STATE = 'There is no recorded state yet: every resource shows as created.';

/** What `plan --offline` knows of one resource: its desired spec and its inventory entry, each possibly absent. */
export interface RecordedSubject {
  readonly address: string;
  readonly kind: string;
  readonly target: string;
  readonly label: string | undefined;
  readonly desired: { readonly spec: unknown; readonly specHash: string; readonly dependsOn: readonly string[] } | undefined;
  readonly managed: { readonly spec: unknown; readonly specHash: string; readonly dependsOn: readonly string[]; readonly origin: 'created' | 'adopted' } | undefined;
  /** Deleting it changes nothing on the target (`forgetsOnDelete`). */
  readonly forgets: boolean;
}

/** The change one resource would make, judged from the recorded spec alone. */
export function offlineChange(s: RecordedSubject): PlannedChange {
  const common = {
    address: s.address,
    kind: s.kind,
    target: s.target,
    label: s.label,
    before: null,
    liveFingerprint: null,
    prior: s.managed?.spec ?? null,
    managed: s.managed !== undefined,
    origin: s.managed?.origin ?? null,
  };
  if (s.desired === undefined) {
    if (s.forgets) {
      return { ...common, action: 'noop', reason: 'removed from the spec; deleting it would change nothing on the target, so Capstan only stops managing it', after: null, fields: [], waitsFor: [], dependsOn: [], specHash: null, recordOnly: true, forget: true };
    }
    return { ...common, action: 'delete', reason: 'removed from the spec', after: null, fields: [], waitsFor: [], dependsOn: [], specHash: null, recordOnly: false };
  }
  const { spec, specHash, dependsOn } = s.desired;
  const base = { ...common, after: spec, waitsFor: dependsOn, dependsOn, specHash };
  if (s.managed === undefined) {
    return { ...base, action: 'create', reason: 'not in the recorded state', fields: specFields(undefined, spec), recordOnly: false };
  }
  const unread = holdsUnreadSecret(spec);
  if (s.managed.specHash === specHash || (unread && masked(s.managed.spec) === masked(spec))) {
    const recordOnly = canonicalJson(s.managed.dependsOn) !== canonicalJson(dependsOn);
    const reason = unread && s.managed.specHash !== specHash ? UNREAD_REASON : undefined;
    return { ...base, action: 'noop', ...(reason ? { reason } : {}), fields: [], recordOnly };
  }
  const fields = specFields(s.managed.spec, spec, unread);
  return { ...base, action: 'update', reason: 'the spec differs from the one last applied', fields, recordOnly: false };
}

export const UNREAD_REASON = 'its secrets were not decrypted (no age identity): they are unknown and taken as unchanged';

/** Whether a spec holds a secret left encrypted (`Keyring.unread`). */
export function holdsUnreadSecret(spec: unknown): boolean {
  let found = false;
  canonicalJson(spec, (v) => {
    if (digestOf(v)?.startsWith(UNREAD_DIGEST_PREFIX)) found = true;
    return v;
  });
  return found;
}

/** The canonical JSON with every secret replaced by one marker: what can be compared without the values. */
function masked(value: unknown): string {
  return canonicalJson(value, (v) => (digestOf(v) !== undefined ? '(secret)' : v));
}

/** Top-level fields of the spec that differ between the recorded and the desired one (secrets masked when unread). */
function specFields(before: unknown, after: unknown, unread = false): FieldChange[] {
  const b = isRecord(before) ? before : {};
  const a = isRecord(after) ? after : {};
  const keys = [...new Set([...Object.keys(b), ...Object.keys(a)])].sort();
  return keys
    .filter((k) => (unread ? masked(b[k]) !== masked(a[k]) : canonicalJson(b[k]) !== canonicalJson(a[k])))
    .map((k) => ({ path: k, before: b[k] ?? null, after: a[k] ?? null, ...(isMultiline(a[k]) || isMultiline(b[k]) ? { format: 'text' as const } : {}) }));
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function isMultiline(value: unknown): boolean {
  return typeof value === 'string' && value.includes('\n');
}
