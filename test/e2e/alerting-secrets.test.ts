/**
 * Alertmanager receiver credentials as `{ secret: PATH }`, through the built CLI
 * against Debian's amtool and a running Alertmanager: the secrets are in the file
 * Alertmanager runs, and nowhere else Capstan writes (plan text and JSON, saved
 * plans, the store, drift, history). A changed secret shows as the receiver
 * field that changed, with its value redacted.
 */
import { execa } from 'execa';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAlertmanager, type RunningAlertmanager } from './alertmanager-harness.js';
import { ageIdentity, assertBuilt, capstan, workspace, type CliResult, type Workspace } from './harness.js';
import { filesUnder, leakSearch } from './leak-search.js';

const HOOK = 'http://127.0.0.1:9/LeakCanary-AmHook-5e1f';
const HOOK_2 = 'http://127.0.0.1:9/LeakCanary-AmHook-Rotated-77ab';
const BAD_HOOK = 'http://LeakCanary-AmBadHook x/';
const SMTP = 'LeakCanary-AmSmtp-0c4d';
const PAGERDUTY = 'LeakCanary-AmPagerduty-92e3';
const hits = leakSearch([HOOK, HOOK_2, BAD_HOOK, SMTP, PAGERDUTY]);

let ws: Workspace;
let base: string;
let am: RunningAlertmanager;
let recipient: string;
let idFile: string;
const outputs: { what: string; text: string }[] = [];
const CONFIG = '/etc/alertmanager/alertmanager.yml';

async function run(what: string, args: string[], identity = true): Promise<CliResult> {
  const r = await capstan([...args, '--state', ws.state, ...(identity ? ['--identity', idFile] : [])], { cwd: ws.repo });
  outputs.push({ what: `${what} stdout`, text: r.stdout }, { what: `${what} stderr`, text: r.stderr });
  return r;
}

async function encrypt(rel: string, value: string): Promise<void> {
  await ws.write(rel, (await execa('age', ['-r', recipient, '-a'], { input: value })).stdout + '\n');
}

const configFile = (): string => path.join(ws.root, CONFIG);

beforeAll(async () => {
  assertBuilt();
  ws = await workspace();
  base = path.dirname(ws.repo);
  ({ file: idFile, recipient } = await ageIdentity(base));
  am = await startAlertmanager(configFile(), path.join(base, 'am-data'));
  await encrypt('secrets/hook.age', HOOK);
  await encrypt('secrets/smtp.age', SMTP);
  await encrypt('secrets/pagerduty.age', PAGERDUTY);
  await ws.write(
    'stack.yaml',
    `kind: Host\nname: mon\nspec: { transport: local, root: ${ws.root} }\n---\n` +
      `kind: Alerting\nname: oncall\ntarget: mon\nspec:\n  defaultTeam: sre\n` +
      `  smtp: { from: am@example.com, smarthost: "smtp.example.com:587", authUsername: am, authPassword: { secret: secrets/smtp.age } }\n` +
      `  teams:\n    - name: sre\n      webhook: { url: { secret: secrets/hook.age } }\n      email: { to: sre@example.com }\n` +
      `    - name: api\n      pagerduty: { routingKey: { secret: secrets/pagerduty.age } }\n` +
      `  routes:\n    - { services: [api], team: api }\n` +
      `  alertmanager: { url: "${am.url}", configFile: ${CONFIG}, amtool: /usr/bin/amtool }\n`,
  );
}, 60_000);

afterAll(async () => {
  await am?.stop();
  await ws?.cleanup();
});

