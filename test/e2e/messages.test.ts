/**
 * The messages a newcomer meets in the first hour, through the built CLI: one line
 * that says what is wrong and what to do, never a cascade or a bare errno.
 */
import { createServer, type Server } from 'node:net';
import { cp, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, capstan, ROOT, workspace, type Workspace } from './harness.js';

beforeAll(() => assertBuilt());

function errorLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.trim() !== '');
}

describe('YAML syntax errors', () => {
  let ws: Workspace;
  beforeAll(async () => {
    ws = await workspace();
  });
  afterAll(() => ws.cleanup());

  it('validate reports one error per broken document, with a hint, at the mistake', async () => {
    await ws.write('tab.yaml', 'kind: File\nname: a\nspec:\n\tpath: /x\n  content: y\n');
    await ws.write('quote.yaml', 'kind: File\nname: b\nspec:\n  path: "/x\n  content: y\n');
    await ws.write('indent.yaml', 'kind: File\nname: c\nspec:\n  path: /x\n content: y\n  mode: "0644"\n');
    const r = await capstan(['validate', ws.repo]);
    expect(r.exitCode).toBe(1);
    const lines = errorLines(r.stdout + '\n' + r.stderr).filter((l) => l.includes('YAML syntax error'));
    expect(lines).toEqual([
      expect.stringMatching(/^indent\.yaml:5:1: YAML syntax error: .*\(check the indentation: keys of one map start in the same column/),
      'quote.yaml:4:9: YAML syntax error: Missing closing "quote (the double quote opened here is never closed: add the closing " on this line)',
      'tab.yaml:4:1: YAML syntax error: Tabs are not allowed as indentation (YAML indents with spaces only: replace the tab with spaces)',
    ]);
  });
});

describe('capstan serve', () => {
  let ws: Workspace;
  let config: string;
  beforeAll(async () => {
    ws = await workspace();
    config = path.join(ws.repo, '..', 'serve.yaml');
    await writeFile(config, `state: ${ws.state}\nlisten: 127.0.0.1:0\nstacks:\n  - name: a\n    repo: ${ws.repo}\n    polcy: auto\n`);
  });
  afterAll(() => ws.cleanup());

  it('a configuration error names FILE:LINE:COL and the key it probably meant', async () => {
    const r = await capstan(['serve', '--config', config]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(`${config}:6:5: stacks.0: unknown key "polcy" (did you mean "policy"?)`);
  });

  it('an unknown --log-level is refused with the list of levels', async () => {
    const r = await capstan(['serve', '--config', config, '--log-level', 'loud']);
    expect(r.exitCode).toBe(1);
    expect(errorLines(r.stderr)).toEqual(['Error: --log-level "loud" is not a log level: use one of trace, debug, info, warn, error, fatal, silent']);
  });

  it('a busy port names the address and --listen', async () => {
    await writeFile(config, `state: ${ws.state}\nstacks:\n  - name: a\n    repo: ${ws.repo}\n`);
    const server: Server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    try {
      const r = await capstan(['serve', '--config', config, '--listen', `127.0.0.1:${port}`, '--log-level', 'silent']);
      expect(r.exitCode).toBe(1);
      expect(errorLines(r.stderr)).toEqual([
        `Error: cannot listen on 127.0.0.1:${port}: the port is already in use (another capstan serve?); choose another address with --listen HOST:PORT or listen: in ${config}`,
      ]);
    } finally {
      server.close();
    }
  });
});

/** A directory holding only `node` (and the programs named), for a PATH that lacks everything else. */
async function pathWith(base: string, programs: string[] = []): Promise<string> {
  const dir = path.join(base, 'bin');
  await mkdir(dir, { recursive: true });
  for (const p of ['node', ...programs]) await symlink(p === 'node' ? process.execPath : `/usr/bin/${p}`, path.join(dir, p));
  return dir;
}

describe('capstan test', () => {
  let ws: Workspace;
  beforeAll(async () => {
    ws = await workspace();
    await cp(path.join(ROOT, 'examples/observability/api'), ws.repo, { recursive: true });
    await cp(path.join(ROOT, 'examples/observability/hosts.yaml'), path.join(ws.repo, 'hosts.yaml'));
    // Break one expectation of the hand-written AlertTest: 2% errors are 200 basis points, not 201.
    const file = path.join(ws.repo, 'alert-tests.yaml');
    const text = await readFile(file, 'utf8');
    expect(text).toContain('value: 200\n');
    await writeFile(file, text.replace('value: 200\n', 'value: 201\n'));
  });
  afterAll(() => ws.cleanup());

  it('a failing case points at the AlertTest YAML (FILE:LINE:COL of the document and of the case), not at the rendered file', async () => {
    const r = await capstan(['test', ws.repo]);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toContain('FAIL alert-tests.yaml:4:1: AlertTest/api: promtool test rules (rendered as prometheus/tests/alerttest-api.test.yml)\n');
    expect(r.stdout).toMatch(/\n\s+alert-tests\.yaml:37:11: tests\[1\]\.promql_expr_test\[0\]: expr: "round\(10000 \* slo:sli_error:ratio_rate5m.*", time: 20m\n\s+exp: .*2\.01E\+02/);
    expect(r.stdout).not.toContain('Unit Testing');
    expect(r.stdout).toMatch(/5 passed, 1 failed$/);
  });

  it('without promtool on PATH: one line naming the Debian package', async () => {
    const r = await capstan(['test', ws.repo], { env: { PATH: await pathWith(path.dirname(ws.repo)) } });
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toBe('');
    expect(errorLines(r.stderr)).toEqual(['Error: promtool not found on PATH: install the Debian package prometheus (apt-get install prometheus)']);
  });

  it('without amtool on PATH (promtool there): the line names prometheus-alertmanager', async () => {
    await cp(path.join(ROOT, 'examples/observability/oncall.yaml'), path.join(ws.repo, 'oncall.yaml'));
    const r = await capstan(['test', ws.repo], { env: { PATH: await pathWith(path.join(path.dirname(ws.repo), 'p2'), ['promtool']) } });
    expect(r.exitCode).toBe(1);
    expect(errorLines(r.stderr)).toEqual(['Error: amtool not found on PATH: install the Debian package prometheus-alertmanager (apt-get install prometheus-alertmanager)']);
  });
});

describe('observability apply without a reachable Prometheus', () => {
  let ws: Workspace;
  afterAll(() => ws.cleanup());

  it('says which URL it tried and that the previous files were restored', async () => {
    ws = await workspace();
    // A port nothing listens on: bound, then closed.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const url = `http://127.0.0.1:${port}`;
    await ws.write('hosts.yaml', `kind: Host\nname: mon\nspec:\n  transport: local\n  root: ${ws.root}\n`);
    await ws.write(
      'rules.yaml',
      `kind: AlertRules\nname: api\ntarget: mon\nspec:\n  prometheus: { url: "${url}", promtool: /usr/bin/promtool }\n  groups:\n    - name: api\n      rules:\n        - record: job:up:sum\n          expr: sum(up)\n`,
    );
    const r = await capstan(['apply', ws.repo, '--state', ws.state, '--yes']);
    expect(r.exitCode).toBe(1);
    const out = r.stdout + r.stderr;
    expect(out).toContain(
      `cannot reach Prometheus at ${url}: POST ${url}/-/reload was refused: nothing listens there (is it running, and is the url right?); the previous files were restored`,
    );
    expect(out).not.toContain('fetch failed');
    expect(out).not.toContain('restoring the previous files failed');
    // Restored: the rule file that could not be activated is not left behind.
    await expect(readFile(path.join(ws.root, 'etc/prometheus/rules.d/capstan-alertrules-api.yml'), 'utf8')).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('prerequisites: a missing program is one line naming its Debian package', () => {
  let ws: Workspace;
  beforeAll(async () => {
    ws = await workspace();
  });
  afterAll(() => ws.cleanup());

  it('git, for --repo', async () => {
    const r = await capstan(['validate', '--repo', ROOT], { env: { PATH: await pathWith(path.join(path.dirname(ws.repo), 'no-git')) } });
    expect(r.exitCode).toBe(1);
    expect(errorLines(r.stderr)).toEqual(['Error: git not found on PATH: install the Debian package git (apt-get install git)']);
  });

  it('nft, for two Exec resources: each result says it, the summary says it once', async () => {
    await mkdir(ws.root, { recursive: true });
    await ws.write('hosts.yaml', `kind: Host\nname: h\nspec:\n  transport: local\n  root: ${ws.root}\n`);
    await ws.write('fw.yaml', 'kind: Exec\nname: fw\ntarget: h\nspec:\n  command: [nft, list, ruleset]\n---\nkind: Exec\nname: fw2\ntarget: h\nspec:\n  command: [nft, list, tables]\n');
    const r = await capstan(['apply', ws.repo, '--state', ws.state, '--yes'], { env: { PATH: await pathWith(path.join(path.dirname(ws.repo), 'no-nft')) } });
    expect(r.exitCode).toBe(1);
    const line = 'nft not found on PATH: install the Debian package nftables (apt-get install nftables)';
    expect(r.stdout).toMatch(/Exec\/fw: FAILED to create \(\d+ms\): /);
    expect(r.stdout).toContain(`Exec/fw on Host/h (root ${ws.root}) could not start nft list ruleset: ${line}\n`);
    expect(r.stdout + r.stderr).not.toMatch(/ENOENT|spawn/);
    const summary = r.stderr.slice(r.stderr.indexOf('Apply failed'));
    expect(errorLines(summary)).toEqual([expect.stringMatching(/^Apply failed \(run 1\): .*2 failed/), `  ${line}; failed for want of it: Exec/fw, Exec/fw2`]);
  });
});
