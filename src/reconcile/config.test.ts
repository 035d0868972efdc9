import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DiagnosticsError } from '../diag/diagnostic.js';
import { loadControllerConfig, parseControllerConfig, parseDuration, parseListen } from './config.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-config-'));
});
afterEach(async () => rm(dir, { recursive: true, force: true }));

async function problems(text: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  try {
    await parseControllerConfig(text, path.join(dir, 'serve.yaml'), env);
  } catch (err) {
    expect(err).toBeInstanceOf(DiagnosticsError);
    return (err as Error).message;
  }
  throw new Error('expected the configuration to be refused');
}

describe('controller configuration', () => {
  it('takes prune: adopted on a stack, and nothing else there', async () => {
    const config = await parseControllerConfig('state: sqlite:s.db\nstacks:\n  - name: a\n    repo: /srv/a.git\n    prune: adopted\n  - name: b\n    repo: /srv/b.git\n', path.join(dir, 'serve.yaml'), {});
    expect(config.stacks.map((s) => s.pruneAdopted)).toEqual([true, false]);
    expect(await problems('state: sqlite:s.db\nstacks:\n  - name: a\n    repo: /srv/a.git\n    prune: all\n')).toMatch(/serve\.yaml:5:\d+.*prune/s);
  });

  it('reads the example of DESIGN.md, with defaults, secrets and paths relative to the file', async () => {
    await writeFile(path.join(dir, 'hook.secret'), 'from-a-file\n');
    const file = path.join(dir, 'serve.yaml');
    await writeFile(
      file,
      [
        'listen: 127.0.0.1:7070',
        'state: sqlite:state/capstan.db',
        'stacks:',
        '  - name: prod',
        '    repo: ../infra.git',
        '    branch: main',
        '    path: stacks/prod',
        '    policy: auto',
        '    interval: 60s',
        '    selfHeal: true',
        '    webhookSecret: { env: CAPSTAN_WEBHOOK_SECRET }',
        '  - name: staging',
        '    repo: https://git.example.com/infra.git',
        '    webhookSecret: { file: hook.secret }',
        '',
      ].join('\n'),
    );
    const config = await loadControllerConfig(file, { CAPSTAN_WEBHOOK_SECRET: 's3cret' });
    expect(config.listen).toEqual({ host: '127.0.0.1', port: 7070 });
    expect(config.state).toBe(`sqlite:${path.join(dir, 'state/capstan.db')}`);
    const [prod, staging] = config.stacks;
    expect(prod).toMatchObject({ name: 'prod', repo: path.resolve(dir, '../infra.git'), branch: 'main', path: 'stacks/prod', policy: 'auto', intervalMs: 60_000, selfHeal: true });
    expect(prod!.webhookSecret?.reveal()).toBe('s3cret');
    expect(staging).toMatchObject({ repo: 'https://git.example.com/infra.git', branch: 'HEAD', path: '.', policy: 'auto', selfHeal: false, driftIntervalMs: 300_000 });
    expect(staging!.webhookSecret?.reveal()).toBe('from-a-file');
    // A secret never shows in logs or JSON.
    expect(JSON.stringify(config)).not.toContain('s3cret');
    expect(inspect(config, { depth: 10 })).not.toContain('s3cret');
  });

  it('reports every problem at once, with FILE:LINE:COL', async () => {
    const message = await problems(
      [
        'listen: nowhere',
        'state: sqlite:x.db',
        'stacks:',
        '  - name: Prod',
        '    repo: /srv/infra.git',
        '    policy: yolo',
        '    interval: soon',
        '    colour: blue',
        '  - name: ok',
        '    repo: "--upload-pack=evil"',
        '',
      ].join('\n'),
    );
    const file = path.join(dir, 'serve.yaml');
    expect(message).toContain(`${file}:4:11: stacks.0.name: a stack name is lowercase`);
    expect(message).toContain(`${file}:6:13: stacks.0.policy:`);
    expect(message).toContain(`${file}:7:15: stacks.0.interval: "soon" is not a duration`);
    expect(message).toMatch(new RegExp(`${file}:8:\\d+: stacks.0: .*colour`));
    expect(message).toContain(`${file}:10:11: stacks.1.repo: a repository must not start with "-"`);
  });

  it('suggests the closest known key or value, as spec errors do', async () => {
    const file = path.join(dir, 'serve.yaml');
    const message = await problems(['state: sqlite:x.db', 'concurency: 2', 'stacks:', '  - name: a', '    repo: /r', '    polcy: auto', '  - name: b', '    repo: /r', '    policy: aprove', ''].join('\n'));
    expect(message).toContain(`${file}:2:1: unknown key "concurency" (did you mean "concurrency"?) (known keys: audit, cacheDir, concurrency,`);
    expect(message).toContain(`${file}:6:5: stacks.0: unknown key "polcy" (did you mean "policy"?)`);
    expect(message).toContain(`${file}:9:13: stacks.1.policy: "aprove" is not one of auto, approve, plan-only (did you mean "approve"?)`);
  });

  it('a YAML syntax error in the configuration is one line with a hint', async () => {
    const message = await problems('state: sqlite:x.db\nstacks:\n  - name: a\n\t  repo: /r\n');
    expect(message.split('\n')).toEqual([`${path.join(dir, 'serve.yaml')}:4:1: YAML syntax error: Tabs are not allowed as indentation (YAML indents with spaces only: replace the tab with spaces)`]);
  });

  it('refuses a missing secret, a duplicate stack, a bad listen address and broken YAML', async () => {
    const base = 'state: sqlite:x.db\nstacks:\n  - name: a\n    repo: /r\n';
    expect(await problems(base + '    webhookSecret: { env: NOPE }\n')).toMatch(/:5:\d+: stacks.0.webhookSecret: the environment variable NOPE is not set/);
    expect(await problems(base + '  - name: a\n    repo: /r2\n')).toMatch(/:5:\d+: stacks.1.name: stack "a" is configured twice/);
    expect(await problems('listen: "1.2.3.4:99999"\n' + base)).toMatch(/:1:9: listen: "1.2.3.4:99999" is not HOST:PORT/);
    expect(await problems('state: [\n')).toMatch(/serve.yaml:\d+:\d+: /);
    expect(await problems('stacks: []\nstate: x\n')).toMatch(/stacks: configure at least one stack/);
  });
});

