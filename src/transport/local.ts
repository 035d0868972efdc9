import { createHash, randomBytes } from 'node:crypto';
import * as fsCb from 'node:fs';
import { constants, type Stats } from 'node:fs';
import * as fs from 'node:fs/promises';
import { posix } from 'node:path';
import { missingProgram } from '../util/prerequisites.js';
import {
  describePathType,
  formatMode,
  isWithin,
  modeBits,
  pathTypeOfMode,
  type AccountIds,
  type ExecOptions,
  type ExecResult,
  type HostTransport,
  type InspectOptions,
  type MkdirOptions,
  type Ownership,
  type PathEscape,
  type PathInfo,
  type PathType,
  type WriteFileOptions,
} from './transport.js';

export interface LocalTransportOptions {
  /** The user database to resolve names against (default `/etc/passwd`). */
  readonly passwdFile?: string;
  /** The group database (default `/etc/group`). */
  readonly groupFile?: string;
  /** How many paths `inspect` works on at once (default 32). */
  readonly concurrency?: number;
}

interface Accounts {
  readonly userIds: Map<string, number>;
  readonly userNames: Map<number, string>;
  readonly groupIds: Map<string, number>;
  readonly groupNames: Map<number, string>;
}

/** Where a directory's chain leads: its deepest existing ancestor-or-self, resolved, with the missing tail appended. */
interface DirResolution {
  readonly existing: string;
  readonly real: string;
  readonly dangling: string | null;
}

const HASH_CHUNK = 1 << 20;
const NOFOLLOW_READ = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** The machine Capstan runs on, through `node:fs/promises` and execa. */
export class LocalTransport implements HostTransport {
  readonly description = 'local';
  private readonly passwdFile: string;
  private readonly groupFile: string;
  private readonly concurrency: number;
  private accounts: { readonly key: string; readonly value: Accounts } | undefined;
  /** When this transport was made (a run's start): only temporary files older than this are stale. */
  private readonly startedAt = Date.now();
  private readonly swept = new Map<string, Promise<void>>();

  constructor(options: LocalTransportOptions = {}) {
    this.passwdFile = options.passwdFile ?? '/etc/passwd';
    this.groupFile = options.groupFile ?? '/etc/group';
    this.concurrency = Math.max(1, options.concurrency ?? 32);
  }

  async inspect(paths: readonly string[], options: InspectOptions): Promise<PathInfo[]> {
    for (const p of paths) assertAbsolute(p);
    const accounts = await this.readAccounts();
    const dirs = new Map<string, Promise<DirResolution>>();
    let inspected = 0;
    return mapLimit(paths, this.concurrency, async (p) => {
      options.signal?.throwIfAborted();
      // inspectOne is synchronous (a thread-pool round trip per system call costs more than the
      // call itself, 10,000 files took seconds): let the event loop breathe between slices.
      if (++inspected % INSPECT_SLICE === 0) await new Promise((resolve) => setImmediate(resolve));
      if (options.confineTo === undefined) return inspectOne(p, options, accounts);
      const confinement = await checkConfinement(p, options.confineTo, dirs);
      if (confinement.escape) return { ...absent(p), escape: confinement.escape };
      return { ...inspectOne(p, options, accounts), realPath: confinement.realPath };
    });
  }

  async realpath(path: string): Promise<string> {
    assertAbsolute(path);
    return (await resolveDir(posix.normalize(path), new Map())).real;
  }

  async writeFileAtomic(path: string, data: Buffer, options: WriteFileOptions): Promise<void> {
    assertAbsolute(path);
    const bits = modeBits(options.mode);
    await this.sweepOnce(posix.dirname(path));
    const tmp = temporarySibling(path);
    const fh = await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    let closed = false;
    try {
      await fh.writeFile(data);
      // chown before chmod: chown clears setuid/setgid bits.
      if (options.uid !== undefined || options.gid !== undefined) await fh.chown(options.uid ?? -1, options.gid ?? -1);
      await fh.chmod(bits);
      await fh.sync();
      await fh.close();
      closed = true;
      await fs.rename(tmp, path);
    } catch (err) {
      if (!closed) await fh.close().catch(() => undefined);
      await fs.rm(tmp, { force: true }).catch(() => undefined);
      throw err;
    }
  }

