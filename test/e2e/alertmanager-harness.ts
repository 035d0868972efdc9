/** A real Debian Alertmanager on loopback for whole-system tests, with its configuration file under a Host's root. */
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { freePort } from './harness.js';

export interface RunningAlertmanager {
  readonly url: string;
  logs(): string;
  /** The configuration text Alertmanager runs (GET /api/v2/status). */
  original(): Promise<string>;
  stop(): Promise<void>;
}

/** Starts Alertmanager on `configFile` (a minimal configuration is written there first) and waits until it is ready. */
export async function startAlertmanager(configFile: string, dataDir: string): Promise<RunningAlertmanager> {
  await mkdir(path.dirname(configFile), { recursive: true });
  await writeFile(configFile, 'route:\n  receiver: nobody\nreceivers:\n  - name: nobody\n');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let logs = '';
  const child = spawn(
    '/usr/bin/prometheus-alertmanager',
    ['--config.file', configFile, '--storage.path', dataDir, '--web.listen-address', `127.0.0.1:${port}`, '--cluster.listen-address='],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout.on('data', (d: Buffer) => (logs += d.toString()));
  child.stderr.on('data', (d: Buffer) => (logs += d.toString()));
  const stop = (): Promise<void> =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      const kill = setTimeout(() => child.kill('SIGKILL'), 5_000);
      child.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      child.kill('SIGTERM');
    });
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      if ((await fetch(`${url}/-/ready`)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline || child.exitCode !== null) {
      await stop();
      throw new Error(`Alertmanager did not become ready:\n${logs}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    logs: () => logs,
    async original() {
      const res = await fetch(`${url}/api/v2/status`);
      return ((await res.json()) as { config: { original: string } }).config.original;
    },
    stop,
  };
}
