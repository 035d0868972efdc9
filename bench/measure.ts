/** Runs a command and returns its wall time, CPU time (user + system) and peak resident memory (GNU time's %U %S %M). */
import { execa } from 'execa';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const CAPSTAN = path.join(ROOT, 'bin/capstan');

export interface Measurement {
  readonly seconds: number;
  /** User + system CPU seconds: on a shared, loaded machine closer to the work done than wall time. */
  readonly cpuSeconds: number;
  readonly peakMiB: number;
  /** 1-minute load average when the command ended. */
  readonly load: number;
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

export async function measure(argv: string[], options: { cwd?: string; env?: Record<string, string>; okCodes?: number[] } = {}): Promise<Measurement> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-bench-time-'));
  const out = path.join(dir, 'time');
  try {
    const started = performance.now();
    const r = await execa('/usr/bin/time', ['-f', '%M %U %S', '-o', out, ...argv], { cwd: options.cwd, env: options.env, reject: false, stdin: 'ignore' });
    const seconds = (performance.now() - started) / 1000;
    const exitCode = r.exitCode ?? -1;
    if (!(options.okCodes ?? [0]).includes(exitCode)) {
      throw new Error(`${argv.join(' ')} exited ${exitCode}\n${r.stdout.slice(-2000)}\n${r.stderr.slice(-2000)}`);
    }
    const [kib, user, sys] = (await readFile(out, 'utf8')).trim().split('\n').pop()!.split(' ').map(Number);
    return { seconds, cpuSeconds: user! + sys!, peakMiB: kib! / 1024, load: os.loadavg()[0]!, exitCode, stdout: r.stdout, stderr: r.stderr };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function capstanArgv(...args: string[]): string[] {
  return [process.execPath, CAPSTAN, ...args];
}

export function fmt(seconds: number): string {
  return seconds < 1 ? `${(seconds * 1000).toFixed(0)} ms` : `${seconds.toFixed(2)} s`;
}

export function machine(): string {
  const cpus = os.cpus();
  return `${cpus.length} x ${cpus[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`;
}