describe('controller configuration: audit retention and lazy secrets', () => {
  it('reads webhookConcurrency, 4 by default, a positive integer', async () => {
    const base = 'state: sqlite:x.db\nstacks:\n  - name: a\n    repo: /r\n';
    const file = path.join(dir, 'serve.yaml');
    expect((await parseControllerConfig(base, file, {})).webhookConcurrency).toBe(4);
    expect((await parseControllerConfig(base + 'webhookConcurrency: 16\n', file, {})).webhookConcurrency).toBe(16);
    expect(await problems(base + 'webhookConcurrency: 0\n')).toMatch(/:5:21: webhookConcurrency/);
  });

  it('reads audit retention, with defaults of 90 days and a million rows', async () => {
    const base = 'state: sqlite:x.db\nstacks:\n  - name: a\n    repo: /r\n';
    const file = path.join(dir, 'serve.yaml');
    expect((await parseControllerConfig(base, file, {})).audit).toEqual({ retentionMs: 90 * 86_400_000, maxRows: 1_000_000 });
    expect((await parseControllerConfig(base + 'audit: { retention: 30d, maxRows: 5000 }\n', file, {})).audit).toEqual({ retentionMs: 30 * 86_400_000, maxRows: 5000 });
    expect((await parseControllerConfig(base + 'audit: { retention: forever, maxRows: unlimited }\n', file, {})).audit).toEqual({ retentionMs: null, maxRows: null });
    expect(await problems(base + 'audit: { retention: soon }\n')).toMatch(/:5:21: audit.retention: /);
  });

  it('stack labels (what policies see as stack.labels): a map of strings, {} by default', async () => {
    const file = path.join(dir, 'serve.yaml');
    const text = (labels: string) => `state: sqlite:x.db\nstacks:\n  - name: a\n    repo: /r\n${labels}`;
    expect((await parseControllerConfig(text('    labels: { prod: "", team: payments }\n'), file, {})).stacks[0]!.labels).toEqual({ prod: '', team: 'payments' });
    expect((await parseControllerConfig(text(''), file, {})).stacks[0]!.labels).toEqual({});
    expect(await problems(text('    labels: { "bad name": x }\n'))).toMatch(/stacks\.0\.labels/);
  });

  it('secrets: lazy reads a secret only when it is revealed, and names FILE:LINE:COL then', async () => {
    const text = 'state: sqlite:x.db\nstacks:\n  - name: a\n    repo: /r\n    webhookSecret: { env: HOOK_SECRET }\n';
    const file = path.join(dir, 'serve.yaml');
    await expect(parseControllerConfig(text, file, {})).rejects.toThrow(/HOOK_SECRET is not set/);
    const config = await parseControllerConfig(text, file, {}, { secrets: 'lazy' });
    expect(config.state).toBe(`sqlite:${path.join(dir, 'x.db')}`);
    expect(() => config.stacks[0]!.webhookSecret!.reveal()).toThrow(new RegExp(`${file}:5:\\d+: stacks.0.webhookSecret: the environment variable HOOK_SECRET is not set`));
    const env: NodeJS.ProcessEnv = {};
    const later = await parseControllerConfig(text, file, env, { secrets: 'lazy' });
    env.HOOK_SECRET = 'set-later';
    expect(later.stacks[0]!.webhookSecret!.reveal()).toBe('set-later');
  });
});

describe('parseDuration and parseListen', () => {
  it('reads durations', () => {
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('60s')).toBe(60_000);
    expect(parseDuration('5m')).toBe(300_000);
    expect(parseDuration('30d')).toBe(30 * 86_400_000);
    expect(parseDuration(2)).toBe(2_000);
    expect(parseDuration('5 minutes')).toBeUndefined();
  });

  it('reads listen addresses', () => {
    expect(parseListen('127.0.0.1:0')).toEqual({ host: '127.0.0.1', port: 0 });
    expect(parseListen(':8080')).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(parseListen('[::1]:7070')).toEqual({ host: '::1', port: 7070 });
    expect(parseListen('localhost')).toBeUndefined();
  });
});
