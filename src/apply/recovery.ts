/**
 * Recovery files: the results of an apply that the state store could not take
 * (a full disk, a database lost mid-run), kept so that nothing Capstan changed
 * is forgotten. Terraform's `errored.tfstate` is the same idea.
 *
 * Where: the first of these directories that accepts the file, all created
 * 0700 when missing:
 *   1. beside a SQLite state file (when the store is `sqlite:PATH`);
 *   2. `$XDG_STATE_HOME/capstan/recovery` (default `~/.local/state/capstan/recovery`);
 *   3. `$TMPDIR/capstan-recovery-UID` (only when it is a directory of this user, not a link).
 * Name: `capstan-recovery-STACK-runN-STOREID.json`, mode 0600, written to a
 * temporary name, fsynced and renamed. STOREID is a hash of the store's URL
 * without credentials, so a file is only ever imported into the store it
 * belongs to.
 *
 * What: a JSON object with the stack, the run, the store's error and the
 * unrecorded `ResourceResult`s, serialised exactly as a store serialises them
 * (`JSON.stringify`: a secret's value prints as `(sensitive)`, never in clear).
 *
 * The next `capstan apply` of that stack and store, holding the stack's lock
 * and before it plans, imports every such file (`importRecoveries`): results
 * the store already holds for that run are not recorded twice, the run is
 * marked failed if it was still running, and the file is deleted only after
 * the import committed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { lstat, mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describeStateUrl } from '../state/state-url.js';
import type { ResourceResult, RunRecord, Store } from '../state/store.js';

export const RECOVERY_FORMAT_VERSION = 1;
const PREFIX = 'capstan-recovery-';

export interface RecoveryRecord {
  readonly formatVersion: typeof RECOVERY_FORMAT_VERSION;
  readonly kind: 'capstan-recovery';
  readonly stack: string;
  /** The store, as messages may show it (no credentials). */
  readonly store: string;
  readonly storeId: string;
  readonly runId: number;
  readonly writtenAt: string;
  /** The store's last error. */
  readonly error: string;
  readonly results: readonly ResourceResult[];
}

export type RecoveryContent = Pick<RecoveryRecord, 'stack' | 'runId' | 'error' | 'results'>;

/** Where an apply saves what its store could not take. */
export interface RecoverySink {
  /** Writes the record durably and returns the file's path; rejects when no place accepts it. */
  write(content: RecoveryContent): Promise<string>;
}

export class RecoveryFiles implements RecoverySink {
  readonly store: string;
  readonly storeId: string;

  constructor(
    stateUrl: string,
    /** Tried in order. */
    readonly dirs: readonly string[],
  ) {
    this.store = withoutCredentials(stateUrl);
    this.storeId = createHash('sha256').update(this.store).digest('hex').slice(0, 16);
  }

