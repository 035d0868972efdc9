import { mkdir, readdir, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, capstan, hostDoc, spawnCapstan, workspace, type Workspace } from './harness.js';

const FILES = 3000;

let ws: Workspace;
beforeAll(assertBuilt);
afterEach(async () => ws?.cleanup());

async function writeBigSpec(): Promise<void> {
  await ws.write('hosts.yaml', hostDoc('web-1', ws.root));
  const docs: string[] = ['kind: Directory\nname: data\ntarget: web-1\nspec: { path: /data }\n'];
  for (let i = 0; i < FILES; i++) docs.push(`kind: File\nname: f${i}\ntarget: web-1\nspec: { path: /data/f${i}, content: "file ${i}\\n", mode: "0640" }\n`);
  await ws.write('files.yaml', docs.join('---\n'));
}

async function countFiles(): Promise<number> {
  try {
    return (await readdir(path.join(ws.root, 'data'))).filter((n) => !n.startsWith('.')).length;
  } catch {
    return 0;
  }
}

async function waitFor(cond: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function expectConverged(): Promise<void> {
  const again = await capstan(['apply', ws.repo, '--state', ws.state, '--yes']);
  expect(again.stderr).toBe('');
  expect(again.exitCode).toBe(0);
  expect(await countFiles()).toBe(FILES);
  for (const i of [0, 1, FILES / 2, FILES - 1]) expect(await readFile(path.join(ws.root, `data/f${i}`), 'utf8')).toBe(`file ${i}\n`);
  const plan = await capstan(['plan', ws.repo, '--state', ws.state, '--detailed-exitcode']);
  expect(plan.stdout).toContain('No changes');
  expect(plan.exitCode).toBe(0);
}

describe('interrupted applies', () => {
  it(`SIGKILL during an apply of ${FILES} files leaves a store that opens, and the next apply converges`, async () => {
    ws = await workspace();
    await writeBigSpec();
    const child = spawnCapstan(['apply', ws.repo, '--state', ws.state, '--yes', '--parallelism', '2']);
    await waitFor(async () => (await countFiles()) >= 200, 60_000);
    child.kill('SIGKILL');
    await child;
    const written = await countFiles();
    expect(written).toBeGreaterThanOrEqual(200);
    expect(written).toBeLessThan(FILES);

    const history = await capstan(['history', ws.repo, '--state', ws.state, '--json']);
    expect(history.exitCode).toBe(0);
    const runs = JSON.parse(history.stdout) as { status: string; counts: { create: number } }[];
    expect(runs).toHaveLength(1);
    expect(runs[0]!.status).toBe('running');
    expect(runs[0]!.counts.create).toBeGreaterThan(0);

    await expectConverged();
    const after = JSON.parse((await capstan(['history', ws.repo, '--state', ws.state, '--json'])).stdout) as { status: string }[];
    // The killed run is marked interrupted once its lock is taken over.
    expect(after.map((r) => r.status)).toEqual(['succeeded', 'interrupted']);
  }, 240_000);

  it('SIGINT stops taking new work, records what finished, and exits non-zero', async () => {
    ws = await workspace();
    await writeBigSpec();
    const child = spawnCapstan(['apply', ws.repo, '--state', ws.state, '--yes', '--parallelism', '2']);
    await waitFor(async () => (await countFiles()) >= 200, 60_000);
    child.kill('SIGINT');
    const result = await child;
    expect(result.exitCode).toBe(130);
    expect(result.stderr).toMatch(/SIGINT: finishing the changes in flight/);
    const runs = JSON.parse((await capstan(['history', ws.repo, '--state', ws.state, '--json'])).stdout) as { status: string; counts: { create: number; skipped: number } }[];
    expect(runs[0]!.status).toBe('interrupted');
    // Every file on disk was recorded before the process exited (+1: the directory).
    expect(runs[0]!.counts.create).toBe((await countFiles()) + 1);
    expect(runs[0]!.counts.skipped).toBeGreaterThan(0);
    await expectConverged();
  }, 240_000);

  it('a second SIGINT exits at once; the store still opens and the next apply converges', async () => {
    ws = await workspace();
    await writeBigSpec();
    // A change that stays in flight: the graceful stop would wait 60 s for it. It runs
    // once (a marker outside the root), so the converging apply does not wait again.
    const marker = path.join(path.dirname(ws.root), 'slow-ran');
    await mkdir(ws.root, { recursive: true }); // the Exec's working directory
    await ws.write(
      'slow.yaml',
      `kind: Exec\nname: slow\ntarget: web-1\nspec:\n  shell: true\n  command: "if [ ! -e ${marker} ]; then touch ${marker}; sleep 60; fi"\n`,
    );
    const child = spawnCapstan(['apply', ws.repo, '--state', ws.state, '--yes', '--parallelism', '2']);
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    await waitFor(async () => (await countFiles()) >= 200, 60_000);
    child.kill('SIGINT');
    await waitFor(async () => /SIGINT: finishing the changes in flight/.test(stderr), 30_000);
    child.kill('SIGINT');
    const result = await child;
    expect(result.exitCode).toBe(130);
    expect(result.stderr).toMatch(/SIGINT again: exiting now/);
    expect(existsSync(marker)).toBe(true); // the slow change was in flight

    const history = await capstan(['history', ws.repo, '--state', ws.state, '--json']);
    expect(history.exitCode).toBe(0);
    expect(JSON.parse(history.stdout)).toHaveLength(1);
    await expectConverged();
  }, 240_000);
});
