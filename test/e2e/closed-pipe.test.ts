/** `capstan history | head -1`: the reader closes the pipe early; Capstan exits quietly. */
import { execa } from 'execa';
import os from 'node:os';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/state/sqlite/sqlite-store.js';
import { assertBuilt, CAPSTAN, workspace, type Workspace } from './harness.js';

let ws: Workspace;
beforeAll(assertBuilt);
afterEach(async () => ws?.cleanup());

/** Runs capstan with its stdout piped into `head -1`, as a shell pipeline does. */
async function intoHead(args: string[]): Promise<{ first: string; exitCode: number | undefined; stderr: string }> {
  const head = await execa('node', [CAPSTAN, ...args], { env: { NO_COLOR: '1' }, reject: false, stdin: 'ignore' }).pipe('head', ['-1']);
  const capstan = head.pipedFrom[0]!;
  return { first: String(head.stdout), exitCode: capstan.exitCode, stderr: String(capstan.stderr) };
}

describe('output into a pipe closed early', () => {
  it('history piped into head -1 prints one line and exits 0 without a stack trace', async () => {
    ws = await workspace();
    const file = ws.state.slice('sqlite:'.length);
    const store = await SqliteStore.open(file);
    const actor = { user: 'ada', host: os.hostname(), pid: process.pid };
    // Far more than a pipe buffer (64 KiB) of history, so writes go on after head has exited.
    for (let i = 0; i < 700; i++) {
      const run = await store.startRun({ stack: 'default', kind: 'apply', actor, commit: `c${i}`.padEnd(40, '0'), author: null, message: `change number ${i} `.repeat(4), specHash: null });
      await store.finishRun(run.id, 'succeeded');
    }
    await store.close();
    const r = await intoHead(['history', '--state', ws.state, '--limit', '700']);
    expect(r.first).toMatch(/^#700 /);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
  }, 60_000);
});
