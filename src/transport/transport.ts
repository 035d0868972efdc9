/**
 * How host providers read and change a machine: the local one today, one over
 * SSH (one ssh2 connection per host, SFTP + exec) later.
 *
 * The contract is shaped for a remote implementation:
 *
 * - Reads are batched. `inspect` takes every path of a plan's batch and answers
 *   for all of them in one call; an SSH transport runs one remote script per
 *   call. Providers must not call `inspect` once per resource during `read`.
 * - Paths are real absolute paths on the machine. The transport knows nothing of
 *   a Host's `root`: confinement is asked for with `inspect`'s `confineTo`, and
 *   the provider refuses to write when the answer says the path escapes.
 * - Writes never leave a half-written object: files and symbolic links are
 *   created under a temporary name in the same directory and renamed over the
 *   destination. The final component of a path is never followed (`lstat`,
 *   rename over it, `lchown`; `chmod` refuses a symbolic link).
 * - Nothing is recursive on delete: `remove` unlinks one file or link, or
 *   removes one EMPTY directory.
 *
 * Errors: every method rejects with the underlying error (a Node `ErrnoException`
 * with `code`, `path`, or the SSH equivalent carrying the same `code`); providers
 * turn the expected ones (ENOTEMPTY, EXDEV, ...) into user-facing messages.
 * An object of the wrong type for the operation (`remove` of a directory as a
 * file, `chmod` of a link) rejects with code `ETYPE`.
 * `inspect` does not reject for a missing path: it reports `type: 'absent'`.
 */

/**
 * What is at a path. `fifo`, `socket`, `char-device` and `block-device` are the
 * special files no provider replaces; `other` is any type the machine reports
 * beyond those (kept for live states recorded before the special types were told apart).
 */
export type PathType = 'file' | 'directory' | 'symlink' | 'fifo' | 'socket' | 'char-device' | 'block-device' | 'other' | 'absent';

/** The type of a `st_mode` (the `S_IFMT` bits), for an object that exists. */
export function pathTypeOfMode(stMode: number): Exclude<PathType, 'absent'> {
  switch (stMode & 0o170000) {
    case 0o100000:
      return 'file';
    case 0o040000:
      return 'directory';
    case 0o120000:
      return 'symlink';
    case 0o010000:
      return 'fifo';
    case 0o140000:
      return 'socket';
    case 0o020000:
      return 'char-device';
    case 0o060000:
      return 'block-device';
    default:
      return 'other';
  }
}

const PATH_TYPE_NOUNS: Readonly<Record<PathType, string>> = {
  file: 'a regular file',
  directory: 'a directory',
  symlink: 'a symbolic link',
  fifo: 'a FIFO',
  socket: 'a socket',
  'char-device': 'a character device',
  'block-device': 'a block device',
  other: 'a special file',
  absent: 'nothing',
};

/** The type as messages say it, with its article: `a FIFO`, `a symbolic link`. */
export function describePathType(type: PathType): string {
  return PATH_TYPE_NOUNS[type];
}

/** The special files (FIFO, socket, device, ...), which Capstan never removes to put something else in their place. */
export function isSpecialPathType(type: PathType): boolean {
  return type !== 'file' && type !== 'directory' && type !== 'symlink' && type !== 'absent';
}

/** Why a path may not be used under `confineTo`: its parent chain resolves outside it, or through a dangling link. */
export interface PathEscape {
  /** The symbolic link responsible (the last one crossed), when one is. */
  readonly symlink: string | null;
  /** That link's text (`readlink`). */
  readonly linkTarget: string | null;
  /** Where the parent chain really leads (the real path the object would have). */
  readonly resolvesTo: string;
  /** True when the chain stops at a symbolic link whose target does not exist. */
  readonly dangling: boolean;
}

/** What `inspect` knows of one path. Every field but `path`, `type` and `escape` is null for an absent path. */
export interface PathInfo {
  readonly path: string;
  readonly type: PathType;
  /** Permission bits only (including setuid, setgid, sticky), as four octal digits: `"0644"`. */
  readonly mode: string | null;
  readonly uid: number | null;
  readonly gid: number | null;
  /** User name of `uid` on that machine, or null when it has none. */
  readonly owner: string | null;
  /** Group name of `gid` on that machine, or null when it has none. */
  readonly group: string | null;
  readonly size: number | null;
  /** Hex SHA-256 of a regular file's bytes, when `content` was asked for. */
  readonly sha256: string | null;
  /** A regular file's bytes, when `content` was asked for and the file is at most `maxContentBytes`. */
  readonly content: Buffer | null;
  /** A symbolic link's text. */
  readonly linkTarget: string | null;
  /** Set when `confineTo` was given and the path may not be used; the object itself was then not read. */
  readonly escape: PathEscape | null;
  /**
   * With `confineTo`, for a path that may be used: where the object really is
   * (its parent chain resolved, symbolic links of the existing part followed,
   * the final component as written), the same for two paths that alias one
   * object through a linked directory. Null without `confineTo`, or on escape.
   */
  readonly realPath: string | null;
}

