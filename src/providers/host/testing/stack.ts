/**
 * Test support: a spec repository, a Host root and a state store in a fresh
 * temp directory, loaded and planned through the real loader and planner.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Plan } from '../../../plan/plan.js';
import { planChanges } from '../../../plan/planner.js';
import { loadStack, type LoadedStack } from '../../../spec/load.js';
import { SqliteStore } from '../../../state/sqlite/sqlite-store.js';
import type { Store } from '../../../state/store.js';
import type { ProviderRegistry } from '../../registry.js';
import { TargetPool } from '../../target-pool.js';

const source = { dir: '/repo', repo: null, ref: null, commit: 'c'.repeat(40), author: 'A <a@x>', message: 'm', dirty: false };

export interface StackSandbox {
  /** The temp directory holding everything. */
  readonly dir: string;
  /** The spec repository (created, empty). */
  readonly repo: string;
  /** A directory for Hosts to use as their root (created, empty). */
  readonly root: string;
  readonly store: Store;
  /** Writes the files (relative to the repository) and loads the stack. */
  load(files: Record<string, string>): Promise<LoadedStack>;
  /** Plans the stack against the store, with a fresh target pool. */
  plan(stack: LoadedStack): Promise<Plan>;
  cleanup(): Promise<void>;
}

export async function openStackSandbox(registry: ProviderRegistry, prefix = 'capstan-stack-'): Promise<StackSandbox> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  const repo = path.join(dir, 'repo');
  const root = path.join(dir, 'root');
  await mkdir(repo);
  await mkdir(root);
  const store = await SqliteStore.open(path.join(dir, 'state.db'));
  return {
    dir,
    repo,
    root,
    store,
    async load(files) {
      for (const [rel, text] of Object.entries(files)) await writeFile(path.join(repo, rel), text);
      return loadStack(repo, registry);
    },
    async plan(stack) {
      const targets = new TargetPool(registry, { signal: new AbortController().signal });
      try {
        return await planChanges({ stack: 's', desired: stack, source, registry, store, targets });
      } finally {
        await targets.close();
      }
    },
    async cleanup() {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