  async mkdir(path: string, options: MkdirOptions): Promise<boolean> {
    assertAbsolute(path);
    const bits = modeBits(options.mode);
    if (options.parents && path !== '/') await fs.mkdir(posix.dirname(path), { recursive: true, mode: 0o755 });
    try {
      // Created private, then opened up: never more open than asked, even for an instant.
      await fs.mkdir(path, { mode: 0o700 });
    } catch (err) {
      // Like `mkdir -p`: a link to a directory counts as one (providers have checked where it leads).
      if (errno(err) === 'EEXIST' && (await fs.stat(path)).isDirectory()) return false;
      throw err;
    }
    const fh = await fs.open(path, NOFOLLOW_READ | constants.O_DIRECTORY);
    try {
      if (options.uid !== undefined || options.gid !== undefined) await fh.chown(options.uid ?? -1, options.gid ?? -1);
      await fh.chmod(bits);
    } finally {
      await fh.close();
    }
    return true;
  }

  async chmod(path: string, mode: string | number): Promise<void> {
    assertAbsolute(path);
    const bits = modeBits(mode);
    const st = await fs.lstat(path);
    if (!st.isFile() && !st.isDirectory()) {
      throw withCode(new Error(`cannot chmod ${path}: it is ${describePathType(typeOf(st))}`), 'ETYPE');
    }
    let fh: fs.FileHandle;
    try {
      fh = await fs.open(path, NOFOLLOW_READ);
    } catch (err) {
      // A file the owner may not read (mode 0200...): fall back to the path after re-checking its type.
      if (errno(err) !== 'EACCES') throw err;
      if (!(await fs.lstat(path)).isFile()) throw err;
      await fs.chmod(path, bits);
      return;
    }
    try {
      await fh.chmod(bits);
    } finally {
      await fh.close();
    }
  }

  async lchown(path: string, ownership: Ownership): Promise<void> {
    assertAbsolute(path);
    if (ownership.uid === undefined && ownership.gid === undefined) return;
    await fs.lchown(path, ownership.uid ?? -1, ownership.gid ?? -1);
  }

  async symlink(target: string, path: string): Promise<void> {
    assertAbsolute(path);
    await this.sweepOnce(posix.dirname(path));
    const tmp = temporarySibling(path);
    await fs.symlink(target, tmp);
    try {
      await fs.rename(tmp, path);
    } catch (err) {
      await fs.rm(tmp, { force: true }).catch(() => undefined);
      throw err;
    }
  }

  async rename(from: string, to: string): Promise<void> {
    assertAbsolute(from);
    assertAbsolute(to);
    await fs.rename(from, to);
  }

  async remove(path: string, options: { type: 'file' | 'symlink' | 'directory' }): Promise<boolean> {
    assertAbsolute(path);
    let st: Stats;
    try {
      st = await fs.lstat(path);
    } catch (err) {
      if (isMissing(err)) return false;
      throw err;
    }
    const actual = typeOf(st);
    if (actual !== options.type) {
      throw withCode(new Error(`cannot remove ${path}: it is ${describePathType(actual)}, not ${describePathType(options.type)}`), 'ETYPE');
    }
    if (actual === 'directory') await fs.rmdir(path);
    else await fs.unlink(path);
    return true;
  }

  async resolveAccounts(query: { users: readonly string[]; groups: readonly string[] }): Promise<AccountIds> {
    const accounts = await this.readAccounts();
    return {
      users: new Map(query.users.map((u) => [u, accounts.userIds.get(u) ?? null])),
      groups: new Map(query.groups.map((g) => [g, accounts.groupIds.get(g) ?? null])),
    };
  }

