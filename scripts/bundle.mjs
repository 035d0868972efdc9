/**
 * Bundles the compiled CLI (dist/, from tsc) into dist/bundle/ for bin/capstan.
 *
 * Why: Node resolves, reads and compiles every ES module file on its own, and the
 * CLI plus its dependencies are hundreds of files (zod alone is over a hundred).
 * One bundle with code splitting keeps each `await import()` a separate chunk, so
 * commands, providers and stores still load only when used, but each costs one
 * file instead of dozens: `capstan validate` of a small stack starts in about half
 * the time (bench/startup.ts; numbers in bench/README.md).
 *
 * Kept external (resolved from node_modules at run time): native addons, and
 * pino, whose transports start worker threads from its own files.
 *
 * dist/bundle/meta.json (esbuild's metafile) lists which sources every chunk
 * holds; src/cli/lazy-loading.test.ts reads it to tell which packages a run loaded.
 */
import { existsSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { build } from 'esbuild';

/**
 * Modules started as their own process or thread by a file URL relative to the
 * module that starts them (`new URL('./render-worker.js', import.meta.url)`). In
 * the bundle that code sits in dist/bundle/chunks/, so each such module is also an
 * entry point written there under its own name. Add a line for a new one.
 */
const WORKERS = ['spec/render-worker.js'];

const entryPoints = { main: 'dist/cli/main.js' };
for (const worker of WORKERS) {
  if (existsSync(`dist/${worker}`)) entryPoints[`chunks/${path.basename(worker, '.js')}`] = `dist/${worker}`;
}

await rm('dist/bundle', { recursive: true, force: true }); // no stale chunks
const result = await build({
  entryPoints,
  outdir: 'dist/bundle',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  chunkNames: 'chunks/[name]-[hash]',
  external: ['better-sqlite3', 'ssh2', 'cpu-features', 'pg-native', 'pino', 'thread-stream'],
  // Bundled CommonJS packages call require(); give ESM chunks one.
  banner: { js: 'import { createRequire as __capstanCreateRequire } from "node:module"; const require = __capstanCreateRequire(import.meta.url);' },
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: 'linked',
  metafile: true,
  logLevel: 'warning',
});
await writeFile('dist/bundle/meta.json', JSON.stringify(result.metafile));
