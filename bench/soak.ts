/**
 * Soak test of the controller (not in CI): the built `capstan serve` with
 * many stacks on a short interval for a bounded time, sampling its memory,
 * event-loop lag and pass rate, with a verdict on memory growth.
 *
 *   npm run build && npx tsx bench/soak.ts [--minutes 10] [--stacks 200] [--resources 20000] [--interval 10s] [--drift-interval 60s] [--capstan bin/capstan]
 *
 * One bare git repository on disk holds one directory per stack (a local
 * `Host` with a sandbox root under a temp directory, and `File`s); every
 * stack follows it. Each minute one stack's file changes in git (one push), so
 * passes keep planning and applying, not only fetching. Every talk is to
 * loopback; the temp directory is removed at the end.
 *
 * The measured minutes start once the initial apply of every stack is done
 * (every file on disk; at most 20 min of warm-up). Sampled every 5 s: RSS of the serve process (/proc/PID/status), the
 * event-loop lag the controller itself measures (`capstan_nodejs_eventloop_lag_p99_seconds`
 * on /metrics, prom-client's monitorEventLoopDelay), the latency of
 * `GET /healthz` as seen from outside, and `capstan_reconcile_total` (passes,
 * all outcomes). Prints one row per minute, then the verdict: a least-squares
 * line through RSS over the second half of the measured minutes;
 * memory is called bounded when that line grows less than 5 % of the mean RSS
 * per 10 minutes.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { execa, type ResultPromise } from 'execa';
import { CAPSTAN, git, ROOT } from '../test/e2e/harness.js';

const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    stacks: { type: 'string', default: '200' },
    resources: { type: 'string', default: '20000' },
    interval: { type: 'string', default: '10s' },
    'drift-interval': { type: 'string', default: '60s' },
    'sample-every': { type: 'string', default: '5' },
    /** Another build of bin/capstan (e.g. a copy, so rebuilding the checkout does not touch the running process). */
    capstan: { type: 'string', default: CAPSTAN },
  },
});
const MINUTES = Number(args.minutes);
const STACKS = Number(args.stacks);
const PER_STACK = Math.max(2, Math.floor(Number(args.resources) / STACKS));
const SAMPLE_MS = Number(args['sample-every']) * 1000;

interface Sample {
  readonly atMs: number;
  readonly rssMiB: number;
  readonly lagP99Ms: number | null;
  readonly healthzMs: number;
  readonly passes: number;
}

function progress(message: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

function fileDocs(stack: number, count: number, rev: number): string {
  const docs: string[] = [];
  for (let i = 0; i < count; i++) {
    docs.push(`kind: File\nname: f${i}\ntarget: h${stack}\nspec:\n  path: /data/f${i}.txt\n  content: "stack ${stack} file ${i} rev ${i === 0 ? rev : 0}\\n"\n`);
  }
  return docs.join('---\n');
}

async function commitAndPush(work: string, message: string): Promise<void> {
  await git(work, 'add', '--all');
  await git(work, 'commit', '--quiet', '-m', message);
  await git(work, 'push', '--quiet', 'origin', 'HEAD:main');
}

async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
  return kb / 1024;
}

function metric(text: string, name: string): number | null {
  const m = new RegExp(`^${name} ([0-9.eE+-]+)$`, 'm').exec(text);
  return m ? Number(m[1]) : null;
}

function sumMetric(text: string, name: string): number {
  let sum = 0;
  for (const m of text.matchAll(new RegExp(`^${name}\\{[^}]*\\} ([0-9.eE+-]+)$`, 'gm'))) sum += Number(m[1]);
  return sum;
}

/** Least squares: slope (per ms) and mean of ys. */
function linearFit(xs: readonly number[], ys: readonly number[]): { slope: number; mean: number } {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return { slope: den === 0 ? 0 : num / den, mean: my };
}

let warmUp = { seconds: 0, rssMiB: 0 };

