import { PartialReadError, type AnyResourceProvider, type Claim, type FieldChange, type Reference, type TargetHandle } from '../providers/provider.js';
import type { TargetPool } from '../providers/target-pool.js';
import type { Address, Resource } from '../spec/resource.js';

export interface LiveSubject {
  readonly address: Address;
  readonly kind: string;
  readonly provider: AnyResourceProvider;
  readonly target: Resource;
  /** The spec that names the live object (the desired one, or the last applied one for orphans). */
  readonly spec: unknown;
}

/**
 * One resource's read: its live state (and what the provider reported with it:
 * its claims as found live, its references the target lacks), or why it failed.
 */
export type LiveRead =
  | {
      readonly live: unknown;
      readonly located?: readonly Claim[] | undefined;
      readonly unresolved?: readonly Reference[] | undefined;
      /** What a create of a resource read as absent will give (`ReadContext.creates`). */
      readonly creates?: readonly FieldChange[] | undefined;
    }
  | { readonly error: string };

/**
 * Reads live state with one provider.read per (target, kind) batch, batches
 * running concurrently up to a limit. A target that cannot be reached, or a
 * batch that fails, gives an error for each of its resources; a batch that
 * fails for some resources only (`PartialReadError`) gives each its own.
 */
export async function readLiveState(
  subjects: readonly LiveSubject[],
  pool: TargetPool,
  options: { concurrency: number; signal: AbortSignal },
): Promise<Map<Address, LiveRead>> {
  const batches = new Map<string, LiveSubject[]>();
  for (const s of subjects) {
    const key = `${s.target.address}\u0000${s.kind}`;
    const batch = batches.get(key);
    if (batch) batch.push(s);
    else batches.set(key, [s]);
  }
  const results = new Map<Address, LiveRead>();
  const fail = (batch: readonly LiveSubject[], message: string): void => {
    for (const s of batch) results.set(s.address, { error: message });
  };
  const readBatch = async (batch: LiveSubject[]): Promise<void> => {
    const first = batch[0]!;
    let handle: TargetHandle;
    try {
      handle = await pool.connect(first.target);
    } catch (err) {
      fail(batch, `cannot reach ${first.target.address}: ${messageOf(err)}`);
      return;
    }
    const located = new Map<number, readonly Claim[]>();
    const unresolved = new Map<number, readonly Reference[]>();
    const creates = new Map<number, readonly FieldChange[]>();
    const live = (i: number, value: unknown): LiveRead => {
      const claims = located.get(i);
      const missing = unresolved.get(i);
      const created = value == null ? creates.get(i) : undefined;
      return { live: value ?? null, ...(claims ? { located: claims } : {}), ...(missing ? { unresolved: missing } : {}), ...(created ? { creates: created } : {}) };
    };
    try {
      const lives = await first.provider.read(
        handle,
        batch.map((s) => s.spec),
        {
          ...pool.contextFor(options.signal),
          located: (i, claims) => located.set(i, claims),
          unresolved: (i, references) => unresolved.set(i, references),
          creates: (i, fields) => creates.set(i, fields),
        },
      );
      if (lives.length !== batch.length) {
        throw new Error(`provider ${first.kind} returned ${lives.length} live states for ${batch.length} resources`);
      }
      batch.forEach((s, i) => results.set(s.address, live(i, lives[i])));
    } catch (err) {
      if (err instanceof PartialReadError && err.results.length === batch.length) {
        batch.forEach((s, i) => {
          const r = err.results[i]!;
          results.set(s.address, 'error' in r ? { error: `reading live state failed: ${r.error.message}` } : live(i, r.live));
        });
        return;
      }
      fail(batch, `reading live state failed: ${messageOf(err)}`);
    }
  };
  const queue = [...batches.values()];
  const workers = Array.from({ length: Math.min(options.concurrency, queue.length) }, async () => {
    for (let batch = queue.shift(); batch; batch = queue.shift()) await readBatch(batch);
  });
  await Promise.all(workers);
  return results;
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
