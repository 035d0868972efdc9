/** Whole-system helpers: real temp directories, real git, the built CLI in a child process. */
import { execa, type ResultPromise } from 'execa';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CAPSTAN = path.join(ROOT, 'bin/capstan');

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export function assertBuilt(): void {
  if (!existsSync(path.join(ROOT, 'dist/cli/main.js'))) {
    throw new Error('dist/ is missing: run `npm run build` (npm test does it) before the end-to-end tests');
  }
}

export async function capstan(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
  const r = await execa('node', [CAPSTAN, ...args], {
    cwd: options.cwd ?? ROOT,
    env: { NO_COLOR: '1', ...options.env },
    reject: false,
    stdin: 'ignore',
  });
  return { exitCode: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export function spawnCapstan(args: string[], options: { cwd?: string } = {}): ResultPromise {
  return execa('node', [CAPSTAN, ...args], { cwd: options.cwd ?? ROOT, env: { NO_COLOR: '1' }, reject: false, stdin: 'ignore', buffer: true });
}

export interface Workspace {
  /** The spec repository. */
  readonly repo: string;
  /** The sandbox root every Host in the spec uses. */
  readonly root: string;
  readonly state: string;
  write(rel: string, text: string): Promise<void>;
  remove(rel: string): Promise<void>;
  cleanup(): Promise<void>;
}

export async function workspace(): Promise<Workspace> {
  const base = await mkdtemp(path.join(os.tmpdir(), 'capstan-e2e-'));
  const repo = path.join(base, 'repo');
  const root = path.join(base, 'root');
  await mkdir(repo, { recursive: true });
  return {
    repo,
    root,
    state: `sqlite:${path.join(base, 'state.db')}`,
    async write(rel, text) {
      const file = path.join(repo, rel);
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, text);
    },
    async remove(rel) {
      await rm(path.join(repo, rel), { force: true });
    },
    cleanup: () => rm(base, { recursive: true, force: true }),
  };
}

export function hostDoc(name: string, root: string, groups: string[] = []): string {
  return `kind: Host\nname: ${name}\nspec:\n  transport: local\n  root: ${root}\n  groups: [${groups.join(', ')}]\n`;
}

export function fileDoc(name: string, target: string, spec: Record<string, string>, dependsOn: string[] = []): string {
  const lines = [`kind: File`, `name: ${name}`, `target: ${target}`];
  if (dependsOn.length) lines.push(`dependsOn: [${dependsOn.join(', ')}]`);
  lines.push('spec:');
  for (const [k, v] of Object.entries(spec)) lines.push(`  ${k}: ${JSON.stringify(v)}`);
  return lines.join('\n') + '\n';
}

export async function git(cwd: string, ...args: string[]): Promise<string> {
  const r = await execa('git', ['-c', 'user.name=Ada Lovelace', '-c', 'user.email=ada@example.com', '-c', 'init.defaultBranch=main', '-c', 'commit.gpgsign=false', ...args], {
    cwd,
    env: { GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_SYSTEM: '/dev/null' },
  });
  return r.stdout;
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** A new age identity in `dir`/identity.txt (Debian's age-keygen), with its public key. */
export async function ageIdentity(dir: string): Promise<{ file: string; recipient: string }> {
  const file = path.join(dir, 'identity.txt');
  await execa('age-keygen', ['-o', file]);
  return { file, recipient: (await execa('age-keygen', ['-y', file])).stdout.trim() };
}