describe('Alertmanager receiver secrets through the CLI', () => {
  it('plans them as keyed digests, applies them into the file amtool checked and Alertmanager runs', async () => {
    const text = await run('plan', ['plan', '.']);
    expect(text.exitCode, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/~ adopt Alerting\/oncall on Host\/mon/);
    expect(text.stdout).toMatch(/url: https:\/\/sensitive\.invalid\/hmac-sha256:[0-9a-f]{64}/);
    expect(text.stdout).toMatch(/smtp_auth_password: \(sensitive hmac-sha256:[0-9a-f]{64}\)/);
    const json = await run('plan --json', ['plan', '.', '--json']);
    expect(json.exitCode, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout).changes.map((c: { address: string }) => c.address)).toContain('Alerting/oncall');
    const saved = path.join(base, 'plan.json');
    expect((await run('plan --out', ['plan', '.', '--out', saved])).exitCode).toBe(0);
    outputs.push({ what: 'saved plan', text: await readFile(saved, 'utf8') });

    const applied = await run('apply --plan', ['apply', '--plan', saved]);
    expect(applied.exitCode, applied.stderr + applied.stdout).toBe(0);
    const written = await readFile(configFile(), 'utf8');
    for (const s of [HOOK, SMTP, PAGERDUTY]) expect(written).toContain(s);
    // Alertmanager runs it: it shows the routing key and SMTP password as <secret>, and 0.25 shows a webhook URL as it is.
    const running = await am.original();
    expect(running).toMatch(/routing_key: <secret>/);
    expect(running).toMatch(/smtp_auth_password: <secret>/);
    expect(running).toContain(`url: ${HOOK}`);

    const again = await run('plan (no-op)', ['plan', '.', '--detailed-exitcode']);
    expect(again.exitCode, again.stdout + again.stderr).toBe(0);
    expect((await run('drift', ['drift', '.'])).exitCode).toBe(0);
  }, 120_000);

  it('shows a changed secret as the receiver field that changed, its value redacted', async () => {
    await encrypt('secrets/hook.age', HOOK_2);
    const text = await run('plan (secret changed)', ['plan', '.']);
    expect(text.exitCode, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/~ Alerting\/oncall/);
    // The text diff's changed lines: a marker in the diff's column, then the file's line.
    const changed = text.stdout.split('\n').filter((l) => /^ {10}[-+]/.test(l));
    expect(changed, text.stdout).toHaveLength(2);
    expect(changed[0]).toMatch(/^ {10}-\s+- url: https:\/\/sensitive\.invalid\/hmac-sha256:[0-9a-f]{64}$/);
    expect(changed[1]).toMatch(/^ {10}\+\s+- url: https:\/\/sensitive\.invalid\/hmac-sha256:[0-9a-f]{64}$/);
    expect(changed[0]!.slice(11)).not.toBe(changed[1]!.slice(11));

    const json = await run('plan --json (secret changed)', ['plan', '.', '--json']);
    const change = JSON.parse(json.stdout).changes.find((c: { address: string }) => c.address === 'Alerting/oncall');
    expect(change.action).toBe('update');
    expect(JSON.stringify(change)).toMatch(/sensitive\.invalid/);

    expect((await run('apply (secret changed)', ['apply', '.', '--yes'])).exitCode).toBe(0);
    expect(await readFile(configFile(), 'utf8')).toContain(HOOK_2);
    expect((await run('plan (no-op after change)', ['plan', '.', '--detailed-exitcode'])).exitCode).toBe(0);

    // A hand edit of a secret in the live file is drift, shown redacted.
    await writeFile(configFile(), (await readFile(configFile(), 'utf8')).replace(PAGERDUTY, 'edited-by-hand'));
    const drift = await run('drift --json', ['drift', '.', '--json']);
    expect(drift.exitCode, drift.stderr).toBe(2);
    expect((await run('apply (heal)', ['apply', '.', '--yes'])).exitCode).toBe(0);
    expect(await readFile(configFile(), 'utf8')).toContain(PAGERDUTY);
    expect((await run('history --json', ['history', '--json'], false)).exitCode).toBe(0);
  }, 120_000);

  it('amtool refuses a bad secret URL: its message is masked and nothing is installed', async () => {
    const before = await readFile(configFile(), 'utf8');
    await encrypt('secrets/hook.age', BAD_HOOK);
    const r = await run('apply (bad secret)', ['apply', '.', '--yes']);
    expect(r.exitCode).toBe(1);
    expect(r.stderr + r.stdout).toMatch(/amtool refused the Alertmanager configuration .*parse "\(sensitive\)"/);
    expect(await readFile(configFile(), 'utf8')).toBe(before);
  }, 120_000);

  it('left no trace of any receiver secret in output, saved plans or the store', async () => {
    const found: string[] = [];
    for (const o of outputs) found.push(...hits(o.what, o.text));
    const managed = configFile();
    const files = await filesUnder(base, (p) => p === managed || p === ws.repo || p === path.join(base, 'am-data'));
    expect(files.some((f) => f.endsWith('state.db'))).toBe(true);
    for (const f of files) found.push(...hits(path.relative(base, f), await readFile(f)));
    expect(found).toEqual([]);
    // The search itself works: the managed file holds a secret.
    expect(hits('managed', await readFile(managed))).not.toEqual([]);
  });
});
