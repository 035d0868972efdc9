/**
 * The messages a newcomer meets in the first hour, through the built CLI: one line
 * that says what is wrong and what to do, never a cascade or a bare errno.
 */
import { createServer, type Server } from 'node:net';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, capstan, workspace, type Workspace } from './harness.js';

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
