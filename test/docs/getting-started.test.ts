/**
 * docs/getting-started.md cannot rot: its ```sh blocks run in order, in a clean
 * temporary directory, with the built CLI on PATH as the README's set-up puts
 * it, and each command must exit as the page says and print what its `# →`
 * comments say. The controller part runs `capstan serve` in the background and
 * the page stops it; the whole shell's process group is killed if it does not.
 */
import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, ROOT } from '../e2e/harness.js';
import { docCommands, docScript } from './doc-commands.js';

const PAGE = path.join(ROOT, 'docs/getting-started.md');
const PAGE_PORT = '127.0.0.1:7070';

let base: string | undefined;
let shellGroup: number | undefined;
beforeAll(assertBuilt);
afterEach(async () => {
  if (shellGroup) killGroup(shellGroup);
  shellGroup = undefined;
  if (base) await rm(base, { recursive: true, force: true });
  base = undefined;
});

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('docs/getting-started.md', () => {
  it('reads its commands and what it says about them', () => {
    const commands = docCommands(['```sh', 'a \\', '  b', '# exits 2', '# → x', '```', 'prose', '```sh', "cat > f <<'EOF'", 'k: v', 'EOF', '```', '```yaml', 'not: run', '```'].join('\n'));
    expect(commands).toEqual([
      { text: 'a \\\n  b', line: 2, exitCode: 2, outputs: ['x'] },
      { text: "cat > f <<'EOF'\nk: v\nEOF", line: 9, exitCode: 0, outputs: [] },
    ]);
    expect(() => docCommands('```sh\n# → x\n```')).toThrow(/follows no command/);
  });

  it('walks from capstan init to the controller, every command as the page says', async () => {
    const port = await freePort();
    const commands = docCommands(readFileSync(PAGE, 'utf8').replaceAll(PAGE_PORT, `127.0.0.1:${port}`));
    // The walk covers what the page promises: init, the read-only commands, apply, drift, history, the controller.
    const words = commands.map((c) => c.text.split(/\s+/).slice(0, 2).join(' '));
    for (const step of ['capstan init', 'capstan validate', 'capstan plan', 'capstan apply', 'capstan drift', 'capstan history', 'capstan serve']) {
      expect(words, step).toContain(step);
    }
    expect(commands.filter((c) => c.outputs.length > 0).length, 'the page says what the commands print').toBeGreaterThan(5);

    base = await mkdtemp(path.join(os.tmpdir(), 'capstan-getting-started-'));
    const work = path.join(base, 'work');
    const out = path.join(base, 'out');
    await Promise.all([mkdir(work), mkdir(out)]);
    await writeFile(path.join(base, 'gitconfig'), '');
    const script = path.join(base, 'page.sh');
    await writeFile(script, docScript(commands, out));

    const shell = execa('bash', [script], {
      cwd: work,
      detached: true, // its own process group: killed whole, background jobs included
      reject: false,
      stdin: 'ignore',
      timeout: 240_000,
      extendEnv: false,
      env: {
        PATH: `${path.join(ROOT, 'bin')}:${process.env.PATH ?? '/usr/bin:/bin'}`,
        HOME: base,
        USER: 'tester',
        NO_COLOR: '1',
        XDG_CACHE_HOME: path.join(base, 'cache'),
        XDG_STATE_HOME: path.join(base, 'state'),
        GIT_CONFIG_GLOBAL: path.join(base, 'gitconfig'),
        GIT_CONFIG_NOSYSTEM: '1',
        GIT_AUTHOR_NAME: 'Tester',
        GIT_AUTHOR_EMAIL: 'tester@example.com',
        GIT_COMMITTER_NAME: 'Tester',
        GIT_COMMITTER_EMAIL: 'tester@example.com',
      },
    });
    shellGroup = shell.pid;
    const result = await shell;

    const ran: { line: number; text: string; exitCode: number; output: string }[] = [];
    for (const [n, c] of commands.entries()) {
      const rc = await readFile(path.join(out, `${n}.rc`), 'utf8').catch(() => undefined);
      if (rc === undefined) break;
      ran.push({ line: c.line, text: c.text, exitCode: Number(rc), output: await readFile(path.join(out, `${n}.out`), 'utf8') });
    }
    const last = ran.at(-1);
    const report = `the page's shell exited ${result.exitCode}${result.timedOut ? ' (timed out)' : ''}: ${result.stderr}\nlast command (line ${last?.line}): ${last?.text}\n${last?.output}`;
    expect(result.exitCode, report).toBe(0);
    expect(ran.length, report).toBe(commands.length);
    for (const [n, c] of commands.entries()) {
      for (const text of c.outputs) expect(ran[n]!.output, `line ${c.line}: ${c.text}`).toContain(text);
    }
  }, 300_000);
});
