/**
 * Issue 19 item 3: the content of a `sensitive: true` File never reaches
 * `capstan plan --json` (nor the text plan or a saved plan), neither when it is
 * created (`after.content`) nor once applied and changed (`prior.content`, the old
 * and the new value), through the built CLI.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, capstan, fileDoc, hostDoc, workspace, type CliResult, type Workspace } from './harness.js';
import { leakSearch } from './leak-search.js';

const OLD = 'LeakCanary-SensitiveOld-61d0';
const NEW = 'LeakCanary-SensitiveNew-a93c';
const hits = leakSearch([OLD, NEW]);

let ws: Workspace;
const outputs: { what: string; text: string }[] = [];

async function run(what: string, args: string[]): Promise<CliResult> {
  const r = await capstan([...args, '--state', ws.state], { cwd: ws.repo });
  outputs.push({ what: `${what} stdout`, text: r.stdout }, { what: `${what} stderr`, text: r.stderr });
  return r;
}

async function writeSpec(content: string): Promise<void> {
  await ws.write('stack.yaml', `${hostDoc('local', ws.root)}---\n${fileDoc('token', 'local', { path: '/etc/token', content, mode: '0600' })}  sensitive: true\n`);
}

interface JsonChange {
  address: string;
  action: string;
  after?: { content?: unknown };
  prior?: { content?: unknown } | null;
  before?: { content?: unknown; contentDigest?: unknown } | null;
}

const DIGEST = /^hmac-sha256:[0-9a-f]{64}$/;

beforeAll(async () => {
  assertBuilt();
  ws = await workspace();
});

afterAll(async () => {
  await ws?.cleanup();
});

describe('sensitive File content in plan --json', () => {
  it('is never in the plan JSON: created, applied, then changed', async () => {
    await writeSpec(OLD);
    const created = await run('plan --json (create)', ['plan', '.', '--json']);
    expect(created.exitCode, created.stderr).toBe(0);
    const createPlan = JSON.parse(created.stdout) as { changes: JsonChange[] };
    const create = createPlan.changes.find((c) => c.address === 'File/token');
    expect(create?.action).toBe('create');
    expect(create?.after?.content).toEqual({ $sensitive: expect.stringMatching(DIGEST) });

    const applied = await run('apply', ['apply', '.', '--yes']);
    expect(applied.exitCode, applied.stderr).toBe(0);
    expect(await readFile(path.join(ws.root, 'etc/token'), 'utf8')).toBe(OLD);

    await writeSpec(NEW);
    const changed = await run('plan --json (changed)', ['plan', '.', '--json']);
    expect(changed.exitCode, changed.stderr).toBe(0);
    const change = (JSON.parse(changed.stdout) as { changes: JsonChange[] }).changes.find((c) => c.address === 'File/token');
    expect(change?.action).toBe('update');
    // The applied spec and the new one are both there, each only as its digest; the live file too.
    const after = change?.after?.content as { $sensitive: string };
    const prior = change?.prior?.content as { $sensitive: string };
    expect(after).toEqual({ $sensitive: expect.stringMatching(DIGEST) });
    expect(prior).toEqual({ $sensitive: expect.stringMatching(DIGEST) });
    expect(after.$sensitive).not.toBe(prior.$sensitive);
    expect(change?.before).toMatchObject({ content: null, contentDigest: prior.$sensitive });

    const text = await run('plan (changed)', ['plan', '.']);
    expect(text.stdout).toMatch(/~ content: \(sensitive value changed\)/);
    const saved = path.join(path.dirname(ws.repo), 'plan.json');
    expect((await run('plan --out (changed)', ['plan', '.', '--out', saved])).exitCode).toBe(0);
    outputs.push({ what: 'saved plan', text: await readFile(saved, 'utf8') });

    const found = outputs.flatMap((o) => hits(o.what, o.text));
    expect(found).toEqual([]);
    // The search itself works.
    expect(hits('managed', await readFile(path.join(ws.root, 'etc/token')))).not.toEqual([]);
  }, 120_000);
});
