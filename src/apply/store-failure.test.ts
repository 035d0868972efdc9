/** An apply whose state store stops taking results: it stops, saves what was not recorded, and the next apply imports it. */
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { planChanges } from '../plan/planner.js';
import { testActor as actor, testSource as source, useMemoryEngine } from '../plan/testing/engine.js';
import { bucket, item } from '../plan/testing/memory-provider.js';
import type { Resource } from '../spec/resource.js';
import type { ResourceResult } from '../state/store.js';
import { failingStore, withRecordResults } from '../state/testing/failing-store.js';
import { applyPlan } from './apply.js';
import { Sensitive } from '../secrets/sensitive.js';
import { importRecoveries, RecoveryFiles } from './recovery.js';

const engine = useMemoryEngine('capstan-store-failure-');
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-recovery-test-'));
});
afterEach(async () => rm(dir, { recursive: true, force: true }));

const items = (n: number): Resource[] => Array.from({ length: n }, (_, i) => item(`i${String(i).padStart(2, '0')}`, `v${i}`));
const desired = (resources: Resource[]) => ({ targets: [bucket('b')], resources, specHash: 'h', diagnostics: [] });

describe('an apply whose store fails', () => {
  it('stops starting changes, keeps every unrecorded result in a 0600 recovery file, and the next apply imports it', async () => {
    const resources = items(40);
    const plan = await engine.withTargets((targets, registry) => planChanges({ stack: 's', desired: desired(resources), source, registry, store: engine.store, targets }));
    const store = failingStore(engine.store, 4);
    const files = new RecoveryFiles(`sqlite:${path.join(dir, 'state.db')}`, [path.join(dir, 'recovery')]);
    const result = await engine.withTargets((targets, registry) =>
      applyPlan({ plan, registry, store, targets, actor, parallelism: 2, recovery: files, recordRetry: { attempts: 3, firstDelayMs: 1 } }),
    );

    expect(result.status).toBe('failed');
    const failure = result.storeFailure!;
    expect(failure.error).toMatch(/SQLITE_FULL/);
    // 3 writes succeeded and the 4th was tried 3 times; nothing was written after the store was lost.
    expect(store.calls).toBe(6);
    const applied = engine.world.applied.length;
    expect(applied).toBeLessThan(40);
    const recorded = await engine.store.listResults(result.run.id);
    const made = failure.unrecorded.filter((r) => r.status === 'succeeded');
    // Every change made is either recorded or in the recovery file, never both, never neither.
    expect(recorded.length + made.length).toBe(applied);
    expect(new Set([...recorded.map((r) => r.address), ...made.map((r) => r.address)]).size).toBe(applied);
    expect(failure.unrecorded.filter((r) => r.status === 'skipped').length).toBe(40 - applied);

    const file = failure.recoveryFile!;
    expect(path.dirname(file)).toBe(path.join(dir, 'recovery'));
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(path.dirname(file))).mode & 0o777).toBe(0o700);
    const saved = JSON.parse(await readFile(file, 'utf8')) as { runId: number; stack: string; results: ResourceResult[] };
    expect(saved).toMatchObject({ runId: result.run.id, stack: 's' });
    expect(saved.results.map((r) => r.address)).toEqual(failure.unrecorded.map((r) => r.address));

    // The next apply, on the store that works again, imports the file before it plans: nothing is created twice.
    const imported = await importRecoveries(engine.store, 's', files);
    expect(imported).toEqual([{ file, runId: result.run.id, imported: failure.unrecorded.length }]);
    expect(await readdir(path.join(dir, 'recovery'))).toEqual([]);
    expect((await engine.store.inventory('s')).length).toBe(applied);
    expect((await engine.store.getRun(result.run.id))!.status).toBe('failed');
    const next = await engine.withTargets((targets, registry) => planChanges({ stack: 's', desired: desired(resources), source, registry, store: engine.store, targets }));
    expect(next.changes.filter((c) => c.action === 'create').length).toBe(40 - applied);
    expect(next.changes.filter((c) => c.action === 'noop' && c.recordOnly)).toEqual([]);
    // Importing again finds nothing.
    expect(await importRecoveries(engine.store, 's', files)).toEqual([]);
  });

  it('a write that fails once and then succeeds is retried, and the apply goes on', async () => {
    const plan = await engine.withTargets((targets, registry) => planChanges({ stack: 's', desired: desired(items(10)), source, registry, store: engine.store, targets }));
    let failures = 1;
    const flaky = withRecordResults(engine.store, async (runId, results) => {
      if (failures-- > 0) throw new Error('Connection terminated unexpectedly');
      return engine.store.recordResults(runId, results);
    });
    const result = await engine.withTargets((targets, registry) => applyPlan({ plan, registry, store: flaky, targets, actor, recordRetry: { attempts: 3, firstDelayMs: 1 } }));
    expect(result.status).toBe('succeeded');
    expect(result.storeFailure).toBeUndefined();
    expect((await engine.store.inventory('s')).length).toBe(10);
  });

  it('a lost lock stops starting changes, and the run is failed', async () => {
    const plan = await engine.withTargets((targets, registry) => planChanges({ stack: 's', desired: desired(items(20)), source, registry, store: engine.store, targets }));
    const lockLost = new AbortController();
    const recording = withRecordResults(engine.store, async (runId, results) => {
      await engine.store.recordResults(runId, results);
      lockLost.abort(new Error('the connection holding the lock on stack "s" was lost'));
    });
    const result = await engine.withTargets((targets, registry) =>
      applyPlan({ plan, registry, store: recording, targets, actor, parallelism: 1, lockLost: lockLost.signal }),
    );
    expect(result.status).toBe('failed');
    expect(result.run.error).toMatch(/lock on stack "s" was lost/);
    expect(engine.world.applied.length).toBeLessThan(20);
  });

  it('never writes a secret value into the recovery file', async () => {
    const files = new RecoveryFiles('postgres://capstan:pw-in-url@db.example:5432/capstan', [path.join(dir, 'recovery')]);
    const spec = { path: '/etc/app.conf', content: new Sensitive('hunter2-plaintext', 'digest-1') };
    const result: ResourceResult = {
      address: 'File/app',
      action: 'create',
      status: 'succeeded',
      error: null,
      durationMs: 1,
      inventory: { address: 'File/app', kind: 'File', target: 'Host/h', targetKind: 'Host', targetSpec: {}, spec, specHash: 'x', liveFingerprint: null, dependsOn: [], origin: 'created' },
    };
    const file = await files.write({ stack: 's', runId: 7, error: 'gone', results: [result] });
    const text = await readFile(file, 'utf8');
    expect(text).not.toContain('hunter2-plaintext');
    expect(text).not.toContain('pw-in-url');
    // Only the keyed digest, as in the store (src/secrets/sensitive.ts).
    expect(text).toMatch(/"content": \{\s*"\$sensitive": "digest-1"\s*\}/);
  });
});
