/**
 * CLI start-up: `capstan --version` and `capstan validate` of a 2-resource stack
 * (one local Host, one Directory, one File) against the floor, `node -e 0`,
 * measured in the same run, interleaved round by round so that the load of the
 * machine hits all three alike. Prints medians, the distance to the floor and
 * the targets (≤ 0.15 s / ≤ 0.25 s, i.e. within 0.06 s / 0.16 s of the floor).
 *
 *   npm run build && npx tsx bench/startup.ts [rounds]     # default 15 rounds
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CAPSTAN, machine } from './measure.js';

const STACK = `kind: Host
name: local
spec: { transport: local, root: ROOT }
---
kind: Directory
name: app
target: local
spec: { path: /srv/app, mode: "0755" }
---
kind: File
name: motd
target: local
dependsOn: [Directory/app]
spec: { path: /srv/app/motd, content: "hello\\n", mode: "0644" }
`;

/** Wall seconds of one run; throws on an unexpected exit code. */
function time(argv: readonly string[]): number {
  const started = process.hrtime.bigint();
  const r = spawnSync(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stderr.toString()}`);
  return seconds;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const ms = (s: number) => `${(s * 1000).toFixed(0)} ms`;

async function main(): Promise<void> {
  const rounds = Number(process.argv[2] ?? 15);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-bench-startup-'));
  try {
    await writeFile(path.join(dir, 'stack.yaml'), STACK.replace('ROOT', path.join(dir, 'root')));
    const cases = {
      'node -e 0': [process.execPath, '-e', '0'],
      'capstan --version': [process.execPath, CAPSTAN, '--version'],
      'capstan validate (2 resources)': [process.execPath, CAPSTAN, 'validate', dir],
    } as const;
    const names = Object.keys(cases) as (keyof typeof cases)[];
    const samples = new Map(names.map((n) => [n, [] as number[]]));
    for (const n of names) time(cases[n]); // warm the page cache
    const loadBefore = os.loadavg()[0]!;
    for (let i = 0; i < rounds; i++) for (const n of names) samples.get(n)!.push(time(cases[n]));
    const loadAfter = os.loadavg()[0]!;

    console.log(`machine: ${machine()}`);
    console.log(`${rounds} rounds, 1-min load average ${loadBefore.toFixed(1)} before, ${loadAfter.toFixed(1)} after\n`);
    const floor = median(samples.get('node -e 0')!);
    const targets: Record<string, { total: number; over: number }> = {
      'capstan --version': { total: 0.15, over: 0.06 },
      'capstan validate (2 resources)': { total: 0.25, over: 0.16 },
    };
    console.log('| command | median | min | over `node -e 0` | ratio to `node -e 0` | target (total / over floor) |');
    console.log('|---|---:|---:|---:|---:|---|');
    for (const n of names) {
      const m = median(samples.get(n)!);
      const t = targets[n];
      const verdict = t ? `${ms(t.total)} / ${ms(t.over)}: ${m <= t.total || m - floor <= t.over ? 'met' : 'NOT met'}` : 'floor';
      console.log(`| ${n} | ${ms(m)} | ${ms(Math.min(...samples.get(n)!))} | ${ms(m - floor)} | ${(m / floor).toFixed(2)}x | ${verdict} |`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
