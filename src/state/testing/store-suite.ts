/**
 * The conformance suite every Store implementation passes: its own test file is
 * one call, `runStoreSuite('SqliteStore', async () => ({ store, cleanup }))`.
 * `makeStore` gives each test a fresh, empty store; `cleanup` closes it and
 * removes whatever it used.
 *
 * Beyond the Store interface, the suite requires what real stores must do:
 * - `inventory(stack)` is sorted by address;
 * - an inventory upsert that leaves the entry as it was (only `updatedAt` and
 *   `lastRunId` move) does not bump the serial, nor does deleting a missing entry;
 * - a result with an action or status outside the closed sets is refused, and
 *   the whole `recordResults` call with it;
 * - `StackLock.setRunId`, optional in the interface for test doubles, is present.
 */
import { spawn } from 'node:child_process';
import os from 'node:os';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  emptyCounts,
  StackLockedError,
  type Actor,
  type InventoryEntry,
  type RecordedAction,
  type ResourceResult,
  type ResultStatus,
  type RunInput,
  type Store,
} from '../store.js';

export interface StoreUnderTest {
  readonly store: Store;
  cleanup(): Promise<void>;
}

export interface StoreSuiteOptions {
  /**
   * Leaves `stack` locked as `actor` would if its process had been killed while
   * holding the lock. Default: `store.lock(stack, actor)` never released, which is
   * such a lock for a store that judges liveness by pid (the suite's actor has a
   * dead pid). A store that judges it by something else (a database session)
   * reproduces that state its own way.
   */
  leaveLockBehind?(store: Store, stack: string, actor: Actor): Promise<void>;
}

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

const me: Actor = { user: 'alice', host: os.hostname(), pid: process.pid };

function runInput(stack: string, actor: Actor = me, overrides: Partial<RunInput> = {}): RunInput {
  return {
    stack,
    kind: 'apply',
    actor,
    commit: '0123456789abcdef0123456789abcdef01234567',
    author: 'Alice <alice@example.com>',
    message: 'open port 443',
    specHash: 'sha256:spec',
    ...overrides,
  };
}

type Entry = Omit<InventoryEntry, 'updatedAt' | 'lastRunId'>;

function entry(address: string, overrides: Partial<Entry> = {}): Entry {
  return {
    address,
    kind: address.split('/')[0] ?? 'File',
    target: 'Host/web-1',
    targetKind: 'Host',
    targetSpec: { transport: 'local', root: '/srv/sandbox/web-1' },
    spec: { path: `/srv/app/${address}`, mode: '0644' },
    specHash: `hash-of-${address}`,
    liveFingerprint: `live-${address}`,
    dependsOn: ['Directory/app'],
    origin: 'created',
    ...overrides,
  };
}

function result(
  address: string,
  action: RecordedAction,
  status: ResultStatus = 'succeeded',
  inventory?: Entry | null,
): ResourceResult {
  return {
    address,
    action,
    status,
    error: status === 'failed' ? `${address} failed` : null,
    durationMs: 12,
    ...(inventory === undefined ? {} : { inventory }),
  };
}

/** The pid of a process that existed on this host and has ended (and been reaped). */
export async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  const pid = child.pid;
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', () => resolve());
  });
  if (pid === undefined) throw new Error('the child process got no pid');
  return pid;
}