  async exec(argv: readonly string[], options: ExecOptions): Promise<ExecResult> {
    const [file, ...args] = argv;
    if (file === undefined || file === '') throw new Error('exec needs a program to run');
    const { execa } = await import('execa'); // loaded on first use: most runs never exec locally
    const result = await execa(file, args, {
      reject: false,
      shell: false,
      timeout: options.timeoutMs,
      input: options.input,
      cwd: options.cwd,
      env: options.env,
      extendEnv: true,
      stripFinalNewline: false,
      cancelSignal: options.signal,
    });
    if (result.isCanceled) throw options.signal?.reason ?? new Error(`${file} was cancelled`);
    // Could not start at all (no such program, not executable): that is not an exit status.
    if (result.exitCode === undefined && result.signal === undefined && !result.timedOut) {
      // spawn says `spawn PROGRAM ENOENT` for a missing working directory too: say which it was.
      const missingCwd = options.cwd !== undefined && errno(result.cause) === 'ENOENT' ? await workingDirectoryProblem(options.cwd) : null;
      if (missingCwd !== null) throw Object.assign(new Error(`cannot run ${file}: ${missingCwd}`, { cause: result.cause }), { code: 'ENOENT' });
      const missing = missingProgram(file, result.cause);
      if (missing) throw missing;
      throw new Error(`cannot run ${file}: ${result.cause instanceof Error ? result.cause.message : result.shortMessage}`, {
        cause: result.cause,
      });
    }
    return {
      exitCode: result.exitCode ?? null,
      signal: result.signal ?? null,
      timedOut: result.timedOut,
      stdout: String(result.stdout ?? ''),
      stderr: String(result.stderr ?? ''),
    };
  }

  async close(): Promise<void> {}

  /**
   * Removes the temporary files a killed write left in `dir` (see
   * `sweepStaleTemporaries`), once per directory for the life of this
   * transport, before the first write into it.
   */
  private sweepOnce(dir: string): Promise<void> {
    let sweeping = this.swept.get(dir);
    if (!sweeping) {
      sweeping = sweepStaleTemporaries(dir, this.startedAt);
      this.swept.set(dir, sweeping);
    }
    return sweeping;
  }

  /**
   * The account databases, parsed again only when /etc/passwd or /etc/group
   * changed (another inode, size or mtime: useradd and groupadd replace the file):
   * every inspection needs them, and an apply inspects once per file.
   */
  private async readAccounts(): Promise<Accounts> {
    const key = `${statKey(this.passwdFile)}|${statKey(this.groupFile)}`;
    if (this.accounts?.key === key) return this.accounts.value;
    const [passwd, group] = await Promise.all([readOptional(this.passwdFile), readOptional(this.groupFile)]);
    const users = parseIdDatabase(passwd);
    const groups = parseIdDatabase(group);
    const value = { userIds: users.ids, userNames: users.names, groupIds: groups.ids, groupNames: groups.names };
    // Kept only if neither file moved while it was read.
    if (key === `${statKey(this.passwdFile)}|${statKey(this.groupFile)}`) this.accounts = { key, value };
    return value;
  }
}

// Inspection uses the synchronous calls: a thread-pool round trip costs more than a
// local lstat/open/read itself, which shows when a plan reads 10,000 files.
// O_NONBLOCK keeps a FIFO from blocking the open.
/** Paths inspected between two turns of the event loop. */
const INSPECT_SLICE = 128;

function inspectOne(path: string, options: InspectOptions, accounts: Accounts): PathInfo {
  let st: Stats;
  try {
    st = fsCb.lstatSync(path);
  } catch (err) {
    if (isMissing(err)) return absent(path);
    throw err;
  }
  let linkTarget: string | null = null;
  let sha256: string | null = null;
  let content: Buffer | null = null;
  if (st.isSymbolicLink()) {
    linkTarget = fsCb.readlinkSync(path);
  } else if (st.isFile() && options.content) {
    // Read through a descriptor that refuses a link swapped in since lstat, and describe what was read.
    let fd: number;
    try {
      fd = fsCb.openSync(path, NOFOLLOW_READ);
    } catch (err) {
      if (isMissing(err) || errno(err) === 'ELOOP') return inspectOne(path, options, accounts);
      throw err;
    }
    try {
      st = fsCb.fstatSync(fd);
      if (st.isFile()) ({ sha256, content } = readAndHash(fd, st.size, options.maxContentBytes));
    } finally {
      fsCb.closeSync(fd);
    }
  }
  return {
    path,
    type: typeOf(st),
    mode: formatMode(st.mode),
    uid: st.uid,
    gid: st.gid,
    owner: accounts.userNames.get(st.uid) ?? null,
    group: accounts.groupNames.get(st.gid) ?? null,
    size: st.size,
    sha256,
    content,
    linkTarget,
    escape: null,
    realPath: null,
  };
}

