/**
 * A test bed for engine tests on the in-memory provider: a fresh SQLite store
 * and memory world per test (registered as vitest hooks by `useMemoryEngine`),
 * and a target pool per plan or apply, closed after it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach } from 'vitest';
import { TargetPool } from '../../providers/target-pool.js';
import type { ProviderRegistry } from '../../providers/registry.js';
import { SqliteStore } from '../../state/sqlite/sqlite-store.js';
import type { Store } from '../../state/store.js';
import type { Resource } from '../../spec/resource.js';
import type { Plan, PlanSource } from '../plan.js';
import { planChanges, type PlanOptions } from '../planner.js';
import { bucket, memoryRegistry, memoryWorld, type MemoryWorld } from './memory-provider.js';

export const testActor = { user: 'tester', host: os.hostname(), pid: process.pid };
export const testSource: PlanSource = { dir: '/repo', repo: null, ref: null, commit: 'a'.repeat(40), author: 'A <a@x>', message: 'msg', dirty: false };

export interface MemoryEngine {
  readonly store: Store;
  readonly world: MemoryWorld;
  /** Runs `fn` with a registry over this test's world and a target pool closed afterwards. */
  withTargets<T>(fn: (targets: TargetPool, registry: ProviderRegistry) => Promise<T>): Promise<T>;
}

export function useMemoryEngine(prefix: string): MemoryEngine {
  let dir: string | undefined;
  let store: Store | undefined;
  let world: MemoryWorld | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), prefix));
    store = await SqliteStore.open(path.join(dir, 'state.db'));
    world = memoryWorld();
  });
  afterEach(async () => {
    await store?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  const engine: MemoryEngine = {
    get store() {
      if (!store) throw new Error('useMemoryEngine: no test is running');
      return store;
    },
    get world() {
      if (!world) throw new Error('useMemoryEngine: no test is running');
      return world;
    },
    async withTargets(fn) {
      const registry = memoryRegistry(engine.world);
      const targets = new TargetPool(registry, { signal: new AbortController().signal });
      try {
        return await fn(targets, registry);
      } finally {
        await targets.close();
      }
    },
  };
  return engine;
}

/** A plan of `resources` on bucket `b` of this test's world, with any other planner option. */
export function planInMemory(engine: MemoryEngine, resources: Resource[], extra: Partial<Omit<PlanOptions, 'desired' | 'registry' | 'store' | 'targets'>> = {}): Promise<Plan> {
  return engine.withTargets((targets, registry) =>
    planChanges({
      stack: 's',
      desired: { targets: [bucket('b')], resources, specHash: String(resources.length), diagnostics: [] },
      source: testSource,
      registry,
      store: engine.store,
      targets,
      ...extra,
    }),
  );
}