export interface InspectOptions {
  /** Hash regular files, and return their bytes when no larger than `maxContentBytes`. */
  readonly content: boolean;
  readonly maxContentBytes: number;
  /**
   * A real, canonical directory. For each path, the transport resolves the parent
   * chain (symbolic links of its existing part followed, the missing tail
   * appended) and, when that does not lie inside `confineTo` or crosses a
   * dangling link, reports `escape` without reading the object.
   */
  readonly confineTo?: string | undefined;
  readonly signal?: AbortSignal | undefined;
}

export interface Ownership {
  readonly uid?: number | undefined;
  readonly gid?: number | undefined;
}

export interface WriteFileOptions extends Ownership {
  /** Octal string (`"0644"`) or number. */
  readonly mode: string | number;
}

export interface MkdirOptions extends Ownership {
  /** Mode of the directory itself (missing parents get 0755). */
  readonly mode: string | number;
  /** Create missing parents. */
  readonly parents: boolean;
}

/** Name → id lookups against the machine's own user and group databases (`/etc/passwd`, `/etc/group`). */
export interface AccountIds {
  /** Each asked user name → its uid, or null when the machine has no such user. */
  readonly users: ReadonlyMap<string, number | null>;
  readonly groups: ReadonlyMap<string, number | null>;
}

export interface ExecOptions {
  /** Kill the command after this long. */
  readonly timeoutMs: number;
  readonly input?: string | Buffer | undefined;
  readonly cwd?: string | undefined;
  /** Added to the transport's environment. */
  readonly env?: Readonly<Record<string, string>> | undefined;
  readonly signal?: AbortSignal | undefined;
}

export interface ExecResult {
  /** Null when the command was killed by a signal or the timeout. */
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly timedOut: boolean;
  readonly stdout: string;
  readonly stderr: string;
}

export interface HostTransport {
  /** A short description for messages: `local`, `ssh root@10.0.0.2:22`. */
  readonly description: string;

  /** One answer per path, in order. Never follows the final component. */
  inspect(paths: readonly string[], options: InspectOptions): Promise<PathInfo[]>;

  /**
   * The canonical form of `path`: symbolic links of its existing part resolved,
   * the missing tail appended as written. Never creates anything.
   */
  realpath(path: string): Promise<string>;

  /** Writes a temporary file beside `path`, sets its mode and owner, fsyncs it and renames it over `path`. */
  writeFileAtomic(path: string, data: Buffer, options: WriteFileOptions): Promise<void>;

  /**
   * Creates a directory with the given mode and owner (missing parents first when
   * asked, with mode 0755). Resolves false, changing nothing, when it already
   * exists as a directory or a symbolic link to one.
   */
  mkdir(path: string, options: MkdirOptions): Promise<boolean>;

  /** Sets permission bits of a regular file or directory; refuses a symbolic link. */
  chmod(path: string, mode: string | number): Promise<void>;

  /** Sets owner and/or group without following a final symbolic link. */
  lchown(path: string, ownership: Ownership): Promise<void>;

  /** Creates or atomically replaces a symbolic link at `path` whose text is `target`. */
  symlink(target: string, path: string): Promise<void>;

  /** `rename(2)`: same filesystem only (EXDEV otherwise); never follows either final component. */
  rename(from: string, to: string): Promise<void>;

  /**
   * Removes one object of the expected type: unlinks a file or link, or removes an
   * EMPTY directory (rejects with ENOTEMPTY otherwise). Never recursive. Resolves
   * false when the path was already absent; rejects when it holds another type.
   */
  remove(path: string, options: { type: 'file' | 'symlink' | 'directory' }): Promise<boolean>;

  /** Looks user and group names up on the machine itself. */
  resolveAccounts(query: { users: readonly string[]; groups: readonly string[] }): Promise<AccountIds>;

  /** Runs a program with an argument array, never through a shell. Resolves for any exit status. */
  exec(argv: readonly string[], options: ExecOptions): Promise<ExecResult>;

  close(): Promise<void>;
}

/** `"0644"` or 0o644 → 0o644. */
export function modeBits(mode: string | number): number {
  const bits = typeof mode === 'number' ? mode : /^[0-7]{1,5}$/.test(mode) ? Number.parseInt(mode, 8) : Number.NaN;
  if (!Number.isInteger(bits) || bits < 0 || bits > 0o7777) throw new RangeError(`invalid mode ${String(mode)}`);
  return bits;
}

/** 0o644 → `"0644"`. */
export function formatMode(bits: number): string {
  return (bits & 0o7777).toString(8).padStart(4, '0');
}

/** True when `path` is `dir` or below it; both absolute and normalised. */
export function isWithin(path: string, dir: string): boolean {
  if (dir === '/') return true;
  return path === dir || path.startsWith(`${dir}/`);
}
