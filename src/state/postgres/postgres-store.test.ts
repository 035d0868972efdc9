/**
 * Runs against a real PostgreSQL: CAPSTAN_TEST_POSTGRES_URL, by default the local
 * server with trust authentication. Every test works in a schema of its own,
 * dropped afterwards (and, should a test die half-way, at the end of the file).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pg from 'pg';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore } from '../open.js';
import { StackLockedError, type Actor, type ResourceResult, type Store } from '../store.js';
import { runControllerStoreSuite } from '../testing/controller-store-suite.js';
import { runStoreSuite, type StoreUnderTest } from '../testing/store-suite.js';
import { migrate, MIGRATIONS } from './migrations.js';
import { PostgresStore } from './postgres-store.js';

const SERVER = process.env.CAPSTAN_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const storeModule = pathToFileURL(path.join(repoRoot, 'src/state/postgres/postgres-store.ts')).href;
const me: Actor = { user: 'alice', host: os.hostname(), pid: process.pid };

const admin = new pg.Pool({ connectionString: SERVER, max: 2 });
const schemas = new Set<string>();
let counter = 0;

function newSchema(): string {
  const name = `capstan_test_${process.pid}_${++counter}_${randomBytes(3).toString('hex')}`;
  schemas.add(name);
  return name;
}

function urlOf(schema: string): string {
  return `${SERVER}${SERVER.includes('?') ? '&' : '?'}schema=${schema}`;
}

async function dropSchema(schema: string): Promise<void> {
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  schemas.delete(schema);
}

afterAll(async () => {
  try {
    for (const schema of [...schemas]) await dropSchema(schema);
  } finally {
    await admin.end();
  }
});

const urls = new WeakMap<Store, string>();

async function storeInItsOwnSchema(): Promise<StoreUnderTest> {
  const schema = newSchema();
  const store = await PostgresStore.open(urlOf(schema));
  urls.set(store, urlOf(schema));
  return {
    store,
    async cleanup() {
      try {
        await store.close();
      } finally {
        await dropSchema(schema);
      }
    },
  };
}

runControllerStoreSuite('PostgresStore', storeInItsOwnSchema);

runStoreSuite(
  'PostgresStore',
  storeInItsOwnSchema,
  {
    // A holder whose session ended: another store takes the lock and closes without releasing it.
    async leaveLockBehind(store, stack, actor) {
      const other = await PostgresStore.open(urls.get(store)!);
      await other.lock(stack, actor);
      await other.close();
    },
  },
);

function created(address: string, spec: unknown = { path: `/srv/${address}` }): ResourceResult {
  return {
    address,
    action: 'create',
    status: 'succeeded',
    error: null,
    durationMs: 3,
    inventory: {
      address,
      kind: address.split('/')[0] ?? 'File',
      target: 'Host/web-1',
      targetKind: 'Host',
      targetSpec: { transport: 'local', root: '/srv' },
      spec,
      specHash: 'h',
      liveFingerprint: null,
      dependsOn: [],
      origin: 'created',
    },
  };
}

function deleted(address: string): ResourceResult {
  return { address, action: 'delete', status: 'succeeded', error: null, durationMs: 1, inventory: null };
}

describe('PostgresStore', () => {
  let schema: string;
  let store: PostgresStore;
  const others: PostgresStore[] = [];
  const children: ChildProcess[] = [];

  beforeEach(async () => {
    schema = newSchema();
    store = await PostgresStore.open(urlOf(schema));
  });

  afterEach(async () => {
    for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await Promise.allSettled([store.close(), ...others.splice(0).map((s) => s.close())]);
    await dropSchema(schema);
  });

  async function another(): Promise<PostgresStore> {
    const s = await PostgresStore.open(urlOf(schema));
    others.push(s);
    return s;
  }

  it('hands the lock of a SIGKILLed holder over within a second, interrupting its run', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-pg-'));
    try {
      const script = path.join(dir, 'holder.mjs');
      await writeFile(script, HOLDER_SCRIPT);
      const child = spawn(process.execPath, ['--import', 'tsx', script, storeModule, urlOf(schema)], {
        cwd: repoRoot,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(child);
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code)));
      let runId: number | undefined;
      for await (const line of createInterface({ input: child.stdout })) {
        const [word, value] = line.split(' ');
        if (word === 'run') {
          runId = Number(value);
          break;
        }
      }
      expect(runId, stderr).toBeGreaterThan(0);

      const refused = await store.lock('crash', me).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(StackLockedError);
      expect((refused as Error).message).toContain(`crash@${os.hostname()} (pid ${child.pid}, run ${runId})`);

      child.kill('SIGKILL');
      const killedAt = performance.now();
      let lock: Awaited<ReturnType<PostgresStore['lock']>> | undefined;
      while (lock === undefined && performance.now() - killedAt < 5_000) {
        lock = await store.lock('crash', me).catch((e: unknown) => {
          if (!(e instanceof StackLockedError)) throw e;
          return undefined;
        });
        if (lock === undefined) await new Promise((resolve) => setTimeout(resolve, 10));
      }
      const handoverMs = performance.now() - killedAt;
      expect(await exited).toBe('SIGKILL');
      expect(lock, 'the lock was never handed over').toBeDefined();
      expect(handoverMs).toBeLessThan(1_000);
      expect(lock!.holder).toMatchObject({ user: 'alice', pid: process.pid });

      const run = await store.getRun(runId!);
      expect(run).toMatchObject({ status: 'interrupted', error: `process ${child.pid} ended without finishing the run` });
      await lock!.release();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('gives a stack to exactly one of two stores racing for it', async () => {
    const other = await another();
    for (let round = 0; round < 20; round++) {
      const stack = `race-${round}`;
      const outcomes = await Promise.allSettled([
        store.lock(stack, { ...me, user: 'a' }),
        other.lock(stack, { ...me, user: 'b' }),
      ]);
      const won = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
      const lost = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as unknown] : []));
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(1);
      expect(lost[0]).toBeInstanceOf(StackLockedError);
      expect((lost[0] as StackLockedError).holder).toEqual(won[0]!.holder);
      await won[0]!.release();
    }
  });

  it('migrates a new schema once when three replicas start together', async () => {
    const fresh = newSchema();
    try {
      const stores = await Promise.all([0, 1, 2].map(() => PostgresStore.open(urlOf(fresh))));
      others.push(...stores);
      const { rows } = await admin.query<{ version: number }>(`SELECT version FROM "${fresh}".schema_migrations ORDER BY version`);
      expect(rows.map((r) => r.version)).toEqual(MIGRATIONS.map((m) => m.version));

      // Below the store: each migrator reports what it applied; exactly one applied anything.
      const bare = newSchema();
      const pools = [0, 1, 2].map(() => new pg.Pool({ connectionString: SERVER, max: 1, options: `-c search_path=${bare}` }));
      try {
        const applied = await Promise.all(pools.map((pool) => migrate(pool, bare)));
        expect(applied.map((a) => a.join(',')).sort()).toEqual(['', '', MIGRATIONS.map((m) => m.version).join(',')]);
      } finally {
        await Promise.all(pools.map((pool) => pool.end()));
        await dropSchema(bare);
      }
    } finally {
      await Promise.allSettled(others.splice(0).map((s) => s.close()));
      await dropSchema(fresh);
    }
  });

  it('says when its lock is lost with its session, and never releases the next holder’s lock', async () => {
    const lock = await store.lock('prod', me);
    const run = await store.startRun({ stack: 'prod', kind: 'apply', actor: me, commit: null, author: null, message: null, specHash: null });
    await lock.setRunId(run.id);
    expect(lock.signal.aborted).toBe(false);

    const terminated = await admin.query<{ done: boolean }>(
      `SELECT pg_terminate_backend(pid) AS done FROM pg_locks
       WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
         AND ((classid::bigint << 32) | objid::bigint) = hashtextextended($1, 0)`,
      [`capstan:${schema}:prod`],
    );
    expect(terminated.rows).toEqual([{ done: true }]);
    // It may have aborted already, before the terminating query returned.
    await new Promise<void>((resolve, reject) => {
      if (lock.signal.aborted) return resolve();
      const timer = setTimeout(() => reject(new Error('the signal did not abort')), 5_000);
      lock.signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
    });
    expect(String(lock.signal.reason)).toMatch(/connection holding the lock on stack "prod" was lost/);
    await expect(lock.setRunId(run.id)).rejects.toThrow(/no longer held/);

    const next = await (await another()).lock('prod', { ...me, user: 'bob' });
    expect((await store.getRun(run.id))?.status).toBe('interrupted');
    await lock.release();
    await expect(store.lock('prod', me)).rejects.toThrow(`bob@${os.hostname()}`);
    await next.release();
  });

  it('abandons the locks it holds when closed, so the next holder takes them over', async () => {
    const other = await another();
    await other.lock('prod', { ...me, user: 'bob' });
    const run = await other.startRun({ stack: 'prod', kind: 'apply', actor: me, commit: null, author: null, message: null, specHash: null });
    await expect(store.lock('prod', me)).rejects.toThrow(/bob@/);
    await other.close();
    const lock = await store.lock('prod', me);
    expect((await store.getRun(run.id))?.status).toBe('interrupted');
    await lock.release();
  });

  it('shares the controller tables between replicas: a delivery is new for one only, every sync request counts', async () => {
    const replicas = [store, await another(), await another()].map((s) => s.controllerStore());
    for (let round = 0; round < 5; round++) {
      const fresh = await Promise.all(replicas.map((cs) => cs.rememberDelivery('github', `d-${round}`, 60_000)));
      expect(fresh.filter(Boolean)).toHaveLength(1);
    }
    await Promise.all(replicas.flatMap((cs) => [cs.requestSync('prod'), cs.requestSync('prod')]));
    expect((await replicas[0]!.getStackStatus('prod'))?.syncRequests).toBe(6);
    await replicas[1]!.putPlan({ stack: 'prod', id: 'p1', state: 'pending', plan: {}, text: '', commit: null, specHash: 'h', createdAt: new Date().toISOString() });
    const decided = await Promise.all(replicas.map((cs, i) => cs.transitionPlan('prod', 'pending', 'approved', { id: 'p1', by: `r${i}` })));
    expect(decided.filter((d) => d !== undefined)).toHaveLength(1);
  });

  it('replays the edits of one call in order, and compares JSON by value', async () => {
    const run = await store.startRun({ stack: 'prod', kind: 'apply', actor: me, commit: null, author: null, message: null, specHash: null });
    await store.recordResults(run.id, [created('File/a', { b: 1, a: [1, { y: 2, x: 'é' }] }), created('File/gone'), deleted('File/gone')]);
    expect((await store.inventory('prod')).map((e) => e.address)).toEqual(['File/a']);
    expect(await store.serial('prod')).toBe(1);

    // A create and a delete of an entry that was not there: the inventory changed in between.
    await store.recordResults(run.id, [created('File/blip'), deleted('File/blip')]);
    expect(await store.serial('prod')).toBe(2);

    // The same JSON value with its keys in another order is no change.
    await store.recordResults(run.id, [created('File/a', { a: [1, { x: 'é', y: 2 }], b: 1 })]);
    expect(await store.serial('prod')).toBe(2);
    await store.recordResults(run.id, [deleted('File/a'), created('File/a', { b: 1, a: [1, { y: 2, x: 'é' }] })]);
    expect(await store.serial('prod')).toBe(3);
    expect(await store.inventory('prod')).toMatchObject([{ address: 'File/a', spec: { a: [1, { x: 'é', y: 2 }], b: 1 } }]);
  });

  it('records a few thousand results in one call, in order, with their counts', async () => {
    const run = await store.startRun({ stack: 'big', kind: 'apply', actor: me, commit: null, author: null, message: null, specHash: null });
    const addresses = Array.from({ length: 3_000 }, (_, i) => `File/f-${String(i).padStart(4, '0')}`).reverse();
    await store.recordResults(run.id, [
      ...addresses.map((a) => created(a, { path: `/srv/${a}`, content: "quote ' \" \\ {}, \n" })),
      { address: 'File/x', action: 'update', status: 'failed', error: 'boom "x"', durationMs: 2.6 },
    ]);
    const results = await store.listResults(run.id);
    expect(results.map((r) => r.address)).toEqual([...addresses, 'File/x']);
    expect(results.at(-1)).toMatchObject({ status: 'failed', error: 'boom "x"', durationMs: 3 });
    const inventory = await store.inventory('big');
    expect(inventory.map((e) => e.address)).toEqual([...addresses].sort());
    expect(inventory[0]?.spec).toEqual({ path: '/srv/File/f-0000', content: "quote ' \" \\ {}, \n" });
    expect((await store.getRun(run.id))?.counts).toMatchObject({ create: 3_000, failed: 1 });
    expect(await store.serial('big')).toBe(1);
  });

  it('keeps everything across close and reopen, and opens through openStore', async () => {
    const run = await store.startRun({ stack: 'prod', kind: 'apply', actor: me, commit: 'abc', author: 'a', message: 'm', specHash: 'h' });
    await store.recordResults(run.id, [created('File/motd')]);
    await store.appendEvent(run.id, { address: 'File/motd', type: 'resource.created', message: 'created' });
    await store.finishRun(run.id, 'succeeded');
    const before = [await store.listRuns({}), await store.listResults(run.id), await store.listEvents(run.id), await store.inventory('prod')];
    await store.close();

    const reopened = await openStore(`postgresql${urlOf(schema).slice('postgres'.length)}`);
    others.push(reopened as PostgresStore);
    expect(reopened).toBeInstanceOf(PostgresStore);
    expect([await reopened.listRuns({}), await reopened.listResults(run.id), await reopened.listEvents(run.id), await reopened.inventory('prod')]).toEqual(
      before,
    );
    expect(await reopened.serial('prod')).toBe(1);
    expect((await reopened.startRun({ ...run, kind: 'drift' })).id).toBeGreaterThan(run.id);
  });

  it('refuses a schema written by a newer Capstan', async () => {
    await admin.query(`INSERT INTO "${schema}".schema_migrations (version, name, applied_at) VALUES (999, 'future', now())`);
    await expect(PostgresStore.open(urlOf(schema))).rejects.toThrow(/schema version 999.*upgrade Capstan/);
  });

  it('refuses a schema name that is not a plain identifier, and never shows credentials', async () => {
    await expect(PostgresStore.open(`${SERVER}?schema=a;drop`)).rejects.toThrow(/invalid schema name "a;drop"/);
    const err = (await PostgresStore.open('postgres://capstan:hunter2@127.0.0.1:1/capstan?password=hunter2&schema=s').catch((e: unknown) => e)) as Error;
    expect(err.message).toMatch(/^cannot open the state database postgres:\/\/127\.0\.0\.1:1\/capstan\?schema=s: /);
    expect(err.message).not.toContain('hunter2');
  });

  it('refuses an invalid result before writing anything of the call', async () => {
    const run = await store.startRun({ stack: 'prod', kind: 'apply', actor: me, commit: null, author: null, message: null, specHash: null });
    const bad = { ...created('File/b'), status: 'exploded' } as unknown as ResourceResult;
    await expect(store.recordResults(run.id, [created('File/a'), bad])).rejects.toThrow(/File\/b has an unknown status "exploded"/);
    const misfiled = { ...created('File/c'), address: 'File/d' };
    await expect(store.recordResults(run.id, [misfiled])).rejects.toThrow(/File\/d carries the inventory entry of File\/c/);
    expect(await store.listResults(run.id)).toEqual([]);
    expect(await store.inventory('prod')).toEqual([]);
  });
});

/** Takes a stack's lock, names its run, says so, and waits to be killed. */
const HOLDER_SCRIPT = `
import os from 'node:os';
const [storeModule, url] = process.argv.slice(2);
const { PostgresStore } = await import(storeModule);
const store = await PostgresStore.open(url);
const actor = { user: 'crash', host: os.hostname(), pid: process.pid };
const lock = await store.lock('crash', actor);
const run = await store.startRun({ stack: 'crash', kind: 'apply', actor, commit: null, author: null, message: null, specHash: null });
await lock.setRunId(run.id);
process.stdout.write('run ' + run.id + '\\n');
setInterval(() => {}, 60_000);
`;
