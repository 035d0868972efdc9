import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import BetterSqlite3 from 'better-sqlite3';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defaultStateUrl, NoStateStoreError, openStore } from '../open.js';
import { StackLockedError, type Actor } from '../store.js';
import { runStoreSuite } from '../testing/store-suite.js';
import { MIGRATIONS } from './migrations.js';
import { SqliteStore } from './sqlite-store.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const storeModule = pathToFileURL(path.join(repoRoot, 'src/state/sqlite/sqlite-store.ts')).href;
const me: Actor = { user: 'alice', host: os.hostname(), pid: process.pid };

runStoreSuite('SqliteStore', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-store-'));
  const store = await SqliteStore.open(path.join(dir, 'state.db'));
  return {
    store,
    async cleanup() {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe('SqliteStore', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-sqlite-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('creates the parent directories and a WAL database', async () => {
    const file = path.join(dir, 'a', 'b', '.capstan', 'state.db');
    const store = await SqliteStore.open(file);
    await store.close();
    const raw = new BetterSqlite3(file, { readonly: true });
    try {
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    } finally {
      raw.close();
    }
  });

  it('keeps everything across close and reopen', async () => {
    const file = path.join(dir, 'state.db');
    const store = await SqliteStore.open(file);
    const lock = await store.lock('prod', me);
    const run = await store.startRun({ stack: 'prod', kind: 'apply', actor: me, commit: 'abc', author: 'a', message: 'm', specHash: 'h' });
    await lock.setRunId(run.id);
    await store.recordResults(run.id, [
      {
        address: 'File/motd',
        action: 'create',
        status: 'succeeded',
        error: null,
        durationMs: 7,
        inventory: {
          address: 'File/motd',
          kind: 'File',
          target: 'Host/web-1',
          targetKind: 'Host',
          targetSpec: { transport: 'local' },
          spec: { path: '/srv/motd', content: 'hi\n' },
          specHash: 'h1',
          liveFingerprint: 'f1',
          dependsOn: [],
          origin: 'created',
        },
      },
    ]);
    await store.appendEvent(run.id, { address: 'File/motd', type: 'resource.created', message: 'created' });
    const finished = await store.finishRun(run.id, 'succeeded');
    const before = {
      run: finished,
      runs: await store.listRuns({}),
      results: await store.listResults(run.id),
      events: await store.listEvents(run.id),
      inventory: await store.inventory('prod'),
      serial: await store.serial('prod'),
    };
    await store.close();

    const reopened = await SqliteStore.open(file);
    try {
      expect({
        run: await reopened.getRun(run.id),
        runs: await reopened.listRuns({}),
        results: await reopened.listResults(run.id),
        events: await reopened.listEvents(run.id),
        inventory: await reopened.inventory('prod'),
        serial: await reopened.serial('prod'),
      }).toEqual(before);
      expect(before.inventory).toHaveLength(1);
      expect(before.serial).toBe(1);
      // The lock is in the file too, still held by this (living) process.
      await expect(reopened.lock('prod', me)).rejects.toThrow(`run ${run.id}`);
      const next = await reopened.startRun({ ...finished, kind: 'drift' });
      expect(next.id).toBeGreaterThan(run.id);
    } finally {
      await reopened.close();
    }
  });

  it('applies each migration once, however often the database is opened', async () => {
    const file = path.join(dir, 'state.db');
    const [a, b] = await Promise.all([SqliteStore.open(file), SqliteStore.open(file)]);
    await a.close();
    await b.close();
    await (await SqliteStore.open(file)).close();
    const raw = new BetterSqlite3(file, { readonly: true });
    try {
      const rows = raw.prepare('SELECT version FROM schema_migrations ORDER BY version').all() as { version: number }[];
      expect(rows.map((r) => r.version)).toEqual(MIGRATIONS.map((m) => m.version));
    } finally {
      raw.close();
    }
  });

  it('refuses a database written by a newer schema', async () => {
    const file = path.join(dir, 'state.db');
    await (await SqliteStore.open(file)).close();
    const raw = new BetterSqlite3(file);
    raw.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', '2999-01-01T00:00:00.000Z')").run();
    raw.close();
    await expect(SqliteStore.open(file)).rejects.toThrow(/schema version 999.*upgrade Capstan/);
  });

  it('says which file it could not open', async () => {
    const file = path.join(dir, 'is-a-directory');
    await SqliteStore.open(path.join(file, 'inner.db')).then((s) => s.close());
    await expect(SqliteStore.open(file)).rejects.toThrow(file);
  });

  it('refuses a lock for a pid that cannot be a process', async () => {
    const store = await SqliteStore.open(path.join(dir, 'state.db'));
    try {
      await expect(store.lock('prod', { ...me, pid: 0 })).rejects.toThrow(/pid 0/);
    } finally {
      await store.close();
    }
  });

  it('refuses a result that carries the inventory entry of another address', async () => {
    const store = await SqliteStore.open(path.join(dir, 'state.db'));
    try {
      const run = await store.startRun({ stack: 'prod', kind: 'apply', actor: me, commit: null, author: null, message: null, specHash: null });
      const inventory = {
        address: 'File/b',
        kind: 'File',
        target: null,
        targetKind: null,
        targetSpec: null,
        spec: {},
        specHash: 'h',
        liveFingerprint: null,
        dependsOn: [],
        origin: 'created' as const,
      };
      await expect(
        store.recordResults(run.id, [{ address: 'File/a', action: 'create', status: 'succeeded', error: null, durationMs: 1, inventory }]),
      ).rejects.toThrow(/File\/a.*File\/b/);
      expect(await store.listResults(run.id)).toEqual([]);
    } finally {
      await store.close();
    }
  });

  it('survives SIGKILL of a writer mid-loop: opens, passes integrity_check, keeps every acknowledged result', async () => {
    const file = path.join(dir, 'state.db');
    const script = path.join(dir, 'writer.mjs');
    const batchSize = 25;
    await writeFile(script, WRITER_SCRIPT);
    const child = spawn(process.execPath, ['--import', 'tsx', script, storeModule, file, String(batchSize)], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<NodeJS.Signals | number | null>((resolve) =>
      child.once('exit', (code, signal) => resolve(signal ?? code)),
    );

    let runId: number | undefined;
    const acknowledged: number[] = [];
    let lockedOut: unknown;
    const lines = createInterface({ input: child.stdout });
    for await (const line of lines) {
      const [word, value] = line.split(' ');
      if (word === 'run') runId = Number(value);
      if (word === 'recorded') acknowledged.push(Number(value));
      if (acknowledged.length === 5 && lockedOut === undefined) {
        // Another process, while the writer is busy: the lock names the writer.
        const other = await SqliteStore.open(file);
        lockedOut = await other.lock('crash', me).catch((e: unknown) => e);
        await other.close();
      }
      if (acknowledged.length === 40 && !child.killed) child.kill('SIGKILL');
    }
    expect(await exited, stderr).toBe('SIGKILL');
    expect(runId, stderr).toBeDefined();
    expect(lockedOut).toBeInstanceOf(StackLockedError);
    expect((lockedOut as Error).message).toContain(`crash@${os.hostname()} (pid ${child.pid}, run ${runId}`);

    const store = await SqliteStore.open(file);
    try {
      const raw = new BetterSqlite3(file, { readonly: true });
      try {
        expect(raw.pragma('integrity_check', { simple: true })).toBe('ok');
        expect(raw.pragma('foreign_key_check')).toEqual([]);
      } finally {
        raw.close();
      }

      const results = await store.listResults(runId!);
      const perBatch = new Map<number, number>();
      for (const r of results) {
        const batch = Number(/^File\/f-(\d+)-\d+$/.exec(r.address)?.[1]);
        perBatch.set(batch, (perBatch.get(batch) ?? 0) + 1);
      }
      for (const batch of acknowledged) expect(perBatch.get(batch), `batch ${batch}`).toBe(batchSize);
      // Each call is all or nothing: at most the one in flight was committed without being acknowledged.
      for (const count of perBatch.values()) expect(count).toBe(batchSize);
      expect(perBatch.size - acknowledged.length).toBeGreaterThanOrEqual(0);
      expect(perBatch.size - acknowledged.length).toBeLessThanOrEqual(1);

      expect(await store.inventory('crash')).toHaveLength(results.length);
      expect(await store.serial('crash')).toBe(perBatch.size);
      expect((await store.getRun(runId!))?.counts.create).toBe(results.length);

      // The dead writer's lock is taken over and its run marked interrupted.
      const lock = await store.lock('crash', me);
      const run = await store.getRun(runId!);
      expect(run?.status).toBe('interrupted');
      expect(run?.error).toBe(`process ${child.pid} ended without finishing the run`);
      await lock.release();
    } finally {
      await store.close();
    }
  });
});

describe('openStore', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-open-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('opens sqlite:PATH relative to the current directory', async () => {
    const file = path.join(dir, 'nested', 'state.db');
    const store = await openStore(`sqlite:${path.relative(process.cwd(), file)}`);
    await store.close();
    expect(existsSync(file)).toBe(true);
  });

  it('opens sqlite:///absolute/path', async () => {
    const file = path.join(dir, 'state.db');
    const store = await openStore(`sqlite://${file}`);
    await store.close();
    expect(existsSync(file)).toBe(true);
  });

  it('sends postgres:// to the PostgreSQL store without echoing the password', async () => {
    const err = (await openStore('postgres://capstan:hunter2@127.0.0.1:1/capstan').catch((e: unknown) => e)) as Error;
    expect(err.message).toMatch(/^cannot open the state database postgres:\/\/127\.0\.0\.1:1\/capstan: /);
    expect(err.message).not.toContain('hunter2');
    await expect(openStore('postgresql://127.0.0.1:1/capstan')).rejects.toThrow(/cannot open the state database postgresql:/);
  });

  it('refuses other URLs, hiding any password', async () => {
    const err = (await openStore('mysql://root:hunter2@db.example/capstan').catch((e: unknown) => e)) as Error;
    expect(err.message).toMatch(/unsupported state URL.*use sqlite:PATH/);
    expect(err.message).not.toContain('hunter2');
    await expect(openStore('state.db')).rejects.toThrow(/unsupported state URL "state.db"/);
    await expect(openStore('sqlite:')).rejects.toThrow(/names no file/);
  });

  it('creates the state directory 0700 and the database, its WAL and SHM 0600', async () => {
    const file = path.join(dir, 'new', 'deeper', 'state.db');
    const store = await SqliteStore.open(file);
    try {
      await store.startRun({ stack: 's', kind: 'apply', actor: me, commit: null, author: null, message: null, specHash: null });
      const mode = async (p: string): Promise<string> => ((await stat(p)).mode & 0o777).toString(8);
      expect(await mode(path.join(dir, 'new'))).toBe('700');
      expect(await mode(path.dirname(file))).toBe('700');
      // While open, the WAL and the shared-memory index exist beside the file.
      expect([await mode(file), await mode(`${file}-wal`), await mode(`${file}-shm`)]).toEqual(['600', '600', '600']);
    } finally {
      await store.close();
    }
  });

  it('makes the default .capstan/ directory ignore itself in git', async () => {
    const url = defaultStateUrl(dir);
    const store = await openStore(url);
    await store.close();
    expect(await readFile(path.join(dir, '.capstan', '.gitignore'), 'utf8')).toMatch(/^\*$/m);
    await execa('git', ['init', '-q', dir]);
    const status = await execa('git', ['status', '--porcelain', '--untracked-files=all'], { cwd: dir });
    expect(status.stdout).toBe('');
  });

  it('opens read-only for reading commands: a read-only filesystem; a missing file is refused, or read as empty when asked', async () => {
    const src = path.join(dir, 'src');
    const file = path.join(src, 'state.db');
    const store = await SqliteStore.open(file);
    await store.startRun({ stack: 's', kind: 'apply', actor: me, commit: 'abc', author: null, message: null, specHash: null });
    await store.close();
    // A real read-only filesystem (root ignores file modes): a read-only bind mount of the directory.
    const ro = path.join(dir, 'ro');
    await mkdir(ro);
    await execa('mount', ['--bind', src, ro]);
    try {
      await execa('mount', ['-o', 'remount,ro,bind', ro]);
      await expect(openStore(`sqlite:${path.join(ro, 'state.db')}`)).rejects.toThrow(/cannot open the state database/);
      const reader = await openStore(`sqlite:${path.join(ro, 'state.db')}`, { readOnly: true });
      try {
        expect((await reader.listRuns({ stack: 's' })).map((r) => r.commit)).toEqual(['abc']);
      } finally {
        await reader.close();
      }
    } finally {
      await execa('umount', [ro]);
    }
    const missing = path.join(dir, 'none', 'state.db');
    await expect(openStore(`sqlite:${missing}`, { readOnly: true })).rejects.toThrow(
      new NoStateStoreError(missing).message,
    );
    for (const options of [{ readOnly: true, ifMissing: 'empty' }, { ifMissing: 'empty' }] as const) {
      const empty = await openStore(`sqlite:${missing}`, options);
      expect(await empty.listRuns({})).toEqual([]);
      await empty.close();
    }
    expect(existsSync(path.dirname(missing))).toBe(false);
  });

  it('reads without leaving -wal or -shm files behind, and sees what a writer still holding the database committed', async () => {
    const file = path.join(dir, 'state.db');
    const writer = await SqliteStore.open(file);
    await writer.startRun({ stack: 's', kind: 'apply', actor: me, commit: 'one', author: null, message: null, specHash: null });
    // While the writer is open its -wal holds the run: the reader opens in place and sees it.
    const during = await SqliteStore.open(file, { readOnly: true });
    expect((await during.listRuns({ stack: 's' })).map((r) => r.commit)).toEqual(['one']);
    await during.close();
    await writer.close();
    expect((await readdir(dir)).sort()).toEqual(['state.db']);
    const after = await SqliteStore.open(file, { readOnly: true });
    expect((await after.listRuns({ stack: 's' })).map((r) => r.commit)).toEqual(['one']);
    await after.close();
    expect((await readdir(dir)).sort()).toEqual(['state.db']);
  });

  it('puts the default state beside the spec', () => {
    expect(defaultStateUrl('/srv/infra')).toBe('sqlite:/srv/infra/.capstan/state.db');
    expect(defaultStateUrl('examples/webapp/')).toBe('sqlite:examples/webapp/.capstan/state.db');
  });
});

/** Records batches of results in a loop and prints each batch after its promise resolved. */
const WRITER_SCRIPT = `
import os from 'node:os';
const [storeModule, file, batchSize] = process.argv.slice(2);
// A line counts as printed once the kernel has it: a write Node merely queued
// (when the pipe is full) dies with the process.
const acknowledge = (line) => new Promise((resolve, reject) =>
  process.stdout.write(line + '\\n', (err) => (err ? reject(err) : resolve())));
const { SqliteStore } = await import(storeModule);
const store = await SqliteStore.open(file);
const actor = { user: 'crash', host: os.hostname(), pid: process.pid };
const lock = await store.lock('crash', actor);
const run = await store.startRun({ stack: 'crash', kind: 'apply', actor, commit: null, author: null, message: null, specHash: null });
await lock.setRunId(run.id);
await acknowledge('run ' + run.id);
for (let batch = 0; ; batch++) {
  const results = [];
  for (let j = 0; j < Number(batchSize); j++) {
    const address = 'File/f-' + batch + '-' + j;
    results.push({
      address, action: 'create', status: 'succeeded', error: null, durationMs: 1,
      inventory: {
        address, kind: 'File', target: 'Host/h', targetKind: 'Host', targetSpec: { transport: 'local' },
        spec: { path: '/srv/' + address, content: 'x'.repeat(4000) }, specHash: 'h' + batch, liveFingerprint: null,
        dependsOn: [], origin: 'created',
      },
    });
  }
  await store.recordResults(run.id, results);
  await acknowledge('recorded ' + batch);
}
`;
