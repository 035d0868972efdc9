/**
 * Core engine at scale: a spec of N files on one local host (sandbox root).
 * Prints validate, first apply, no-op plan, no-op apply and one-change apply
 * wall and CPU times with peak memory, for 1,000 and 10,000 files (or the sizes
 * given), the per-file ratio between two sizes (1.0 = linear), and the floor
 * (`node -e 0`) measured in the same run. Targets: no-op plan of 10,000 files
 * < 1 s; of 100,000 < 10 s and < 1 GiB; first apply of 100,000 < 2 min.
 *
 *   npm run build && npx tsx bench/core.ts [sizes...]      # e.g. 10000 100000
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { capstanArgv, fmt, machine, measure, type Measurement } from './measure.js';

async function writeSpec(repo: string, root: string, n: number, version: number): Promise<void> {
  await mkdir(repo, { recursive: true });
  const docs = [`kind: Host\nname: bench\nspec: { transport: local, root: ${root} }\n`];
  const dirs = Math.ceil(n / 500);
  for (let d = 0; d < dirs; d++) docs.push(`kind: Directory\nname: d${d}\ntarget: bench\nspec: { path: /data/d${d}, mode: "0755" }\n`);
  for (let i = 0; i < n; i++) {
    const content = i === 0 ? `version ${version}\\n` : `file ${i} of ${n}\\n`;
    docs.push(`kind: File\nname: f${i}\ntarget: bench\nspec: { path: /data/d${Math.floor(i / 500)}/f${i}, content: "${content}", mode: "0644" }\n`);
  }
  await writeFile(path.join(repo, 'spec.yaml'), docs.join('---\n'));
}

async function run(n: number): Promise<Record<string, Measurement>> {
  const base = await mkdtemp(path.join(os.tmpdir(), `capstan-bench-${n}-`));
  const repo = path.join(base, 'repo');
  const root = path.join(base, 'root');
  const state = `sqlite:${path.join(base, 'state.db')}`;
  try {
    await writeSpec(repo, root, n, 1);
    const r: Record<string, Measurement> = {};
    r.validate = await measure(capstanArgv('validate', repo));
    r['apply (create)'] = await measure(capstanArgv('apply', repo, '--state', state, '--yes'));
    r['plan (no changes)'] = await measure(capstanArgv('plan', repo, '--state', state, '--detailed-exitcode'));
    r['apply (no-op)'] = await measure(capstanArgv('apply', repo, '--state', state, '--yes'));
    await writeSpec(repo, root, n, 2);
    r['apply (1 change)'] = await measure(capstanArgv('apply', repo, '--state', state, '--yes'));
    r.drift = await measure(capstanArgv('drift', repo, '--state', state));
    return r;
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
  const ns = sizes.length ? sizes : [1000, 10000];
  console.log(`machine: ${machine()}`);
  const floor = await measure([process.execPath, '-e', '0']);
  console.log(`floor: node -e 0 ${fmt(floor.seconds)} wall, ${fmt(floor.cpuSeconds)} CPU`);
  const results = new Map<number, Record<string, Measurement>>();
  for (const n of ns) results.set(n, await run(n));
  const steps = Object.keys(results.get(ns[0]!)!);
  console.log(`\n| step | ${ns.map((n) => `${n} files: wall / CPU (load)`).join(' | ')} | ${ns.map((n) => `${n}: peak RSS`).join(' | ')} |${ns.length === 2 ? ' per-file ratio (CPU) |' : ''}`);
  console.log(`|---|${ns.map(() => '---:').join('|')}|${ns.map(() => '---:').join('|')}|${ns.length === 2 ? '---:|' : ''}`);
  for (const step of steps) {
    const ms = ns.map((n) => results.get(n)![step]!);
    const ratio = ns.length === 2 ? ` ${((ms[1]!.cpuSeconds / ns[1]!) / (ms[0]!.cpuSeconds / ns[0]!)).toFixed(2)} |` : '';
    console.log(`| ${step} | ${ms.map((m) => `${fmt(m.seconds)} / ${fmt(m.cpuSeconds)} (${m.load.toFixed(1)})`).join(' | ')} | ${ms.map((m) => `${m.peakMiB.toFixed(0)} MiB`).join(' | ')} |${ratio}`);
  }
}

await main();