async function main(): Promise<void> {
  const base = await mkdtemp(path.join(os.tmpdir(), 'capstan-soak-'));
  let proc: ResultPromise | undefined;
  try {
    const remote = path.join(base, 'infra.git');
    const work = path.join(base, 'work');
    await git(base, 'init', '--quiet', '--bare', remote);
    await git(base, 'clone', '--quiet', remote, work);
    for (let s = 0; s < STACKS; s++) {
      const dir = path.join(work, 'stacks', `s${s}`);
      await mkdir(dir, { recursive: true });
      await writeFile(path.join(dir, 'host.yaml'), `kind: Host\nname: h${s}\nspec:\n  transport: local\n  root: ${path.join(base, 'roots', `s${s}`)}\n`);
      await writeFile(path.join(dir, 'files.yaml'), fileDocs(s, PER_STACK - 1, 0));
    }
    await commitAndPush(work, 'initial');
    const config = path.join(base, 'serve.yaml');
    const stackLines = Array.from(
      { length: STACKS },
      (_, s) => `  - { name: s${s}, repo: infra.git, branch: main, path: stacks/s${s}, interval: ${args.interval}, driftInterval: ${args['drift-interval']} }`,
    );
    await writeFile(config, ['listen: 127.0.0.1:0', `state: sqlite:${path.join(base, 'state.db')}`, 'cacheDir: cache', 'stacks:', ...stackLines, ''].join('\n'));
    progress(`${STACKS} stacks × ${PER_STACK} resources = ${STACKS * PER_STACK} resources; starting capstan serve for ${MINUTES} min`);

    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    proc = execa('node', [args.capstan!, 'serve', '--config', config, '--listen', `127.0.0.1:${port}`, '--log-level', 'warn'], {
      cwd: ROOT,
      reject: false,
      buffer: false,
      stdin: 'ignore',
      stdout: 'ignore',
      stderr: 'pipe',
    });
    let stderr = '';
    let exitedWith: string | null = null;
    proc.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
    void proc.then((r) => (exitedWith = `exit ${r.exitCode}: ${stderr}`));
    const pid = proc.pid!;
    await waitHealthy(url, () => exitedWith);
    progress(`listening at ${url} (pid ${pid})`);

    // Warm-up: the initial apply of every stack, bounded; the measured minutes start once every file is on disk.
    const warmStart = Date.now();
    const expected = STACKS * (PER_STACK - 1);
    for (let seen = 0; seen < expected; seen = await countAppliedFiles(path.join(base, 'roots'))) {
      if (Date.now() - warmStart > 20 * 60_000) throw new Error(`the initial apply did not finish in 20 min (${seen} of ${expected} files)`);
      await new Promise((r) => setTimeout(r, 2_000));
    }
    warmUp = { seconds: (Date.now() - warmStart) / 1000, rssMiB: await rssMiB(pid) };
    progress(`initial apply done in ${warmUp.seconds.toFixed(0)} s (RSS ${warmUp.rssMiB.toFixed(0)} MiB); measuring for ${MINUTES} min`);

    const started = Date.now();
    const samples: Sample[] = [];
    let rev = 0;
    let nextPush = started + 60_000;
    while (Date.now() - started < MINUTES * 60_000) {
      const t0 = performance.now();
      const health = await fetch(`${url}/healthz`);
      const healthzMs = performance.now() - t0;
      if (!health.ok) throw new Error(`/healthz answered ${health.status}`);
      const text = await (await fetch(`${url}/metrics`)).text();
      const lag = metric(text, 'capstan_nodejs_eventloop_lag_p99_seconds');
      samples.push({ atMs: Date.now() - started, rssMiB: await rssMiB(pid), lagP99Ms: lag === null ? null : lag * 1000, healthzMs, passes: sumMetric(text, 'capstan_reconcile_total') });
      if (Date.now() >= nextPush) {
        rev += 1;
        const s = rev % STACKS;
        await writeFile(path.join(work, 'stacks', `s${s}`, 'files.yaml'), fileDocs(s, PER_STACK - 1, rev));
        await commitAndPush(work, `rev ${rev}`);
        nextPush += 60_000;
      }
      await new Promise((r) => setTimeout(r, Math.max(0, SAMPLE_MS - (performance.now() - t0))));
    }
    const applied = await countAppliedFiles(path.join(base, 'roots'));
    report(samples, applied);
  } finally {
    if (proc) {
      proc.kill('SIGTERM');
      await proc.catch(() => undefined);
    }
    await rm(base, { recursive: true, force: true });
  }
}

