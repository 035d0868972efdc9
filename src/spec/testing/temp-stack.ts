/**
 * A repository directory per test (registered as vitest hooks), written from a
 * map of relative paths to YAML or template text, then loaded as a stack.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach } from 'vitest';
import type { ProviderRegistry } from '../../providers/registry.js';
import { loadStack, type LoadedStack, type LoadOptions } from '../load.js';

export interface TempStack {
  /** This test's repository directory. */
  readonly dir: string;
  /** Writes the files (creating folders), then loads the whole repository. */
  load(files: Readonly<Record<string, string>>, options?: LoadOptions): Promise<LoadedStack>;
}

export function useTempStack(registry: ProviderRegistry, prefix: string): TempStack {
  let dir: string | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), prefix));
  });
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  const repo: TempStack = {
    get dir() {
      if (!dir) throw new Error('useTempStack: no test is running');
      return dir;
    },
    async load(files, options) {
      for (const [rel, text] of Object.entries(files)) {
        await mkdir(path.dirname(path.join(repo.dir, rel)), { recursive: true });
        await writeFile(path.join(repo.dir, rel), text);
      }
      return loadStack(repo.dir, registry, options);
    },
  };
  return repo;
}
