/**
 * Drift: does the live state still match what Capstan last applied? Compares
 * every inventory entry's live object with its last applied spec (not with git:
 * a new commit is a plan, not drift).
 */
import type { FieldChange } from '../providers/provider.js';
import type { ProviderRegistry } from '../providers/registry.js';
import { storedTarget, type TargetPool } from '../providers/target-pool.js';
import type { Address } from '../spec/resource.js';
import type { Store } from '../state/store.js';
import { readLiveState, type LiveSubject } from './read-live.js';

export type DriftStatus = 'in-sync' | 'drifted' | 'missing' | 'error';

export interface ResourceDrift {
  readonly address: Address;
  readonly kind: string;
  readonly target: Address | null;
  readonly status: DriftStatus;
  readonly fields: readonly FieldChange[];
  readonly error?: string | undefined;
}

export interface DriftReport {
  readonly stack: string;
  readonly checkedAt: string;
  readonly resources: readonly ResourceDrift[];
  readonly drifted: number;
  readonly errors: number;
}

export async function detectDrift(options: {
  stack: string;
  store: Store;
  registry: ProviderRegistry;
  targets: TargetPool;
  signal?: AbortSignal;
}): Promise<DriftReport> {
  const inventory = await options.store.inventory(options.stack);
  await options.registry.load(inventory.flatMap((e) => [e.kind, e.targetKind]));
  const resources: ResourceDrift[] = [];
  const subjects: LiveSubject[] = [];
  for (const entry of inventory) {
    const provider = options.registry.resource(entry.kind);
    if (!provider || !entry.target || !entry.targetKind) {
      resources.push({ address: entry.address, kind: entry.kind, target: entry.target, status: 'error', fields: [], error: `no provider for kind ${entry.kind}` });
      continue;
    }
    subjects.push({
      address: entry.address,
      kind: entry.kind,
      provider,
      target: storedTarget(entry.target, entry.targetKind, entry.targetSpec),
      spec: entry.spec,
    });
  }
  const live = await readLiveState(subjects, options.targets, { concurrency: 16, signal: options.signal ?? new AbortController().signal });
  const byAddress = new Map(inventory.map((e) => [e.address, e]));
  for (const s of subjects) {
    const entry = byAddress.get(s.address)!;
    const read = live.get(s.address);
    const base = { address: s.address, kind: s.kind, target: entry.target };
    if (!read || 'error' in read) {
      resources.push({ ...base, status: 'error', fields: [], error: read?.error ?? 'not read' });
      continue;
    }
    const diff = s.provider.diff(entry.spec, read.live, entry.spec);
    const status: DriftStatus = diff.action === 'noop' ? 'in-sync' : read.live === null ? 'missing' : 'drifted';
    resources.push({ ...base, status, fields: diff.fields });
  }
  resources.sort((a, b) => (a.address < b.address ? -1 : 1));
  return {
    stack: options.stack,
    checkedAt: new Date().toISOString(),
    resources,
    drifted: resources.filter((r) => r.status === 'drifted' || r.status === 'missing').length,
    errors: resources.filter((r) => r.status === 'error').length,
  };
}
