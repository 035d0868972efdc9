/**
 * Hostile stacks against the load budgets, this build against a peer build in the
 * same run (default: /work/main, or --peer DIR, a checkout with `npm run build` done):
 *
 *   big-render  15 MB rendered by one template on each of 40 hosts
 *   big-yaml    8 YAML files of 15 MB (11,888 documents)
 *   loop        3 Files x 10 hosts whose template loops until the 2 s render limit
 *
 * `capstan validate` on each (wall time, peak RSS from GNU time, last line), then,
 * for `loop`, the event loop of a process loading it (`monitorEventLoopDelay`).
 *
 *   npm run build && npx tsx bench/load-budget.ts [--peer /work/main] [--cases big-render,big-yaml,loop]
 */
import { execa } from 'execa';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fmt, machine, measure, ROOT } from './measure.js';

const { values } = parseArgs({ options: { peer: { type: 'string', default: '/work/main' }, cases: { type: 'string', default: 'big-render,big-yaml,loop' } } });
const MB = 1000 * 1000;

const hosts = (dir: string, n: number) =>
  Array.from({ length: n }, (_, i) => `kind: Host\nname: web-${i}\nspec: { transport: local, root: ${dir}/root/web-${i}, groups: [web] }\n`).join('---\n');

async function fixture(kind: string, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  if (kind === 'big-render') {
    await writeFile(path.join(dir, 'hosts.yaml'), hosts(dir, 40));
    await writeFile(path.join(dir, 'big.liquid'), `{{ host.name }}\n${`${'x'.repeat(99)}\n`.repeat((15 * MB) / 100)}`);
    await writeFile(path.join(dir, 'big.yaml'), 'kind: File\nname: big\ntarget: group:web\nspec: { path: /etc/big, template: big.liquid }\n');
  } else if (kind === 'big-yaml') {
    await writeFile(path.join(dir, 'a-hosts.yaml'), hosts(dir, 1));
    for (let f = 0; f < 8; f++) {
      const docs: string[] = [];
      for (let i = 0, size = 0; size < 15 * MB; i++) {
        const d = `kind: File\nname: f${f}-${i}\ntarget: web-0\nspec:\n  path: /etc/f${f}/${i}\n  content: "${'y'.repeat(10_000)}"\n  mode: "0644"\n`;
        docs.push(d);
        size += d.length + 4;
      }
      await writeFile(path.join(dir, `files-${f}.yaml`), docs.join('---\n'));
    }
  } else {
    await writeFile(path.join(dir, 'hosts.yaml'), hosts(dir, 10));
    await writeFile(path.join(dir, 'slow.liquid'), '{% for i in (1..15000000) %}{% for j in (1..1) %}{% endfor %}{% endfor %}');
    for (let f = 0; f < 3; f++) await writeFile(path.join(dir, `slow-${f}.yaml`), `kind: File\nname: slow-${f}\ntarget: group:web\nspec: { path: /etc/slow-${f}, template: slow.liquid }\n`);
  }
}

/** Loads DIR in a child process with that build's loader and reports the event loop's worst stall. */
async function eventLoop(build: string, dir: string): Promise<string> {
  const script = `
    import { monitorEventLoopDelay } from 'node:perf_hooks';
    const { loadStack } = await import(${JSON.stringify(path.join(build, 'dist/spec/load.js'))});
    const { defaultRegistry } = await import(${JSON.stringify(path.join(build, 'dist/providers/index.js'))});
    const h = monitorEventLoopDelay({ resolution: 10 }); h.enable();
    let ticks = 0; const t = setInterval(() => ticks++, 10);
    const started = performance.now();
    await loadStack(${JSON.stringify(dir)}, defaultRegistry());
    clearInterval(t); h.disable();
    console.log(JSON.stringify({ s: (performance.now() - started) / 1000, maxMs: h.max / 1e6, ticks }));
    process.exit(0);`;
  const r = await execa(process.execPath, ['--input-type=module', '-e', script], { reject: false });
  if (r.exitCode !== 0) return `failed: ${r.stderr.slice(-300)}`;
  const m = JSON.parse(r.stdout.trim().split('\n').pop()!) as { s: number; maxMs: number; ticks: number };
  return `load ${fmt(m.s)}, longest event-loop stall ${fmt(m.maxMs / 1000)}, 10 ms ticks ${m.ticks} of ~${Math.round(m.s * 100)}`;
}

const base = await mkdtemp(path.join(os.tmpdir(), 'capstan-bench-budget-'));
try {
  console.log(`# load budgets, ${machine()}, ${new Date().toISOString()}`);
  for (const kind of values.cases.split(',')) {
    const dir = path.join(base, kind);
    await fixture(kind, dir);
    for (const [label, build] of [
      ['peer', values.peer],
      ['this', ROOT],
    ] as const) {
      const m = await measure([process.execPath, path.join(build, 'bin/capstan'), 'validate', dir], { okCodes: [0, 1] });
      const last = `${m.stdout}\n${m.stderr}`.trim().split('\n').pop()!.slice(0, 160);
      console.log(`${kind.padEnd(10)} ${label}: ${fmt(m.seconds).padStart(8)}  peak ${m.peakMiB.toFixed(0).padStart(5)} MiB  exit ${m.exitCode}  ${last}`);
      if (kind === 'loop') console.log(`${''.padEnd(10)} ${label}: ${await eventLoop(build, dir)}`);
    }
  }
} finally {
  await rm(base, { recursive: true, force: true });
}
