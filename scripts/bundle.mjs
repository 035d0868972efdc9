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
import { rm, writeFile } from 'node:fs/promises';
import { build } from 'esbuild';

await rm('dist/bundle', { recursive: true, force: true }); // no stale chunks
const result = await build({
  entryPoints: { main: 'dist/cli/main.js' },
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