export function runStoreSuite(name: string, makeStore: () => Promise<StoreUnderTest>, options: StoreSuiteOptions = {}): void {
  const leaveLockBehind =
    options.leaveLockBehind ??
    (async (store: Store, stack: string, actor: Actor) => {
      await store.lock(stack, actor);
    });
  describe(`${name} (store suite)`, () => {
    let store: Store;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      const made = await makeStore();
      store = made.store;
      cleanup = () => made.cleanup();
    });

    afterEach(async () => {
      await cleanup();
    });

    describe('runs', () => {
      it('starts a run as running with empty counts and reads it back', async () => {
        const run = await store.startRun(runInput('prod'));
        expect(run).toMatchObject({ ...runInput('prod'), status: 'running', finishedAt: null, error: null });
        expect(run.counts).toEqual(emptyCounts());
        expect(run.startedAt).toMatch(ISO_UTC);
        expect(await store.getRun(run.id)).toEqual(run);
        expect(await store.getRun(run.id + 1000)).toBeUndefined();
      });

      it('keeps null commit, author, message and spec hash', async () => {
        const input = runInput('prod', me, { kind: 'drift', commit: null, author: null, message: null, specHash: null });
        const run = await store.startRun(input);
        expect(await store.getRun(run.id)).toMatchObject(input);
      });

      it('finishes a run with its status, time and error', async () => {
        const ok = await store.startRun(runInput('prod'));
        const finished = await store.finishRun(ok.id, 'succeeded');
        expect(finished).toMatchObject({ id: ok.id, status: 'succeeded', error: null });
        expect(finished.finishedAt).toMatch(ISO_UTC);
        expect(finished.finishedAt! >= ok.startedAt).toBe(true);
        expect(await store.getRun(ok.id)).toEqual(finished);

        const bad = await store.startRun(runInput('prod'));
        expect(await store.finishRun(bad.id, 'failed', 'host web-1 unreachable')).toMatchObject({
          status: 'failed',
          error: 'host web-1 unreachable',
        });
      });

      it('refuses to finish, record into or add events to a run that does not exist', async () => {
        await expect(store.finishRun(4242, 'succeeded')).rejects.toThrow(/4242/);
        await expect(store.recordResults(4242, [result('File/a', 'create')])).rejects.toThrow(/4242/);
        await expect(store.appendEvent(4242, { address: null, type: 'info', message: 'x' })).rejects.toThrow(/4242/);
      });

      it('derives counts from recorded results, across calls', async () => {
        const run = await store.startRun(runInput('prod'));
        await store.recordResults(run.id, [
          result('File/a', 'create'),
          result('File/b', 'create', 'failed'),
          result('File/c', 'update'),
          result('File/d', 'replace'),
        ]);
        await store.recordResults(run.id, [
          result('File/e', 'delete'),
          result('File/f', 'noop'),
          result('File/g', 'noop'),
          result('File/h', 'update', 'skipped'),
          result('File/i', 'delete', 'failed'),
        ]);
        const expected = { create: 1, update: 1, replace: 1, delete: 1, noop: 2, failed: 2, skipped: 1 };
        expect((await store.getRun(run.id))?.counts).toEqual(expected);
        expect((await store.finishRun(run.id, 'failed', 'two resources failed')).counts).toEqual(expected);
      });

      it('lists runs newest first, by stack, with a limit', async () => {
        const a1 = await store.startRun(runInput('a'));
        const b1 = await store.startRun(runInput('b'));
        const a2 = await store.startRun(runInput('a', me, { kind: 'plan' }));
        const a3 = await store.startRun(runInput('a'));
        const ids = (runs: { id: number }[]) => runs.map((r) => r.id);
        expect(ids(await store.listRuns({}))).toEqual([a3.id, a2.id, b1.id, a1.id]);
        expect(ids(await store.listRuns({ stack: 'a' }))).toEqual([a3.id, a2.id, a1.id]);
        expect(ids(await store.listRuns({ stack: 'a', limit: 2 }))).toEqual([a3.id, a2.id]);
        expect(ids(await store.listRuns({ limit: 1 }))).toEqual([a3.id]);
        expect(await store.listRuns({ stack: 'nothing-here' })).toEqual([]);
        expect((await store.listRuns({ stack: 'a', limit: 3 }))[1]).toEqual(await store.getRun(a2.id));
      });

      it('tells whether a stack applied a commit in a successful apply run', async () => {
        const [c1, c2, c3] = ['1'.repeat(40), '2'.repeat(40), '3'.repeat(40)];
        await store.finishRun((await store.startRun(runInput('a', me, { commit: c1 }))).id, 'succeeded');
        await store.finishRun((await store.startRun(runInput('a', me, { commit: c2 }))).id, 'failed', 'boom');
        await store.finishRun((await store.startRun(runInput('a', me, { commit: c3, kind: 'plan' }))).id, 'succeeded');
        await store.startRun(runInput('a', me, { commit: c3 }));
        expect(await store.hasApplied('a', c1)).toBe(true);
        expect(await store.hasApplied('b', c1)).toBe(false);
        expect(await store.hasApplied('a', c2)).toBe(false);
        expect(await store.hasApplied('a', c3)).toBe(false);
      });
    });

    describe('results', () => {
      it('lists a run’s results in the order they were recorded', async () => {
        const run = await store.startRun(runInput('prod'));
        const other = await store.startRun(runInput('prod'));
        await store.recordResults(run.id, [result('Directory/app', 'create', 'succeeded', entry('Directory/app'))]);
        await store.recordResults(other.id, [result('File/elsewhere', 'create')]);
        await store.recordResults(run.id, [
          { ...result('File/motd', 'update', 'failed'), durationMs: 1500 },
          result('File/later', 'create', 'skipped'),
        ]);
        const listed = await store.listResults(run.id);
        expect(listed.map(({ finishedAt: _f, ...r }) => r)).toEqual([
          { address: 'Directory/app', action: 'create', status: 'succeeded', error: null, durationMs: 12 },
          { address: 'File/motd', action: 'update', status: 'failed', error: 'File/motd failed', durationMs: 1500 },
          { address: 'File/later', action: 'create', status: 'skipped', error: null, durationMs: 12 },
        ]);
        for (const r of listed) expect(r.finishedAt).toMatch(ISO_UTC);
        expect(await store.listResults(other.id)).toHaveLength(1);
        expect(await store.listResults(9999)).toEqual([]);
      });

      it('records nothing of a call that contains an invalid result', async () => {
        const run = await store.startRun(runInput('prod'));
        await expect(
          store.recordResults(run.id, [
            result('File/a', 'create', 'succeeded', entry('File/a')),
            result('File/b', 'explode' as RecordedAction),
          ]),
        ).rejects.toThrow();
        expect(await store.listResults(run.id)).toEqual([]);
        expect(await store.inventory('prod')).toEqual([]);
        expect(await store.serial('prod')).toBe(0);
        expect((await store.getRun(run.id))?.counts).toEqual(emptyCounts());
      });
    });

    describe('inventory and serial', () => {
      it('stores an entry with every field and bumps the serial', async () => {
        const run = await store.startRun(runInput('prod'));
        expect(await store.serial('prod')).toBe(0);
        const motd = entry('File/motd', {
          spec: { path: '/srv/app/motd', content: 'héllo\n', nested: { list: [1, 2.5, true, null] } },
          liveFingerprint: null,
          dependsOn: ['Directory/app', 'Host/web-1'],
          origin: 'adopted',
        });
        await store.recordResults(run.id, [result('File/motd', 'create', 'succeeded', motd)]);
        const [stored, ...rest] = await store.inventory('prod');
        expect(rest).toEqual([]);
        expect(stored).toMatchObject({ ...motd, lastRunId: run.id });
        expect(stored?.updatedAt).toMatch(ISO_UTC);
        expect(await store.serial('prod')).toBe(1);
      });

      it('keeps targets (null target, null target spec)', async () => {
        const run = await store.startRun(runInput('prod'));
        const host = entry('Host/web-1', { target: null, targetKind: null, targetSpec: null, dependsOn: [] });
        await store.recordResults(run.id, [result('Host/web-1', 'create', 'succeeded', host)]);
        expect(await store.inventory('prod')).toMatchObject([host]);
      });

      it('updates an entry in place and records the run that last touched it', async () => {
        const first = await store.startRun(runInput('prod'));
        await store.recordResults(first.id, [result('File/motd', 'create', 'succeeded', entry('File/motd'))]);
        const second = await store.startRun(runInput('prod'));
        const changed = entry('File/motd', { spec: { path: '/srv/app/motd', mode: '0600' }, specHash: 'new-hash' });
        await store.recordResults(second.id, [result('File/motd', 'update', 'succeeded', changed)]);
        expect(await store.inventory('prod')).toMatchObject([{ ...changed, lastRunId: second.id }]);
        expect(await store.serial('prod')).toBe(2);
      });

      it('removes an entry on null and leaves it on undefined', async () => {
        const run = await store.startRun(runInput('prod'));
        await store.recordResults(run.id, [
          result('File/a', 'create', 'succeeded', entry('File/a')),
          result('File/b', 'create', 'succeeded', entry('File/b')),
        ]);
        expect(await store.serial('prod')).toBe(1);

        await store.recordResults(run.id, [result('File/a', 'update', 'failed'), result('File/b', 'delete', 'skipped')]);
        expect((await store.inventory('prod')).map((e) => e.address)).toEqual(['File/a', 'File/b']);
        expect(await store.serial('prod')).toBe(1);

        await store.recordResults(run.id, [result('File/a', 'delete', 'succeeded', null)]);
        expect((await store.inventory('prod')).map((e) => e.address)).toEqual(['File/b']);
        expect(await store.serial('prod')).toBe(2);
      });

      it('bumps the serial only when what the inventory says changed', async () => {
        const first = await store.startRun(runInput('prod'));
        await store.recordResults(first.id, [result('File/a', 'create', 'succeeded', entry('File/a'))]);
        expect(await store.serial('prod')).toBe(1);

        const second = await store.startRun(runInput('prod'));
        await store.recordResults(second.id, [
          result('File/a', 'noop', 'succeeded', entry('File/a')),
          result('File/never-existed', 'delete', 'succeeded', null),
        ]);
        expect(await store.serial('prod')).toBe(1);
        // The bookkeeping still follows the latest run.
        expect((await store.inventory('prod'))[0]?.lastRunId).toBe(second.id);

        await store.recordResults(second.id, [
          result('File/a', 'noop', 'succeeded', entry('File/a', { liveFingerprint: 'moved' })),
        ]);
        expect(await store.serial('prod')).toBe(2);
      });

      it('bumps the serial once per call however many entries change', async () => {
        const run = await store.startRun(runInput('prod'));
        await store.recordResults(
          run.id,
          ['File/a', 'File/b', 'File/c'].map((a) => result(a, 'create', 'succeeded', entry(a))),
        );
        await store.recordResults(run.id, [
          result('File/a', 'delete', 'succeeded', null),
          result('File/b', 'update', 'succeeded', entry('File/b', { specHash: 'x' })),
        ]);
        expect(await store.serial('prod')).toBe(2);
      });

      it('sorts the inventory by address', async () => {
        const run = await store.startRun(runInput('prod'));
        const addresses = ['File/m', 'Directory/z', 'File/a', 'Host/web-1', 'File/b@web-2', 'File/b@web-1'];
        await store.recordResults(
          run.id,
          addresses.map((a) => result(a, 'create', 'succeeded', entry(a))),
        );
        expect((await store.inventory('prod')).map((e) => e.address)).toEqual([...addresses].sort());
      });

      it('keeps each stack’s inventory and serial apart', async () => {
        const a = await store.startRun(runInput('a'));
        const b = await store.startRun(runInput('b'));
        await store.recordResults(a.id, [result('File/shared', 'create', 'succeeded', entry('File/shared', { specHash: 'in-a' }))]);
        await store.recordResults(b.id, [
          result('File/shared', 'create', 'succeeded', entry('File/shared', { specHash: 'in-b' })),
          result('File/only-b', 'create', 'succeeded', entry('File/only-b')),
        ]);
        await store.recordResults(b.id, [result('File/only-b', 'delete', 'succeeded', null)]);

        await store.recordResults(a.id, [result('File/shared', 'delete', 'succeeded', null)]);
        expect(await store.inventory('a')).toEqual([]);
        expect(await store.inventory('b')).toMatchObject([{ address: 'File/shared', specHash: 'in-b', lastRunId: b.id }]);
        expect(await store.serial('a')).toBe(2);
        expect(await store.serial('b')).toBe(2);
        expect(await store.inventory('unknown')).toEqual([]);
        expect(await store.serial('unknown')).toBe(0);
      });
    });

    describe('pending refreshes', () => {
      it('records the handlers a successful change notified, and clears them when the handler reacted', async () => {
        const first = await store.startRun(runInput('prod'));
        await store.recordResults(first.id, [
          { ...result('File/conf', 'update', 'succeeded', entry('File/conf')), notify: ['Exec/reload', 'Exec/restart'] },
          { ...result('File/other', 'update', 'failed'), notify: ['Exec/never'] },
          { ...result('File/skipped', 'update', 'skipped'), refreshed: true },
        ]);
        const pending = await store.pendingRefreshes('prod');
        expect(pending.map((p) => [p.address, p.notifiedBy, p.runId])).toEqual([
          ['Exec/reload', 'File/conf', first.id],
          ['Exec/restart', 'File/conf', first.id],
        ]);
        expect(pending[0]!.at).toMatch(ISO_UTC);

        // A later run that notifies again keeps one row per notifier, now naming that run.
        const second = await store.startRun(runInput('prod'));
        await store.recordResults(second.id, [
          { ...result('File/conf', 'update', 'succeeded', entry('File/conf')), notify: ['Exec/reload'] },
          { ...result('Exec/restart', 'update', 'failed'), refreshed: true },
        ]);
        expect((await store.pendingRefreshes('prod')).map((p) => [p.address, p.runId])).toEqual([
          ['Exec/reload', second.id],
          ['Exec/restart', first.id],
        ]);

        await store.recordResults(second.id, [{ ...result('Exec/reload', 'update', 'succeeded', entry('Exec/reload')), refreshed: true }]);
        await store.recordResults(second.id, [result('Exec/restart', 'delete', 'succeeded', null)]);
        expect(await store.pendingRefreshes('prod')).toEqual([]);
      });

      it('applies a batch in result order: a notification after its handler reacted stays pending', async () => {
        const run = await store.startRun(runInput('prod'));
        await store.recordResults(run.id, [
          { ...result('File/a', 'update', 'succeeded', entry('File/a')), notify: ['Exec/one', 'Exec/two'] },
          { ...result('File/b', 'update', 'succeeded', entry('File/b')), notify: ['Exec/one'] },
          { ...result('Exec/one', 'update', 'succeeded', entry('Exec/one')), refreshed: true },
          { ...result('File/c', 'update', 'succeeded', entry('File/c')), notify: ['Exec/two'] },
          { ...result('Exec/two', 'update', 'succeeded', entry('Exec/two')), refreshed: true },
          { ...result('File/d', 'update', 'succeeded', entry('File/d')), notify: ['Exec/two', 'Exec/two'] },
        ]);
        expect((await store.pendingRefreshes('prod')).map((p) => [p.address, p.notifiedBy])).toEqual([['Exec/two', 'File/d']]);
      });

      it('keeps each stack’s pending refreshes apart', async () => {
        const a = await store.startRun(runInput('a'));
        await store.recordResults(a.id, [{ ...result('File/conf', 'create', 'succeeded', entry('File/conf')), notify: ['Exec/reload'] }]);
        expect(await store.pendingRefreshes('b')).toEqual([]);
        expect(await store.pendingRefreshes('a')).toHaveLength(1);
      });
    });

    describe('events', () => {
      it('appends events to a run and lists them in order', async () => {
        const run = await store.startRun(runInput('prod'));
        const other = await store.startRun(runInput('prod'));
        await store.appendEvent(run.id, { address: null, type: 'run.started', message: 'applying 2 changes' });
        await store.appendEvent(other.id, { address: null, type: 'run.started', message: 'other run' });
        await store.appendEvent(run.id, { address: 'File/motd', type: 'resource.updated', message: 'content changed' });
        const events = await store.listEvents(run.id);
        expect(events.map(({ id: _id, at: _at, ...e }) => e)).toEqual([
          { runId: run.id, address: null, type: 'run.started', message: 'applying 2 changes' },
          { runId: run.id, address: 'File/motd', type: 'resource.updated', message: 'content changed' },
        ]);
        expect(events[0]!.id).toBeLessThan(events[1]!.id);
        for (const e of events) expect(e.at).toMatch(ISO_UTC);
        expect(await store.listEvents(other.id)).toHaveLength(1);
        expect(await store.listEvents(9999)).toEqual([]);
      });
    });

    describe('locks', () => {
      it('gives the lock with its holder, and refuses a second one naming the holder', async () => {
        const lock = await store.lock('prod', me);
        expect(lock.stack).toBe('prod');
        expect(lock.holder).toMatchObject({ user: 'alice', host: os.hostname(), pid: process.pid });
        expect(lock.holder.since).toMatch(ISO_UTC);

        const second = store.lock('prod', { user: 'bob', host: os.hostname(), pid: process.pid });
        await expect(second).rejects.toBeInstanceOf(StackLockedError);
        const err = (await second.catch((e: unknown) => e)) as StackLockedError;
        expect(err.message).toContain(`alice@${os.hostname()}`);
        expect(err.message).toContain(`pid ${process.pid}`);
        expect(err.message).toContain('prod');
        expect(err.holder).toMatchObject({ user: 'alice', pid: process.pid });
        await lock.release();
      });

      it('names the run working under the lock', async () => {
        const lock = await store.lock('prod', me);
        expect(lock.setRunId).toBeTypeOf('function');
        const run = await store.startRun(runInput('prod'));
        await lock.setRunId!(run.id);
        expect(lock.holder.runId).toBe(run.id);
        await expect(store.lock('prod', me)).rejects.toThrow(`run ${run.id}`);
        await lock.release();
        await expect(lock.setRunId!(run.id)).rejects.toThrow();
      });

      it('locks different stacks independently', async () => {
        const a = await store.lock('a', me);
        const b = await store.lock('b', me);
        await a.release();
        await expect(store.lock('b', me)).rejects.toBeInstanceOf(StackLockedError);
        const again = await store.lock('a', me);
        await again.release();
        await b.release();
      });

      it('locks again after release; a stale handle never releases a later lock', async () => {
        const first = await store.lock('prod', me);
        await first.release();
        const second = await store.lock('prod', me);
        await first.release();
        await expect(store.lock('prod', me)).rejects.toBeInstanceOf(StackLockedError);
        await second.release();
        await second.release();
        const third = await store.lock('prod', me);
        await third.release();
      });

      it('gives the lock to exactly one of several concurrent callers', async () => {
        const outcomes = await Promise.allSettled([store.lock('prod', me), store.lock('prod', me), store.lock('prod', me)]);
        const won = outcomes.filter((o) => o.status === 'fulfilled');
        const lost = outcomes.filter((o) => o.status === 'rejected');
        expect(won).toHaveLength(1);
        for (const o of lost) expect((o as PromiseRejectedResult).reason).toBeInstanceOf(StackLockedError);
        await (won[0] as PromiseFulfilledResult<Awaited<ReturnType<Store['lock']>>>).value.release();
      });

      it('takes over a lock left by a process of this host that ended, interrupting its running runs', async () => {
        const pid = await deadPid();
        const ghost: Actor = { user: 'bob', host: os.hostname(), pid };
        await leaveLockBehind(store, 'prod', ghost);
        const abandoned = await store.startRun(runInput('prod', ghost));
        const done = await store.startRun(runInput('prod', ghost));
        await store.finishRun(done.id, 'succeeded');
        const elsewhere = await store.startRun(runInput('staging', ghost));
        const live = await store.startRun(runInput('prod', me, { kind: 'plan' }));

        const lock = await store.lock('prod', me);
        expect(lock.holder).toMatchObject({ user: 'alice', pid: process.pid });

        const interrupted = await store.getRun(abandoned.id);
        expect(interrupted?.status).toBe('interrupted');
        expect(interrupted?.error).toBe(`process ${pid} ended without finishing the run`);
        expect(interrupted?.finishedAt).toMatch(ISO_UTC);
        expect((await store.getRun(done.id))?.status).toBe('succeeded');
        expect((await store.getRun(elsewhere.id))?.status).toBe('running');
        expect((await store.getRun(live.id))?.status).toBe('running');

        await expect(store.lock('prod', ghost)).rejects.toThrow(`alice@${os.hostname()}`);
        await lock.release();
      });

      it('does not take over a lock held from another host, even by a pid unknown here', async () => {
        const pid = await deadPid();
        const remote: Actor = { user: 'bob', host: 'elsewhere.example', pid };
        const held = await store.lock('prod', remote);
        const run = await store.startRun(runInput('prod', remote));
        const err = await store.lock('prod', me).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(StackLockedError);
        expect((err as Error).message).toContain(`bob@elsewhere.example (pid ${pid}`);
        expect((await store.getRun(run.id))?.status).toBe('running');
        await held.release();
      });
    });
  });
}
