/**
 * Turns a `--state URL` into a Store.
 *
 * - `sqlite:PATH` (also `sqlite:///abs/path`): the embedded store; a relative
 *   PATH is resolved against the current directory.
 * - `postgres://...` or `postgresql://...`: the PostgreSQL store, for controllers
 *   that run as several replicas; `?schema=NAME` keeps it in that schema.
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describeStateUrl } from './state-url.js';
import type { Store } from './store.js';

// Each store's module (and its driver: better-sqlite3, or pg and kysely) is
// imported only when a URL of its scheme is opened.

export interface OpenStoreOptions {
  /**
   * The command only reads (history, drift): SQLite is opened read-only, so it
   * works on a read-only file, directory or filesystem, and creates nothing.
   */
  readonly readOnly?: boolean;
  /**
   * What a SQLite file that does not exist yet opens as:
   * - `create` (the default unless `readOnly`): the file, its directory and `.capstan/.gitignore` are created;
   * - `empty`: an empty store in memory, creating nothing (plan: everything is to create);
   * - `refuse` (the default with `readOnly`): a NoStateStoreError (history, drift: nothing was applied from here).
   * A PostgreSQL store always exists once its server answers.
   */
  readonly ifMissing?: 'create' | 'empty' | 'refuse';
}

/** A read-only command found no SQLite state file where it looked: nothing has been applied with this store. */
export class NoStateStoreError extends Error {
  constructor(readonly file: string) {
    super(`no state store at ${file} yet: nothing has been applied from here; \`capstan apply\` creates it`);
    this.name = 'NoStateStoreError';
  }
}

export async function openStore(url: string, options: OpenStoreOptions = {}): Promise<Store> {
  if (url.startsWith('sqlite:')) {
    let file = url.slice('sqlite:'.length);
    if (file.startsWith('//')) file = file.slice(2);
    if (file === '') throw new Error('the state URL "sqlite:" names no file; use sqlite:PATH');
    const { SqliteStore } = await import('./sqlite/sqlite-store.js');
    if (file === ':memory:') return SqliteStore.open(file);
    const resolved = path.resolve(file);
    const ifMissing = options.ifMissing ?? (options.readOnly ? 'refuse' : 'create');
    if (ifMissing !== 'create' && !existsSync(resolved)) {
      if (ifMissing === 'refuse') throw new NoStateStoreError(resolved);
      return SqliteStore.open(':memory:');
    }
    if (!options.readOnly) await ignoreStateDirectory(path.dirname(resolved));
    return SqliteStore.open(resolved, { readOnly: options.readOnly ?? false });
  }
  if (/^postgres(ql)?:\/\//i.test(url)) {
    const { PostgresStore } = await import('./postgres/postgres-store.js');
    return PostgresStore.open(url);
  }
  throw new Error(`unsupported state URL "${describeStateUrl(url)}"; use sqlite:PATH`);
}

/** The directory the CLI keeps state in when no `--state` is given, inside the spec directory. */
export const STATE_DIRECTORY = '.capstan';

/**
 * When Capstan creates its own `.capstan/` directory, it puts a `.gitignore`
 * holding `*` in it (as pytest and ruff do for their caches): the state
 * database is never picked up by `git add`, whatever the repository ignores.
 */
async function ignoreStateDirectory(dir: string): Promise<void> {
  if (path.basename(dir) !== STATE_DIRECTORY || existsSync(dir)) return;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(path.join(dir, '.gitignore'), '# Capstan state: never commit it.\n*\n', { mode: 0o644 });
}

/** Where the CLI keeps state when no `--state` is given: beside the spec it applies, in a directory git ignores. */
export function defaultStateUrl(specDir: string): string {
  return `sqlite:${path.join(specDir, STATE_DIRECTORY, 'state.db')}`;
}

/** `scheme://user:secret@host` → `scheme://***@host`: a URL may carry a password. */