/** Hashes an open file, keeping its bytes when they fit in `maxBytes` (a file that grows meanwhile is hashed whole). */
function readAndHash(fd: number, size: number, maxBytes: number): { sha256: string; content: Buffer | null } {
  const hash = createHash('sha256');
  // A small file is read in one call: one byte more than its size tells whether it grew.
  const buf = Buffer.allocUnsafe(size <= maxBytes ? size + 1 : HASH_CHUNK);
  const kept: Buffer[] = [];
  let keep = size <= maxBytes;
  let position = 0;
  for (;;) {
    const bytesRead = fsCb.readSync(fd, buf, 0, buf.length, position);
    if (bytesRead === 0) break;
    const chunk = buf.subarray(0, bytesRead);
    hash.update(chunk);
    position += bytesRead;
    if (keep && position <= maxBytes) kept.push(Buffer.from(chunk));
    else keep = false;
    // A short read of a file read whole in one call is its end: no second call to learn it.
    if (keep && bytesRead < buf.length && position === size) break;
  }
  return { sha256: hash.digest('hex'), content: keep ? Buffer.concat(kept) : null };
}

/** Where `path` really is, and why it may not be used under `confineTo` (null escape when it may). */
async function checkConfinement(
  path: string,
  confineTo: string,
  dirs: Map<string, Promise<DirResolution>>,
): Promise<{ readonly escape: PathEscape | null; readonly realPath: string }> {
  const parent = await resolveDir(posix.dirname(path), dirs);
  const resolvesTo = posix.join(parent.real, posix.basename(path));
  if (parent.dangling !== null) {
    const linkTarget = await fs.readlink(parent.dangling).catch(() => null);
    return { escape: { symlink: parent.dangling, linkTarget, resolvesTo, dangling: true }, realPath: resolvesTo };
  }
  if (isWithin(resolvesTo, confineTo)) return { escape: null, realPath: resolvesTo };
  const link = await lastSymlinkOn(parent.existing);
  return { escape: { symlink: link?.path ?? null, linkTarget: link?.target ?? null, resolvesTo, dangling: false }, realPath: resolvesTo };
}

/** Memoised per `inspect` call: thousands of files in one directory cost one stat and one realpath. */
function resolveDir(dir: string, memo: Map<string, Promise<DirResolution>>): Promise<DirResolution> {
  let found = memo.get(dir);
  if (!found) {
    found = resolveDirUncached(dir, memo);
    memo.set(dir, found);
  }
  return found;
}

async function resolveDirUncached(dir: string, memo: Map<string, Promise<DirResolution>>): Promise<DirResolution> {
  let danglingHere = false;
  try {
    const st = await fs.stat(dir);
    if (st.isDirectory()) return { existing: dir, real: await fs.realpath(dir), dangling: null };
  } catch (err) {
    const code = errno(err);
    if (code !== 'ENOENT' && code !== 'ENOTDIR' && code !== 'ELOOP') throw err;
    if (code !== 'ENOTDIR') {
      const lst = await fs.lstat(dir).catch(() => null);
      danglingHere = lst?.isSymbolicLink() ?? false;
    }
  }
  if (dir === '/') throw new Error('/ is not a directory');
  const up = await resolveDir(posix.dirname(dir), memo);
  return {
    existing: up.existing,
    real: posix.join(up.real, posix.basename(dir)),
    dangling: up.dangling ?? (danglingHere ? dir : null),
  };
}

