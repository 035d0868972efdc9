/**
 * Controller benchmark: push-to-applied latency of a one-file change in a
 * 1,000-resource stack, announced by a signed GitHub webhook and found by the
 * poll; then API throughput of `GET /api/stacks` under autocannon.
 *
 *   npm run build && npx tsx bench/controller.ts [--pushes 10] [--resources 1000] [--poll-interval 5s]
 *
 * Runs the built CLI (`bin/capstan serve`) against bare git repositories in a
 * temp directory, and prints the numbers with the machine and date.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { readFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { createApiToken } from '../src/server/auth.js';
import { openStore } from '../src/state/open.js';
import { controllerStoreOf } from '../src/state/store.js';
import { parseDuration } from '../src/reconcile/config.js';
import { git, ROOT, CAPSTAN } from '../test/e2e/harness.js';

const { values: args } = parseArgs({
  options: {
    pushes: { type: 'string', default: '10' },
    resources: { type: 'string', default: '1000' },
    'poll-interval': { type: 'string', default: '5s' },
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '10' },
  },
});
const PUSHES = Number(args.pushes);
const RESOURCES = Number(args.resources);
const POLL = args['poll-interval']!;
const SECRET = randomUUID();

interface Repo {
  remote: string;
  work: string;
  root: string;
}

async function makeRepo(base: string, name: string): Promise<Repo> {
  const remote = path.join(base, `${name}.git`);
  const work = path.join(base, `${name}-work`);
  const root = path.join(base, `${name}-root`);
  await git(base, 'init', '--quiet', '--bare', remote);
  await git(base, 'clone', '--quiet', remote, work);
  await mkdir(path.join(work, 'stack'), { recursive: true });
  await writeFile(path.join(work, 'stack/host.yaml'), `kind: Host\nname: bench\nspec:\n  transport: local\n  root: ${root}\n`);
  // RESOURCES - 1 files in 10 YAML files, plus the host: RESOURCES resources.
  const perFile = Math.ceil((RESOURCES - 1) / 10);
  for (let f = 0; f < 10; f++) {
    const docs: string[] = [];
    for (let i = f * perFile; i < Math.min(RESOURCES - 1, (f + 1) * perFile); i++) {
      docs.push(`kind: File\nname: f${i}\ntarget: bench\nspec:\n  path: /data/f${i}.txt\n  content: "file ${i} rev 0\\n"\n`);
    }
    await writeFile(path.join(work, `stack/files-${f}.yaml`), docs.join('---\n'));
  }
  await commitAndPush(work, 'initial');
  return { remote, work, root };
}

async function commitAndPush(work: string, message: string): Promise<string> {
  await git(work, 'add', '--all');
  await git(work, 'commit', '--quiet', '-m', message);
  await git(work, 'push', '--quiet', 'origin', 'HEAD:main');
  return (await git(work, 'rev-parse', 'HEAD')).trim();
}

/** Changes file f7's content in git: one resource to update. */
async function changeOneFile(repo: Repo, rev: number): Promise<string> {
  const file = path.join(repo.work, 'stack/files-0.yaml');
  const text = await readFile(file, 'utf8');
  await writeFile(file, text.replace(/file 7 rev \d+/, `file 7 rev ${rev}`));
  return commitAndPush(repo.work, `rev ${rev}`);
}

