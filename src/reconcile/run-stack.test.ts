/** The controller's engine when its state store fails mid-apply: a recovery file, imported by the next pass. */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RecoveryFiles, type ImportedRecovery } from '../apply/recovery.js';
import { silentReporter } from '../apply/reporter.js';
import { testActor as actor, testSource as source, useMemoryEngine } from '../plan/testing/engine.js';
import { bucket, item, memoryRegistry } from '../plan/testing/memory-provider.js';
import type { Resource } from '../spec/resource.js';
import { failingStore } from '../state/testing/failing-store.js';
import type { Store } from '../state/store.js';
import { stackEngine } from './run-stack.js';

const engine = useMemoryEngine('capstan-run-stack-');
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-run-stack-recovery-'));
});
afterEach(async () => rm(dir, { recursive: true, force: true }));

const items = (n: number): Resource[] => Array.from({ length: n }, (_, i) => item(`i${String(i).padStart(2, '0')}`, `v${i}`));
const desired = (resources: Resource[]) => ({ targets: [bucket('b')], resources, specHash: 'h', diagnostics: [] });

/** One controller pass's engine work: plan the stack, apply what changes. */
async function pass(store: Store, files: RecoveryFiles, imported: ImportedRecovery[] = []) {
  const session = stackEngine({ registry: memoryRegistry(engine.world), store, recovery: files, onRecoveryImported: (_stack, r) => imported.push(r) }).session(
    new AbortController().signal,
  );
  try {
    const plan = await session.plan({ stack: 's', desired: desired(items(30)), source, allowMassDelete: false });
    const creates = plan.changes.filter((c) => c.action === 'create').length;
    // Resources the store does not know but that exist: the plan would only record (adopt) them.
    const recordOnly = plan.changes.filter((c) => c.recordOnly).length;
    const result = await session.apply({ plan, actor, parallelism: 2, reporter: silentReporter, onRunStarted: () => undefined });
    return { creates, recordOnly, result };
  } finally {
    await session.close();
  }
}

describe('the controller engine, when the state store fails during an apply', () => {
  it('saves the unrecorded results in a recovery file, and the next pass imports them before it plans: nothing lost, nothing twice', async () => {
    const files = new RecoveryFiles(`sqlite:${path.join(dir, 'state.db')}`, [path.join(dir, 'recovery')]);
    const first = await pass(failingStore(engine.store, 3), files);
    expect(first.creates).toBe(30);
    expect(first.result.status).toBe('failed');
    const failure = first.result.storeFailure!;
    expect(failure.error).toMatch(/SQLITE_FULL/);
    expect(failure.recoveryFile).not.toBeNull();
    expect(path.dirname(failure.recoveryFile!)).toBe(path.join(dir, 'recovery'));
    const madeFirst = engine.world.applied.length;
    const unrecordedMade = failure.unrecorded.filter((r) => r.status === 'succeeded').length;
    expect(unrecordedMade).toBeGreaterThan(0);
    // Without the file, the store knows fewer resources than were made.
    expect((await engine.store.inventory('s')).length).toBe(madeFirst - unrecordedMade);

    // The next pass, on a store that works again.
    const imported: ImportedRecovery[] = [];
    const second = await pass(engine.store, files, imported);
    expect(imported).toEqual([{ file: failure.recoveryFile, runId: first.result.run.id, imported: failure.unrecorded.length }]);
    expect(await readdir(path.join(dir, 'recovery'))).toEqual([]);
    expect((await engine.store.getRun(first.result.run.id))!.status).toBe('failed');
    // It plans only what the first pass did not make, and makes each of the 30 once.
    expect(second.creates).toBe(30 - madeFirst);
    expect(second.recordOnly).toBe(0);
    expect((await engine.store.inventory('s')).every((e) => e.origin === 'created')).toBe(true);
    expect(second.result.status).toBe('succeeded');
    expect((await engine.store.inventory('s')).length).toBe(30);
    expect(engine.world.applied).toHaveLength(30);
    expect(new Set(engine.world.applied).size).toBe(30);
  });

  it('without recovery files configured, the pass plans as before', async () => {
    const session = stackEngine({ registry: memoryRegistry(engine.world), store: engine.store }).session(new AbortController().signal);
    try {
      const plan = await session.plan({ stack: 's', desired: desired(items(3)), source, allowMassDelete: false });
      expect(plan.changes.filter((c) => c.action === 'create')).toHaveLength(3);
    } finally {
      await session.close();
    }
  });
});