/** The last symbolic link met walking down from `/` to `dir` (which exists). */
async function lastSymlinkOn(dir: string): Promise<{ path: string; target: string } | null> {
  let found: { path: string; target: string } | null = null;
  let current = '/';
  for (const segment of dir.split('/').filter(Boolean)) {
    current = posix.join(current, segment);
    const st = await fs.lstat(current);
    if (st.isSymbolicLink()) found = { path: current, target: await fs.readlink(current) };
  }
  return found;
}

function absent(path: string): PathInfo {
  return {
    path,
    type: 'absent',
    mode: null,
    uid: null,
    gid: null,
    owner: null,
    group: null,
    size: null,
    sha256: null,
    content: null,
    linkTarget: null,
    escape: null,
    realPath: null,
  };
}

function typeOf(st: Stats): Exclude<PathType, 'absent'> {
  return pathTypeOfMode(st.mode);
}

/** Why `cwd` cannot be a working directory, or null when it can. */
async function workingDirectoryProblem(cwd: string): Promise<string | null> {
  try {
    return (await fs.stat(cwd)).isDirectory() ? null : `working directory ${cwd} is not a directory`;
  } catch (err) {
    return errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR' ? `working directory ${cwd} does not exist` : `working directory ${cwd}: ${String((err as Error).message)}`;
  }
}

/** The names `temporarySibling` gives, and only those. */
const TEMPORARY_NAME = /^\..*\.capstan-[0-9a-f]{12}\.tmp$/s;

/**
 * A process killed between creating a temporary sibling and renaming it leaves
 * `.NAME.capstan-HEX.tmp` behind. Removes such files and links of `dir` last
 * modified before `before` (so never one a write in progress now is making).
 * Nothing else is touched: not other names, not directories, not other
 * directories. Best effort: a sweep that fails never fails the write.
 */
export async function sweepStaleTemporaries(dir: string, before: number): Promise<void> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return;
  }
  await Promise.all(
    names
      .filter((name) => TEMPORARY_NAME.test(name))
      .map(async (name) => {
        const file = posix.join(dir, name);
        try {
          const info = await fs.lstat(file);
          if ((info.isFile() || info.isSymbolicLink()) && info.mtimeMs < before) await fs.unlink(file);
        } catch {
          // Gone already, or not ours to remove.
        }
      }),
  );
}

function temporarySibling(path: string): string {
  // Keep the name under NAME_MAX (255) however long the destination's name is.
  const base = posix.basename(path).slice(0, 200);
  return posix.join(posix.dirname(path), `.${base}.capstan-${randomBytes(6).toString('hex')}.tmp`);
}

function parseIdDatabase(text: string): { ids: Map<string, number>; names: Map<number, string> } {
  const ids = new Map<string, number>();
  const names = new Map<number, string>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const [name, , idText] = line.split(':');
    if (!name || idText === undefined || !/^\d+$/.test(idText)) continue;
    const id = Number(idText);
    if (!ids.has(name)) ids.set(name, id);
    if (!names.has(id)) names.set(id, name);
  }
  return { ids, names };
}

/** What tells that a file changed: inode, size and mtime in nanoseconds; `-` when absent. */
function statKey(file: string): string {
  const st = fsCb.statSync(file, { bigint: true, throwIfNoEntry: false });
  return st ? `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}` : '-';
}

async function readOptional(file: string): Promise<string> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (err) {
    if (isMissing(err)) return '';
    throw err;
  }
}

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        results[i] = await fn(items[i]!);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

function assertAbsolute(path: string): void {
  if (!path.startsWith('/') || path.includes('\0')) throw new Error(`not an absolute path: ${JSON.stringify(path)}`);
}

function errno(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

function isMissing(err: unknown): boolean {
  const code = errno(err);
  return code === 'ENOENT' || code === 'ENOTDIR';
}

function withCode(err: Error, code: string): Error {
  return Object.assign(err, { code });
}