/** A free loopback port (bound and released), for --listen. */
async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

async function waitHealthy(url: string, exited: () => string | null): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const gone = exited();
    if (gone !== null) throw new Error(`capstan serve exited before listening:\n${gone}`);
    if (await fetch(`${url}/healthz`).then((r) => r.ok, () => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('capstan serve did not answer /healthz within 60 s');
}

async function countAppliedFiles(roots: string): Promise<number> {
  let n = 0;
  for (const s of await readdir(roots).catch(() => [] as string[])) n += (await readdir(path.join(roots, s, 'data')).catch(() => [] as string[])).length;
  return n;
}

function report(samples: readonly Sample[], appliedFiles: number): void {
  const rows: string[] = ['| minute | RSS MiB (end) | event-loop lag p99 ms (max) | /healthz ms (max) | passes in the minute |', '| ---: | ---: | ---: | ---: | ---: |'];
  const minutes = Math.ceil((samples.at(-1)?.atMs ?? 0) / 60_000);
  let passesBefore = samples[0]?.passes ?? 0;
  for (let m = 0; m < minutes; m++) {
    const inMinute = samples.filter((s) => s.atMs >= m * 60_000 && s.atMs < (m + 1) * 60_000);
    if (inMinute.length === 0) continue;
    const last = inMinute.at(-1)!;
    const lags = inMinute.map((s) => s.lagP99Ms).filter((l): l is number => l !== null);
    rows.push(
      `| ${m + 1} | ${last.rssMiB.toFixed(0)} | ${lags.length ? Math.max(...lags).toFixed(1) : 'n/a'} | ${Math.max(...inMinute.map((s) => s.healthzMs)).toFixed(1)} | ${last.passes - passesBefore} |`,
    );
    passesBefore = last.passes;
  }
  const half = samples.filter((s) => s.atMs >= (samples.at(-1)!.atMs / 2));
  const fit = linearFit(
    half.map((s) => s.atMs),
    half.map((s) => s.rssMiB),
  );
  const quarter = samples.filter((s) => s.atMs >= (samples.at(-1)!.atMs * 3) / 4);
  const lastQuarter = linearFit(
    quarter.map((s) => s.atMs),
    quarter.map((s) => s.rssMiB),
  );
  const perTenMin = fit.slope * 600_000;
  const bounded = perTenMin < 0.05 * fit.mean;
  const cpu = os.cpus();
  process.stdout.write(
    [
      `Capstan soak, ${new Date().toISOString().slice(0, 16)}Z: ${STACKS} stacks × ${PER_STACK} resources, interval ${args.interval}, driftInterval ${args['drift-interval']}, one push a minute`,
      `machine: ${cpu[0]?.model ?? 'unknown'} × ${cpu.length}, Node ${process.version}, load average at the end ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`,
      `initial apply (warm-up, not in the table): ${warmUp.seconds.toFixed(0)} s, RSS after it ${warmUp.rssMiB.toFixed(0)} MiB`,
      `files on disk at the end: ${appliedFiles} of ${STACKS * (PER_STACK - 1)}`,
      '',
      ...rows,
      '',
      `RSS over the second half: mean ${fit.mean.toFixed(0)} MiB, linear fit ${perTenMin >= 0 ? '+' : ''}${perTenMin.toFixed(1)} MiB per 10 min`,
      `RSS over the last quarter (for information): mean ${lastQuarter.mean.toFixed(0)} MiB, linear fit ${lastQuarter.slope >= 0 ? '+' : ''}${(lastQuarter.slope * 600_000).toFixed(1)} MiB per 10 min`,
      `verdict: ${bounded ? 'memory bounded (growth under 5 % of the mean per 10 min)' : 'MEMORY GROWS (5 % or more of the mean per 10 min): investigate'}`,
      '',
    ].join('\n'),
  );
  if (!bounded) process.exitCode = 2;
}

await main();
