/** Helpers for the controller's end-to-end tests: a bare git remote, `capstan serve` in a child process, HTTP calls. */
import { createHmac, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { expect } from 'vitest';
import { createApiToken } from '../../src/server/auth.js';
import { openStore } from '../../src/state/open.js';
import { controllerStoreOf, type Role } from '../../src/state/store.js';
import { CAPSTAN, capstan, git, ROOT } from './harness.js';

export interface GitRemote {
  readonly base: string;
  /** The bare repository the controller follows. */
  readonly remote: string;
  /** Writes files in a working clone, commits and pushes; returns the new commit. */
  push(files: Record<string, string | null>, message?: string): Promise<string>;
  cleanup(): Promise<void>;
}

export async function gitRemote(): Promise<GitRemote> {
  const base = await mkdtemp(path.join(os.tmpdir(), 'capstan-ctl-'));
  const remote = path.join(base, 'remote.git');
  const work = path.join(base, 'work');
  await git(base, 'init', '--quiet', '--bare', remote);
  await git(base, 'clone', '--quiet', remote, work);
  return {
    base,
    remote,
    async push(files, message = 'change') {
      for (const [rel, text] of Object.entries(files)) {
        const file = path.join(work, rel);
        if (text === null) {
          await rm(file, { force: true });
          continue;
        }
        await mkdir(path.dirname(file), { recursive: true });
        await writeFile(file, text);
      }
      await git(work, 'add', '--all');
      await git(work, 'commit', '--quiet', '--allow-empty', '-m', message);
      await git(work, 'push', '--quiet', 'origin', 'HEAD:main');
      return (await git(work, 'rev-parse', 'HEAD')).trim();
    },
    cleanup: () => rm(base, { recursive: true, force: true }),
  };
}

/** A `capstan serve` config in the remote's base directory: SQLite state beside it, a loopback port, `extra` settings, `stacks` as given (see `stackYaml`). */
export async function serveConfig(remote: GitRemote, stacks: string, extra = ''): Promise<{ config: string; state: string; root: string }> {
  const root = path.join(remote.base, 'root');
  const state = `sqlite:${path.join(remote.base, 'state.db')}`;
  const config = path.join(remote.base, 'serve.yaml');
  await writeFile(config, `listen: 127.0.0.1:0\nstate: ${state}\ncacheDir: cache\nshutdownGrace: 10s\n${extra}stacks:\n${stacks}`);
  return { config, state, root };
}

/** One entry of a config's `stacks:` following the remote's main branch. */
export function stackYaml(name: string, fields: Record<string, string>): string {
  const lines = [`  - name: ${name}`, '    repo: remote.git', '    branch: main'];
  for (const [k, v] of Object.entries(fields)) lines.push(`    ${k}: ${v}`);
  return lines.join('\n') + '\n';
}

export interface Served {
  readonly url: string;
  readonly proc: ResultPromise;
  readonly pid: number;
  /** Every JSON log line so far. */
  logs(): Record<string, unknown>[];
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | undefined>;
  kill(): void;
}

const running = new Set<Served>();

/** Starts `capstan serve` and waits until it listens. Killed by `killAll` if a test forgets. */
export async function serve(configFile: string, env: Record<string, string> = {}): Promise<Served> {
  const proc = execa('node', [CAPSTAN, 'serve', '--config', configFile], {
    cwd: ROOT,
    env: { NO_COLOR: '1', CAPSTAN_LOG_LEVEL: 'debug', ...env },
    reject: false,
    stdin: 'ignore',
    buffer: false,
  });
  const lines: Record<string, unknown>[] = [];
  let stderr = '';
  let pending = '';
  let resolveUrl!: (url: string) => void;
  const listening = new Promise<string>((resolve) => (resolveUrl = resolve));
  proc.stdout!.on('data', (chunk: Buffer) => {
    pending += chunk.toString('utf8');
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        lines.push(entry);
        if (entry.msg === 'capstan serve: listening') resolveUrl(entry.url as string);
      } catch {
        lines.push({ raw: line });
      }
    }
  });
  proc.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = proc.then((r) => r.exitCode);
  const url = await Promise.race([
    listening,
    exited.then((code) => {
      throw new Error(`capstan serve exited (${code}) before listening:\n${stderr}\n${JSON.stringify(lines)}`);
    }),
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`capstan serve did not listen in 15 s:\n${stderr}`)), 15_000)),
  ]);
  const served: Served = {
    url,
    proc,
    pid: proc.pid!,
    logs: () => lines,
    async stop() {
      proc.kill('SIGTERM');
      const code = await exited;
      running.delete(served);
      return code;
    },
    kill() {
      proc.kill('SIGKILL');
      running.delete(served);
    },
  };
  running.add(served);
  return served;
}

export async function killAll(): Promise<void> {
  for (const s of [...running]) {
    s.kill();
    await s.proc.catch(() => undefined);
  }
}

/** Through the CLI, as an operator would. */
export async function createTokenWithCli(state: string, role: string, name: string): Promise<string> {
  const r = await capstan(['token', 'create', '--role', role, '--name', name, '--state', state]);
  if (r.exitCode !== 0) throw new Error(`token create failed: ${r.stderr}`);
  expect(r.stderr).toMatch(/shown only this once/);
  return r.stdout.trim();
}

/** Straight into the store (faster than a CLI process per token). */
export async function createToken(state: string, role: Role, name: string): Promise<string> {
  const store = await openStore(state);
  try {
    return (await createApiToken(controllerStoreOf(store), { role, name })).token;
  } finally {
    await store.close();
  }
}

export async function api<T = unknown>(served: Served, route: string, options: { token?: string; method?: string; body?: unknown } = {}): Promise<{ status: number; body: T }> {
  const headers: Record<string, string> = {};
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(served.url + route, { method: options.method ?? 'GET', headers, body: options.body === undefined ? undefined : JSON.stringify(options.body) });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // text/plain answers stay text
  }
  return { status: res.status, body: body as T };
}

export function pushPayload(remote: string, commit: string, ref = 'refs/heads/main'): string {
  return JSON.stringify({ ref, after: commit, repository: { full_name: 'acme/infra', clone_url: remote, default_branch: 'main' } });
}

export async function githubWebhook(served: Served, body: string, secret: string | null, delivery: string = randomUUID()): Promise<{ status: number; body: Record<string, unknown> }> {
  const headers: Record<string, string> = { 'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': delivery };
  if (secret !== null) headers['x-hub-signature-256'] = `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
  const res = await fetch(`${served.url}/api/webhooks/github`, { method: 'POST', headers, body });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function hostYaml(name: string, root: string): string {
  return `kind: Host\nname: ${name}\nspec:\n  transport: local\n  root: ${root}\n`;
}

export function fileYaml(name: string, target: string, filePath: string, content: string): string {
  return `kind: File\nname: ${name}\ntarget: ${target}\nspec:\n  path: ${filePath}\n  content: ${JSON.stringify(content)}\n  mode: "0644"\n`;
}