async function waitForContent(file: string, content: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await readFile(file, 'utf8').catch(() => '');
    if (text === content) return;
    if (Date.now() > deadline) throw new Error(`${file} never became ${JSON.stringify(content)}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function stats(ms: number[]): { median: number; p95: number; min: number; max: number } {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
  return { median: at(0.5), p95: at(0.95), min: s[0]!, max: s.at(-1)! };
}

function progress(message: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

async function main(): Promise<void> {
  const base = await mkdtemp(path.join(os.tmpdir(), 'capstan-bench-'));
  let proc: ReturnType<typeof execa> | undefined;
  try {
    const [hook, poll] = await Promise.all([makeRepo(base, 'hook'), makeRepo(base, 'poll')]);
    const state = `sqlite:${path.join(base, 'state.db')}`;
    const store = await openStore(state);
    const token = (await createApiToken(controllerStoreOf(store), { role: 'viewer', name: 'bench' })).token;
    await store.close();
    const config = path.join(base, 'serve.yaml');
    await writeFile(
      config,
      [
        'listen: 127.0.0.1:0',
        `state: ${state}`,
        'cacheDir: cache',
        'stacks:',
        '  - { name: hook, repo: hook.git, branch: main, path: stack, interval: 1h, driftInterval: 1h, webhookSecret: { env: BENCH_SECRET } }',
        `  - { name: poll, repo: poll.git, branch: main, path: stack, interval: ${POLL}, driftInterval: 1h }`,
        '',
      ].join('\n'),
    );
    progress(`repositories ready (${RESOURCES} resources each); starting capstan serve`);
    const started = Date.now();
    proc = execa('node', [CAPSTAN, 'serve', '--config', config, '--log-level', 'info'], { cwd: ROOT, env: { BENCH_SECRET: SECRET, CAPSTAN_LOG_LEVEL: 'info' }, reject: false, buffer: false, stdin: 'ignore' });
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      proc!.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        const m = /"url":"(http:[^"]+)"/.exec(out);
        if (m) resolve(m[1]!);
      });
      void proc!.then((r) => reject(new Error(`serve exited ${r.exitCode}: ${String(r.stderr)}`)));
    });
    const f7 = (repo: Repo) => path.join(repo.root, 'data/f7.txt');
    await Promise.all([waitForContent(f7(hook), 'file 7 rev 0\n', 600_000), waitForContent(f7(poll), 'file 7 rev 0\n', 600_000)]);
    // Both stacks are recorded as synced once their first pass is over.
    for (;;) {
      const stacks = (await (await fetch(`${url}/api/stacks`, { headers: { authorization: `Bearer ${token}` } })).json()) as { status: string }[];
      if (stacks.every((s) => s.status === 'synced')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const initialMs = Date.now() - started;
    progress(`initial apply of both stacks took ${(initialMs / 1000).toFixed(1)} s; measuring webhook pushes`);

    const webhook: number[] = [];
    for (let i = 1; i <= PUSHES; i++) {
      const commit = await changeOneFile(hook, i);
      const body = JSON.stringify({ ref: 'refs/heads/main', after: commit, repository: { clone_url: hook.remote, default_branch: 'main' } });
      const t0 = performance.now();
      const res = await fetch(`${url}/api/webhooks/github`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-github-event': 'push',
          'x-github-delivery': randomUUID(),
          'x-hub-signature-256': `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`,
        },
        body,
      });
      if (res.status !== 202) throw new Error(`webhook answered ${res.status}: ${await res.text()}`);
      await waitForContent(f7(hook), `file 7 rev ${i}\n`);
      webhook.push(performance.now() - t0);
      progress(`webhook push ${i}: ${Math.round(webhook.at(-1)!)} ms`);
    }

    const polled: number[] = [];
    for (let i = 1; i <= PUSHES; i++) {
      await changeOneFile(poll, i);
      const t0 = performance.now();
      await waitForContent(f7(poll), `file 7 rev ${i}\n`);
      polled.push(performance.now() - t0);
      progress(`polled push ${i}: ${Math.round(polled.at(-1)!)} ms`);
    }
    progress('autocannon on GET /api/stacks');

    const cannon = await execa(
      'npx',
      ['autocannon', '--json', '-c', args.connections!, '-d', args.duration!, '-H', `authorization=Bearer ${token}`, `${url}/api/stacks`],
      { cwd: ROOT, reject: false },
    );
    const ac = JSON.parse(cannon.stdout) as { requests: { average: number }; latency: { p50: number; p99: number }; non2xx: number; errors: number };

    const w = stats(webhook);
    const p = stats(polled);
    const cpu = os.cpus();
    const fmt = (n: number) => `${Math.round(n)} ms`;
    const lines = [
      `Capstan controller benchmark, ${new Date().toISOString().slice(0, 10)}`,
      `machine: ${cpu[0]?.model ?? 'unknown'} × ${cpu.length}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, load average at start ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`,
      `stack: ${RESOURCES} resources (1 local Host, ${RESOURCES - 1} Files), SQLite state; initial apply of two such stacks: ${(initialMs / 1000).toFixed(1)} s`,
      '',
      `| one-file change, ${PUSHES} pushes | median | p95 | min | max |`,
      '| --- | --- | --- | --- | --- |',
      `| webhook → applied (file on disk) | ${fmt(w.median)} | ${fmt(w.p95)} | ${fmt(w.min)} | ${fmt(w.max)} |`,
      `| push → applied by the poll (interval ${POLL} ±10%) | ${fmt(p.median)} | ${fmt(p.p95)} | ${fmt(p.min)} | ${fmt(p.max)} |`,
      '',
      `GET /api/stacks (autocannon -c ${args.connections} -d ${args.duration}): ${Math.round(ac.requests.average)} req/s, latency p50 ${ac.latency.p50} ms, p99 ${ac.latency.p99} ms, non-2xx ${ac.non2xx}, errors ${ac.errors}`,
      `webhook-to-applied median target < 1 s: ${w.median < 1000 ? 'met' : 'NOT met'}; each push lands just after the previous pass, so the poll waits about a whole interval (${fmt(parseDuration(POLL) ?? 0)}) plus one pass`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
  } finally {
    if (proc) {
      proc.kill('SIGTERM');
      await proc.catch(() => undefined);
    }
    await rm(base, { recursive: true, force: true });
  }
}

await main();
