/**
 * `capstan serve` whose SQLite store fills its disk (a real, small tmpfs) in the
 * middle of an apply: the results it could not record go to a recovery file, and
 * once there is room again the stack's next pass imports that file before it
 * plans, so the controller converges without forgetting or adopting anything it
 * made, and without making anything twice.
 */
import { execa } from 'execa';
import { mkdir, readdir, statfs, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, createToken, gitRemote, killAll, serve, waitFor, type GitRemote } from './controller-harness.js';
import { assertBuilt, capstan, hostDoc, workspace, type Workspace } from './harness.js';

const FILES = 800;
let ws: Workspace;
let remote: GitRemote;
let fsDir: string;
let mounted = false;

async function filesOnDisk(): Promise<number> {
  try {
    return (await readdir(path.join(ws.root, 'data'))).filter((n) => !n.startsWith('.')).length;
  } catch {
    return 0;
  }
}

async function recoveryFiles(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((n) => n.startsWith('capstan-recovery-')).map((n) => path.join(dir, n));
  } catch {
    return [];
  }
}

beforeAll(async () => {
  assertBuilt();
  ws = await workspace();
  remote = await gitRemote();
  fsDir = path.join(path.dirname(ws.repo), 'small-fs');
  await mkdir(fsDir);
  await execa('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=0700', 'tmpfs', fsDir]);
  mounted = true;
});

afterAll(async () => {
  await killAll();
  if (mounted) await execa('umount', ['-l', fsDir]).catch(() => undefined);
  await remote?.cleanup();
  await ws?.cleanup();
});

describe('capstan serve when its state store fails during an apply', () => {
  it('saves what the full disk could not take in a recovery file, and the next pass imports it and converges', async () => {
    const base = path.dirname(ws.repo);
    const state = `sqlite:${path.join(fsDir, 'state.db')}`;
    const xdg = path.join(base, 'xdg');
    const recoveryDir = path.join(xdg, 'capstan', 'recovery');
    const first = await remote.push({ 'hosts.yaml': hostDoc('web-1', ws.root) }, 'the host');
    const config = path.join(base, 'capstan.yaml');
    await writeFile(
      config,
      `listen: 127.0.0.1:0\nstate: ${state}\ncacheDir: ${path.join(base, 'git-cache')}\n` +
        `stacks:\n  - name: prod\n    repo: ${remote.remote}\n    branch: main\n    interval: 1s\n    driftInterval: 1h\n`,
    );
    const token = await createToken(state, 'admin', 'store-failure-test');
    const served = await serve(config, { XDG_STATE_HOME: xdg });
    const lastApplied = async (): Promise<string | null | undefined> =>
      (await api<{ name: string; lastAppliedCommit: string | null }[]>(served, '/api/stacks', { token })).body.find((s) => s.name === 'prod')?.lastAppliedCommit;
    const logTail = (): string => served.logs().slice(-20).map((l) => JSON.stringify(l)).join('\n');
    await waitFor('the first commit applied', async () => (await lastApplied()) === first, 60_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${logTail()}`);
    });

    // Room for a few hundred results, not for all of them.
    const { bavail, bsize } = await statfs(fsDir);
    const filler = path.join(fsDir, 'filler');
    await writeFile(filler, Buffer.alloc(bavail * bsize - 400 * 1024));
    const docs: string[] = ['kind: Directory\nname: data\ntarget: web-1\nspec: { path: /data }\n'];
    for (let i = 0; i < FILES; i++) docs.push(`kind: File\nname: f${i}\ntarget: web-1\nspec: { path: /data/f${i}, content: "file ${i}\\n" }\n`);
    const second = await remote.push({ 'files.yaml': docs.join('---\n') }, 'many files');

    // The disk beside the database is full: the file goes to the next documented place.
    const [file] = await waitFor('a recovery file', async () => {
      const found = await recoveryFiles(recoveryDir);
      return found.length > 0 ? found : undefined;
    }, 120_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${logTail()}`);
    });
    expect(path.basename(file!)).toMatch(/^capstan-recovery-prod-run\d+-[0-9a-f]{16}\.json$/);
    const madeBeforeRoom = await filesOnDisk();
    expect(madeBeforeRoom).toBeGreaterThan(0);
    expect(madeBeforeRoom).toBeLessThan(FILES);

    await execa('rm', [filler]);
    await waitFor('the second commit applied', async () => (await lastApplied()) === second, 120_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${logTail()}`);
    });
    expect(await filesOnDisk()).toBe(FILES);
    expect(await recoveryFiles(recoveryDir)).toEqual([]);
    const imported = served.logs().filter((l) => typeof l.msg === 'string' && l.msg.startsWith('imported the results a failed state store could not record'));
    expect(imported.map((l) => l.file)).toEqual([file]);
    await served.stop();

    // The failed run holds what it made (recorded, or imported from the file); the next one made only the rest.
    const runs = JSON.parse((await capstan(['history', '--state', state, '--stack', 'prod', '--json'], { env: { XDG_STATE_HOME: xdg } })).stdout) as {
      status: string;
      counts: { create: number; update: number };
    }[];
    const failed = runs.find((r) => r.status === 'failed' || r.status === 'interrupted');
    const succeeded = runs.filter((r) => r.status === 'succeeded');
    expect(failed, JSON.stringify(runs)).toBeDefined();
    expect(failed!.counts.create).toBe(madeBeforeRoom + 1);
    expect(succeeded.reduce((n, r) => n + r.counts.create, 0)).toBe(FILES + 1 - failed!.counts.create);
    // The store knows every resource as created by Capstan: a plan of the same commit has nothing to create or adopt.
    const checkout = path.join(base, 'checkout');
    await execa('git', ['clone', '--quiet', remote.remote, checkout]);
    const plan = await capstan(['plan', checkout, '--state', state, '--stack', 'prod', '--detailed-exitcode'], { env: { XDG_STATE_HOME: xdg } });
    expect(plan.exitCode, plan.stdout + plan.stderr).toBe(0);
    expect(plan.stdout).not.toMatch(/adopt/);
  }, 300_000);
});