  /** The documented places for a store given by its `--state` URL (see the module comment). */
  static forState(stateUrl: string, env: NodeJS.ProcessEnv = process.env): RecoveryFiles {
    const dirs: string[] = [];
    if (stateUrl.startsWith('sqlite:') && !stateUrl.endsWith(':memory:')) {
      dirs.push(path.dirname(path.resolve(stateUrl.slice('sqlite:'.length).replace(/^\/\//, ''))));
    }
    const stateHome = env.XDG_STATE_HOME || path.join(os.homedir(), '.local', 'state');
    dirs.push(path.join(stateHome, 'capstan', 'recovery'));
    dirs.push(path.join(os.tmpdir(), `capstan-recovery-${process.getuid?.() ?? 'user'}`));
    return new RecoveryFiles(stateUrl, dirs);
  }

  async write(content: RecoveryContent): Promise<string> {
    const record: RecoveryRecord = {
      formatVersion: RECOVERY_FORMAT_VERSION,
      kind: 'capstan-recovery',
      stack: content.stack,
      store: this.store,
      storeId: this.storeId,
      runId: content.runId,
      writtenAt: new Date().toISOString(),
      error: content.error,
      results: content.results,
    };
    const text = JSON.stringify(record, null, 2) + '\n';
    const name = `${PREFIX}${content.stack.replace(/[^A-Za-z0-9._-]/g, '_')}-run${content.runId}-${this.storeId}.json`;
    const problems: string[] = [];
    for (const dir of this.dirs) {
      try {
        await privateDirectory(dir);
        const file = path.join(dir, name);
        const tmp = path.join(dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
        const handle = await open(tmp, 'wx', 0o600);
        try {
          await handle.writeFile(text);
          await handle.sync();
        } finally {
          await handle.close();
        }
        await rename(tmp, file).catch(async (err: unknown) => {
          await rm(tmp, { force: true });
          throw err;
        });
        return file;
      } catch (err) {
        problems.push(`${dir}: ${(err as Error).message}`);
      }
    }
    throw new Error(`no place would take the recovery file: ${problems.join('; ')}`);
  }

  /** Recovery files of this store and stack, oldest run first. Unreadable or foreign files are left alone. */
  async find(stack: string): Promise<{ file: string; record: RecoveryRecord }[]> {
    const found: { file: string; record: RecoveryRecord }[] = [];
    for (const dir of this.dirs) {
      let names: string[];
      try {
        names = await readdir(dir);
      } catch {
        continue;
      }
      for (const name of names) {
        if (!name.startsWith(PREFIX) || !name.endsWith('.json')) continue;
        const file = path.join(dir, name);
        let record: RecoveryRecord;
        try {
          record = JSON.parse(await readFile(file, 'utf8')) as RecoveryRecord;
        } catch {
          continue;
        }
        if (record?.kind !== 'capstan-recovery' || record.formatVersion !== RECOVERY_FORMAT_VERSION) continue;
        if (record.storeId === this.storeId && record.stack === stack && Array.isArray(record.results)) found.push({ file, record });
      }
    }
    return found.sort((a, b) => a.record.runId - b.record.runId);
  }
}

export interface ImportedRecovery {
  readonly file: string;
  readonly runId: number;
  /** Results written now (those the store already held for the run are left out). */
  readonly imported: number;
}

/**
 * Imports every recovery file of the stack into the store, then deletes it.
 * Call with the stack's lock held, before planning. A file whose run the store
 * does not know (a store restored from a backup) is refused with an error
 * naming it, and kept.
 */
export async function importRecoveries(store: Store, stack: string, files: RecoveryFiles): Promise<ImportedRecovery[]> {
  const done: ImportedRecovery[] = [];
  for (const { file, record } of await files.find(stack)) {
    const run: RunRecord | undefined = await store.getRun(record.runId);
    if (!run || run.stack !== stack) {
      throw new Error(`the recovery file ${file} belongs to run ${record.runId}, which this store does not hold; import it by hand or remove it`);
    }
    // A write whose commit was not acknowledged may have committed: never record a result twice.
    const held = new Set((await store.listResults(record.runId)).map((r) => r.address));
    const missing = record.results.filter((r) => !held.has(r.address));
    if (missing.length > 0) await store.recordResults(record.runId, missing);
    if (run.status === 'running') {
      await store.finishRun(record.runId, 'failed', `the state store failed during the run: ${record.error}; its unrecorded results were imported from ${file}`);
    } else {
      await store.appendEvent(record.runId, { address: null, type: 'recovery.imported', message: `imported ${missing.length} unrecorded result(s) from ${file}` });
    }
    await rm(file);
    done.push({ file, runId: record.runId, imported: missing.length });
  }
  return done;
}

/** Creates `dir` 0700 if missing; refuses one that is a link or belongs to another user (a shared /tmp). */
async function privateDirectory(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const info = await lstat(dir);
  if (!info.isDirectory()) throw new Error('not a directory');
  const uid = process.getuid?.();
  if (uid !== undefined && info.uid !== uid) throw new Error(`owned by uid ${info.uid}, not by this user`);
}

/** `scheme://user:secret@host/db?schema=x` → `scheme://host/db?schema=x`; a SQLite path made absolute. */
function withoutCredentials(url: string): string {
  if (!url.startsWith('sqlite:')) return describeStateUrl(url);
  const file = url.slice('sqlite:'.length).replace(/^\/\//, '');
  return `sqlite:${file === ':memory:' ? file : path.resolve(file)}`;
}
