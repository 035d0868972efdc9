/**
 * Start-up cost guard: a command loads only what it and the stack's kinds need.
 * `capstan validate` of a File-only stack must not load the PostgreSQL driver,
 * kysely, the HTTP server or the SSH client (nor the SQLite store: validate has
 * no state); `capstan plan` on SQLite state loads better-sqlite3 but not kysely
 * or pg; `capstan --version` loads neither the spec layers nor zod, and the
 * commands that talk to a running controller (`capstan stacks ...`) only commander.
 *
 * How: the built CLI runs under a module hook (module-trace/) that records every
 * ES module URL it loads. A URL inside dist/bundle/ is a chunk of the bundled
 * CLI; esbuild's metafile (dist/bundle/meta.json) says which sources it holds.
 * Without a bundle the URLs name the node_modules files directly.
 */
import { execa } from 'execa';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, CAPSTAN, ROOT, workspace, type Workspace } from './harness.js';

const REGISTER = fileURLToPath(new URL('./module-trace/register.mjs', import.meta.url));
const NEVER_FOR_A_FILE_STACK = ['pg', 'kysely', 'fastify', 'ssh2', 'better-sqlite3', 'prom-client', 'pino'];

/** The npm packages whose code a run of the built CLI loaded. */
async function packagesLoaded(args: string[]): Promise<Set<string>> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-modules-'));
  const log = path.join(dir, 'modules.log');
  try {
    const r = await execa('node', ['--import', pathToFileURL(REGISTER).href, CAPSTAN, ...args], {
      cwd: ROOT,
      env: { NO_COLOR: '1', CAPSTAN_TEST_MODULE_LOG: log },
      reject: false,
      stdin: 'ignore',
    });
    expect(r.exitCode, r.stderr).toBe(0);
    const urls = (await readFile(log, 'utf8')).split('\n').filter((u) => u.startsWith('file:'));
    const metaFile = path.join(ROOT, 'dist/bundle/meta.json');
    const meta = existsSync(metaFile) ? (JSON.parse(readFileSync(metaFile, 'utf8')) as { outputs: Record<string, { inputs: Record<string, unknown> }> }) : undefined;
    const packages = new Set<string>();
    for (const url of urls) {
      const file = path.relative(ROOT, fileURLToPath(url)).split(path.sep).join('/');
      const sources = [file, ...Object.keys(meta?.outputs[file]?.inputs ?? {})];
      for (const source of sources) {
        const m = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(source);
        if (m) packages.add(m[1]!);
      }
    }
    return packages;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('lazy loading (built CLI)', () => {
  let ws: Workspace;

  beforeAll(async () => {
    assertBuilt();
    ws = await workspace();
    await ws.write(
      'stack.yaml',
      `kind: Host\nname: local\nspec: { transport: local, root: ${ws.root} }\n---\n` +
        `kind: File\nname: motd\ntarget: local\nspec: { path: /etc/motd, content: "hello\\n", mode: "0644" }\n`,
    );
  });
  afterAll(async () => ws?.cleanup());

  it('capstan validate of a File-only stack loads no database driver, HTTP server or SSH client', async () => {
    const loaded = await packagesLoaded(['validate', ws.repo]);
    // The trace sees what validate needs, so an empty answer is not a false pass.
    expect(loaded).toContain('zod');
    expect(loaded).toContain('yaml');
    expect(NEVER_FOR_A_FILE_STACK.filter((p) => loaded.has(p))).toEqual([]);
  });

  it('capstan plan with SQLite state loads better-sqlite3 but neither kysely nor pg', async () => {
    const loaded = await packagesLoaded(['plan', ws.repo, '--state', ws.state]);
    expect(loaded).toContain('better-sqlite3');
    expect(['pg', 'kysely', 'fastify', 'ssh2'].filter((p) => loaded.has(p))).toEqual([]);
  });

  it('capstan stacks list against a controller loads only the command-line parser (no HTTP server, no store driver)', async () => {
    // A stand-in answering the one route: this test is about what the CLI loads, the API is tested in controller-cli.test.ts.
    const server = createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(req.url === '/api/stacks' && req.headers.authorization === 'Bearer t0ken' ? '[]' : '{"error":"unexpected"}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const tokenFile = path.join(ws.repo, '..', 'token');
    await writeFile(tokenFile, 't0ken\n');
    try {
      const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
      const loaded = await packagesLoaded(['stacks', 'list', '--server', url, '--token-file', tokenFile]);
      expect([...loaded].sort()).toEqual(['commander']);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('capstan explain File.spec.mode loads neither the other kinds\' clients nor the HTTP server', async () => {
    const loaded = await packagesLoaded(['explain', 'File.spec.mode']);
    expect(loaded).toContain('zod');
    expect(['pg', 'kysely', 'fastify', '@fastify/swagger', 'ssh2', 'better-sqlite3', 'prom-client', 'pino'].filter((p) => loaded.has(p))).toEqual([]);
  });

  it('capstan --version loads only the command-line parser', async () => {
    const loaded = await packagesLoaded(['--version']);
    expect([...loaded].sort()).toEqual(['commander']);
  });
});
