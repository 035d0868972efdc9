/**
 * The state store fails in the middle of an apply: a full disk under SQLite (a
 * real, small tmpfs), PostgreSQL cut off (its backends terminated, new
 * connections refused). Capstan stops starting changes, saves what it could
 * not record to a recovery file, says what it changed, and the next apply
 * imports the file and converges.
 */
import { execa } from 'execa';
import { mkdir, readdir, statfs, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, CAPSTAN, capstan, hostDoc, workspace, type Workspace } from './harness.js';

const FILES = 800;
let ws: Workspace;
let cleanups: (() => Promise<unknown>)[] = [];
beforeAll(assertBuilt);
afterEach(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  cleanups = [];
  await ws?.cleanup();
});

async function writeSpec(): Promise<void> {
  await ws.write('hosts.yaml', hostDoc('web-1', ws.root));
  const docs: string[] = ['kind: Directory\nname: data\ntarget: web-1\nspec: { path: /data }\n'];
  for (let i = 0; i < FILES; i++) docs.push(`kind: File\nname: f${i}\ntarget: web-1\nspec: { path: /data/f${i}, content: "file ${i}\\n" }\n`);
  await ws.write('files.yaml', docs.join('---\n'));
}

async function filesOnDisk(): Promise<number> {
  try {
    return (await readdir(path.join(ws.root, 'data'))).filter((n) => !n.startsWith('.')).length;
  } catch {
    return 0;
  }
}

/** The addresses the failed apply says it changed without recording them. */
function unrecordedChanges(stderr: string): string[] {
  return [...stderr.matchAll(/^ {2}\+ (\S+) \(create\)$/gm)].map((m) => m[1]!);
}

async function expectRecoveredAndConverged(state: string, env: Record<string, string>, recoveryFile: string, failedRun: { created: number }): Promise<void> {
  const before = await capstan(['plan', ws.repo, '--state', state], { env });
  expect(before.stderr).toContain(`Warning: ${recoveryFile} holds `);
  const again = await capstan(['apply', ws.repo, '--state', state, '--yes'], { env });
  expect(again.stderr).toContain(`from ${recoveryFile} (now removed)`);
  expect(again.exitCode).toBe(0);
  // Nothing the failed run made is created again: the plan knew of it from the imported file.
  expect(again.stdout).toContain(`${FILES + 1 - failedRun.created} to create`);
  expect(await filesOnDisk()).toBe(FILES);
  await expect(readdir(path.dirname(recoveryFile))).resolves.toEqual([]);
  const plan = await capstan(['plan', ws.repo, '--state', state, '--detailed-exitcode'], { env });
  expect(plan.stdout).toContain('No changes');
  const runs = JSON.parse((await capstan(['history', ws.repo, '--state', state, '--json'], { env })).stdout) as { status: string; counts: { create: number } }[];
  expect(runs.map((r) => r.status)).toEqual(['succeeded', expect.stringMatching(/^(failed|interrupted)$/)]);
  expect(runs[1]!.counts.create).toBe(failedRun.created);
}

describe('the state store fails during an apply', () => {
  it('SQLite on a full disk: stops, saves the unrecorded results outside the store, and the next apply imports them', async () => {
    ws = await workspace();
    await writeSpec();
    const fsDir = path.join(path.dirname(ws.repo), 'small-fs');
    await mkdir(fsDir);
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=0700', 'tmpfs', fsDir]);
    cleanups.push(() => execa('umount', ['-l', fsDir]));
    const state = `sqlite:${path.join(fsDir, 'state.db')}`;
    const env = { XDG_STATE_HOME: path.join(path.dirname(ws.repo), 'xdg') };
    // Leave room for the schema and a few hundred results, not for all of them.
    const { bavail, bsize } = await statfs(fsDir);
    const filler = path.join(fsDir, 'filler');
    await writeFile(filler, Buffer.alloc(bavail * bsize - 400 * 1024));

    const failed = await capstan(['apply', ws.repo, '--state', state, '--yes', '--parallelism', '4'], { env });
    expect(failed.exitCode).toBe(1);
    expect(failed.stderr).toMatch(/The state store stopped taking results: .*(disk is full|SQLITE_FULL)/);
    expect(failed.stderr).not.toMatch(/^\s+at /m);
    const file = /saved in (\S+\.json);/.exec(failed.stderr)?.[1];
    // The disk beside the database is full: the file went to the next documented place.
    expect(file).toMatch(new RegExp(`^${env.XDG_STATE_HOME}/capstan/recovery/capstan-recovery-default-run1-[0-9a-f]{16}\\.json$`));
    const onDisk = await filesOnDisk();
    expect(onDisk).toBeGreaterThan(0);
    expect(onDisk).toBeLessThan(FILES);
    const history = JSON.parse((await capstan(['history', ws.repo, '--state', state, '--json'], { env })).stdout) as { counts: { create: number } }[];
    // Every file written is in the store or listed as unrecorded (+1: the directory).
    expect(history[0]!.counts.create + unrecordedChanges(failed.stderr).length).toBe(onDisk + 1);

    await execa('rm', [filler]);
    await expectRecoveredAndConverged(state, env, file!, { created: onDisk + 1 });
  }, 120_000);

  it('PostgreSQL lost mid-apply: no crash, the run is not left running, and the next apply imports what was not recorded', async () => {
    ws = await workspace();
    await writeSpec();
    const db = `capstan_e2e_loss_${process.pid}`;
    const admin = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'postgres' });
    await admin.connect();
    cleanups.push(() => admin.end());
    await admin.query(`CREATE DATABASE ${db}`);
    cleanups.push(async () => {
      await admin.query(`ALTER DATABASE ${db} WITH ALLOW_CONNECTIONS true`);
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [db]);
      await admin.query(`DROP DATABASE IF EXISTS ${db}`);
    });
    const state = `postgres://postgres@127.0.0.1:5432/${db}`;
    const env = { XDG_STATE_HOME: path.join(path.dirname(ws.repo), 'xdg') };

    const child = execa('node', [CAPSTAN, 'apply', ws.repo, '--state', state, '--yes', '--parallelism', '2'], { env: { NO_COLOR: '1', ...env }, reject: false, stdin: 'ignore' });
    for (const until = Date.now() + 60_000; (await filesOnDisk()) < 100; ) {
      if (Date.now() > until) throw new Error('the apply did not get going');
      await new Promise((r) => setTimeout(r, 10));
    }
    await admin.query(`ALTER DATABASE ${db} WITH ALLOW_CONNECTIONS false`);
    await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [db]);
    const failed = await child;
    const stderr = String(failed.stderr);
    expect(stderr).not.toMatch(/Unhandled 'error' event|ECONNRESET|^\s+at /m);
    expect(failed.exitCode).toBe(1);
    expect(stderr).toMatch(/The state store stopped taking results: /);
    const file = /saved in (\S+\.json);/.exec(stderr)?.[1];
    expect(file).toMatch(/capstan-recovery-default-run1-[0-9a-f]{16}\.json$/);
    const onDisk = await filesOnDisk();
    expect(onDisk).toBeLessThan(FILES);

    await admin.query(`ALTER DATABASE ${db} WITH ALLOW_CONNECTIONS true`);
    const history = JSON.parse((await capstan(['history', '--state', state, '--json'], { env })).stdout) as { counts: { create: number } }[];
    expect(history[0]!.counts.create + unrecordedChanges(stderr).length).toBe(onDisk + 1);
    await expectRecoveredAndConverged(state, env, file!, { created: onDisk + 1 });
  }, 120_000);
});
