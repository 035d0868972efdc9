/**
 * Turns a `--state URL` into a Store.
 *
 * - `sqlite:PATH` (also `sqlite:///abs/path`): the embedded store; a relative
 *   PATH is resolved against the current directory.
 * - `postgres://...` or `postgresql://...`: the PostgreSQL store, for controllers
 *   that run as several replicas; `?schema=NAME` keeps it in that schema.
 */
import path from 'node:path';
import type { Store } from './store.js';

// Each store's module (and its driver: better-sqlite3, or pg and kysely) is
// imported only when a URL of its scheme is opened.

export async function openStore(url: string): Promise<Store> {
  if (url.startsWith('sqlite:')) {
    let file = url.slice('sqlite:'.length);
    if (file.startsWith('//')) file = file.slice(2);
    if (file === '') throw new Error('the state URL "sqlite:" names no file; use sqlite:PATH');
    const { SqliteStore } = await import('./sqlite/sqlite-store.js');
    return SqliteStore.open(file === ':memory:' ? file : path.resolve(file));
  }
  if (/^postgres(ql)?:\/\//i.test(url)) {
    const { PostgresStore } = await import('./postgres/postgres-store.js');
    return PostgresStore.open(url);
  }
  throw new Error(`unsupported state URL "${redactCredentials(url)}"; use sqlite:PATH`);
}

/** Where the CLI keeps state when no `--state` is given: beside the spec it applies. */
export function defaultStateUrl(specDir: string): string {
  return `sqlite:${path.join(specDir, '.capstan', 'state.db')}`;
}

/** `scheme://user:secret@host` → `scheme://***@host`: a URL may carry a password. */
function redactCredentials(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/]*@/i, '$1***@');
}
