/**
 * Turns a `--state URL` into a Store.
 *
 * - `sqlite:PATH` (also `sqlite:///abs/path`): the embedded store; a relative
 *   PATH is resolved against the current directory.
 * - `postgres://...` or `postgresql://...`: the PostgreSQL store, for controllers
 *   that run as several replicas; `?schema=NAME` keeps it in that schema.
 */
import path from 'node:path';
import { PostgresStore } from './postgres/postgres-store.js';
import { SqliteStore } from './sqlite/sqlite-store.js';
import type { Store } from './store.js';

export async function openStore(url: string): Promise<Store> {
  if (url.startsWith('sqlite:')) {
    let file = url.slice('sqlite:'.length);
    if (file.startsWith('//')) file = file.slice(2);
    if (file === '') throw new Error('the state URL "sqlite:" names no file; use sqlite:PATH');
    return SqliteStore.open(file === ':memory:' ? file : path.resolve(file));
  }
  if (/^postgres(ql)?:\/\//i.test(url)) return PostgresStore.open(url);
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
