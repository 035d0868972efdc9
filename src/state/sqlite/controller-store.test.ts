import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runControllerStoreSuite } from '../testing/controller-store-suite.js';
import { SqliteStore } from './sqlite-store.js';

runControllerStoreSuite('SqliteStore', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-cstore-'));
  const store = await SqliteStore.open(path.join(dir, 'state.db'));
  return {
    store,
    async cleanup() {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
