/** A real store whose `recordResults` fails, as a full disk or a lost database does: for tests of store failures. */
import type { Store } from '../store.js';

const STORE_METHODS = ['lock', 'startRun', 'recordResults', 'appendEvent', 'finishRun', 'getRun', 'listRuns', 'listResults', 'listEvents', 'inventory', 'pendingRefreshes', 'serial', 'close'] as const;

/** The real store, with its `recordResults` replaced. */
export function withRecordResults(store: Store, recordResults: Store['recordResults']): Store {
  const methods = Object.fromEntries(STORE_METHODS.map((m) => [m, (store[m] as (...args: unknown[]) => unknown).bind(store)]));
  return { ...(methods as unknown as Store), recordResults };
}

/** The store, whose `recordResults` fails from the `failFrom`-th call on (1-based) with SQLite's full-disk error. */
export function failingStore(store: Store, failFrom: number): Store & { calls: number } {
  let calls = 0;
  const failing = withRecordResults(store, async (runId, results) => {
    calls += 1;
    if (calls >= failFrom) throw new Error('SQLITE_FULL: database or disk is full');
    return store.recordResults(runId, results);
  });
  return Object.defineProperty(failing, 'calls', { get: () => calls }) as Store & { calls: number };
}
