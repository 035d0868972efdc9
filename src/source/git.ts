/**
 * Git repositories as spec sources, through the real `git` CLI (argument arrays,
 * never a shell).
 *
 * Cache layout under the cache root (default `$XDG_CACHE_HOME/capstan`, else
 * `~/.cache/capstan`):
 *
 *   repos/<key>.git   bare mirror: `git clone --mirror` once, `git fetch --prune` on every resolve
 *   repos/<key>.lock  held while the mirror is cloned, fetched and read
 *   trees/<sha>/      the files of commit <sha>; renamed into place complete, never changed after
 *   tmp/              mirrors and trees being built
 *
 * `<key>` is the first 16 hex digits of sha256 of the repository (local paths
 * made absolute first). Every resolve fetches: a repository that cannot be
 * fetched is an error even when an older mirror is cached, so a run is never
 * pinned to a stale commit without saying so.
 *
 * Concurrency: processes (and calls within one process) resolving the same
 * repository take turns on its lock; a lock whose holder died on this host is
 * broken. Two processes materialising the same commit from different mirrors
 * both build a tree; the first rename wins and the other finds it in place.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { missingProgram } from '../util/prerequisites.js';
import type { SourceInfo } from './source.js';

export class SourceError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'SourceError';
  }
}

// ---------------------------------------------------------------------------
// Running git

const DEFAULT_GIT_TIMEOUT_MS = 10 * 60_000;
const LOCAL_GIT_TIMEOUT_MS = 60_000;

/** Transports a spec repository may use; `ext::` and other remote helpers that run commands are refused. */
const ALLOWED_PROTOCOLS = 'file:git:http:https:ssh';

/**
 * Variables that point git at a particular repository, index or object store
 * (`git rev-parse --local-env-vars`). Set when Capstan runs from a git hook;
 * they must not redirect our commands.
 */
const REPOSITORY_ENV_VARS = new Set([
  'GIT_ALTERNATE_OBJECT_DIRECTORIES',
  'GIT_COMMON_DIR',
  'GIT_CONFIG',
  'GIT_CONFIG_COUNT',
  'GIT_CONFIG_PARAMETERS',
  'GIT_DIR',
  'GIT_GRAFT_FILE',
  'GIT_IMPLICIT_WORK_TREE',
  'GIT_INDEX_FILE',
  'GIT_INTERNAL_SUPER_PREFIX',
  'GIT_NO_REPLACE_OBJECTS',
  'GIT_OBJECT_DIRECTORY',
  'GIT_PREFIX',
  'GIT_REPLACE_REF_BASE',
  'GIT_SHALLOW_FILE',
  'GIT_WORK_TREE',
]);

export interface GitResult {
  readonly ok: boolean;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

/**
 * Runs git without a terminal prompt and with a time limit. A non-zero exit is a
 * result (`ok: false`), not an exception; only failing to start git throws.
 */
export async function runGit(
  args: readonly string[],
  options: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<GitResult> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && !REPOSITORY_ENV_VARS.has(name)) env[name] = value;
  }
  env.GIT_TERMINAL_PROMPT = '0';
  env.GIT_ALLOW_PROTOCOL = process.env.GIT_ALLOW_PROTOCOL ?? ALLOWED_PROTOCOLS;
  Object.assign(env, options.env);

  const { execa } = await import('execa'); // loaded on first use: a run without git never pays for it
  const result = await execa('git', args, {
    cwd: options.cwd,
    env,
    extendEnv: false,
    stdin: 'ignore',
    timeout: options.timeoutMs ?? LOCAL_GIT_TIMEOUT_MS,
    forceKillAfterDelay: 5_000,
    reject: false,
  });
  if (result.failed && result.exitCode === undefined && !result.timedOut && !result.isTerminated) {
    const missing = missingProgram('git', result.cause);
    throw new SourceError(missing ? missing.message : `cannot run git: ${result.shortMessage}`, { cause: missing ?? result.cause });
  }
  return { ok: !result.failed, stdout: result.stdout, stderr: result.stderr.trim(), timedOut: result.timedOut };
}

export interface CommitInfo {
  readonly commit: string;
  readonly author: string;
  readonly message: string;
}

/** SHA, `Name <email>` and subject of `rev`, or null when it does not name a commit. */
export async function readCommit(gitArgs: readonly string[], rev: string): Promise<CommitInfo | null> {
  const result = await runGit([
    ...gitArgs,
    'log',
    '-1',
    '--no-show-signature',
    '--format=%H%x00%an <%ae>%x00%s',
    '--end-of-options',
    rev,
    '--',
  ]);
  if (!result.ok) return null;
  const [commit, author, message] = result.stdout.split('\0');
  if (commit === undefined || author === undefined || message === undefined) return null;
  return { commit: commit.trim(), author, message: message.trimEnd() };
}

// ---------------------------------------------------------------------------
// What we accept from the user

const OBJECT_ID = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

/**
 * Why `ref` is refused, or null when it is acceptable: a full commit SHA, or a
 * name valid for `git check-ref-format --allow-onelevel` that does not start
 * with `-` (so it can never be read as an option).
 */
export function refProblem(ref: string): string | null {
  if (ref === '') return 'it is empty';
  if (ref.startsWith('-')) return 'it starts with "-"';
  if (OBJECT_ID.test(ref)) return null;
  if (/[\x00-\x20\x7f]/.test(ref)) return 'it contains a space or a control character';
  if (/[~^:?*[\\]/.test(ref)) return 'it contains one of ~ ^ : ? * [ \\';
  if (ref.includes('..')) return 'it contains ".."';
  if (ref.includes('@{')) return 'it contains "@{"';
  if (ref === '@') return 'it is "@"';
  if (ref.startsWith('/') || ref.endsWith('/') || ref.includes('//')) return 'it has an empty path component';
  if (ref.endsWith('.')) return 'it ends with "."';
  for (const component of ref.split('/')) {
    if (component.startsWith('.')) return 'a component starts with "."';
    if (component.endsWith('.lock')) return 'a component ends with ".lock"';
  }
  return null;
}

function repoProblem(repo: string): string | null {
  if (repo === '') return 'it is empty';
  if (repo.startsWith('-')) return 'it starts with "-"';
  if (/[\x00-\x1f\x7f]/.test(repo)) return 'it contains a control character';
  return null;
}

/** `path` as a relative POSIX path ('' for the repository root); throws on absolute paths and `..`. */
function specSubdirectory(subdir: string | undefined, repo: string): string {
  if (subdir === undefined) return '';
  const refuse = (why: string): never => {
    throw new SourceError(`refusing path "${subdir}" inside repository "${redactUrl(repo)}": ${why}`);
  };
  if (path.isAbsolute(subdir) || /^[\\/]/.test(subdir) || /^[A-Za-z]:/.test(subdir)) refuse('it is absolute');
  if (/[\x00-\x1f\x7f]/.test(subdir)) refuse('it contains a control character');
  const parts = subdir.split(/[\\/]+/).filter((part) => part !== '' && part !== '.');
  if (parts.includes('..')) refuse('it contains ".."');
  return parts.join('/');
}

/** URLs (`scheme://`, scp-like `host:path`, `transport::address`) stay as given; local paths become absolute. */
function canonicalRepo(repo: string): string {
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(repo)) return repo;
  const colon = repo.indexOf(':');
  const slash = repo.indexOf('/');
  if (colon > 0 && (slash === -1 || colon < slash)) return repo;
  return path.resolve(repo);
}

/** Replaces the password (or an http(s) token given as user name) in a URL by `***`. */
export function redactUrl(text: string, url: string = text): string {
  const secret = urlSecret(url);
  return secret === null ? text : text.split(secret).join('***');
}

function urlSecret(url: string): string | null {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return null;
  }
  if (parsed.password !== '') return parsed.password;
  if (/^https?:$/.test(parsed.protocol) && parsed.username !== '') return parsed.username;
  return null;
}

export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CACHE_HOME;
  // The XDG spec says relative values are to be ignored.
  const base = xdg !== undefined && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.cache');
  return path.join(base, 'capstan');
}

// ---------------------------------------------------------------------------
// Resolving

export interface GitSourceOptions {
  readonly repo: string;
  readonly ref?: string | undefined;
  readonly path?: string | undefined;
  readonly cacheDir?: string | undefined;
  readonly gitTimeoutMs?: number | undefined;
  readonly lockTimeoutMs?: number | undefined;
}

/** One resolve in progress: what its messages name. */
export interface Resolution {
  /** As given by the user, redacted: for messages. */
  readonly repo: string;
  /** As given by the user, unredacted: to find its secret in git's output. */
  readonly rawRepo: string;
  readonly ref: string;
  readonly gitTimeoutMs: number;
}

export async function resolveGitSource(options: GitSourceOptions): Promise<SourceInfo> {
  const ref = options.ref ?? 'HEAD';
  const shown = redactUrl(options.repo);
  // Every check on user input happens before git runs or the cache is touched.
  const badRepo = repoProblem(options.repo);
  if (badRepo !== null) throw new SourceError(`refusing repository "${shown}": ${badRepo}`);
  const badRef = refProblem(ref);
  if (badRef !== null) {
    throw new SourceError(`refusing ref ${JSON.stringify(ref)} for repository "${shown}": ${badRef}`);
  }
  const subdir = specSubdirectory(options.path, options.repo);

  const { url, dirs, mirror, lockFile } = mirrorOf(options.repo, options.cacheDir);
  for (const dir of Object.values(dirs)) await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  await sweepAbandonedStaging(dirs.tmp);
  const gitTimeoutMs = options.gitTimeoutMs ?? DEFAULT_GIT_TIMEOUT_MS;
  const run: Resolution = { repo: shown, rawRepo: options.repo, ref, gitTimeoutMs };

  const release = await acquireLock(lockFile, options.lockTimeoutMs ?? 15 * 60_000, `repository "${shown}"`);
  try {
    await updateMirror(mirror, url, dirs.tmp, run);
    const commit = await resolveCommit(mirror, run);
    const info = await readCommit(['--git-dir', mirror], commit);
    if (info === null) throw new SourceError(`cannot read commit ${commit} of repository "${shown}"`);
    const tree = await materialiseTree(mirror, commit, dirs, run);
    return {
      dir: await specDirectory(tree, subdir, commit, run),
      repo: shown,
      ref,
      commit,
      author: info.author,
      message: info.message,
      dirty: null,
    };
  } finally {
    await release();
  }
}

/** Where the cache keeps the mirror of `repo`, and the lock that guards it. */
function mirrorOf(repo: string, cacheDir: string | undefined) {
  const url = canonicalRepo(repo);
  const cache = path.resolve(cacheDir ?? defaultCacheDir());
  const key = createHash('sha256').update(url).digest('hex').slice(0, 16);
  const dirs = { repos: path.join(cache, 'repos'), trees: path.join(cache, 'trees'), tmp: path.join(cache, 'tmp') };
  return { url, dirs, mirror: path.join(dirs.repos, `${key}.git`), lockFile: path.join(dirs.repos, `${key}.lock`) };
}

export interface AncestryQuery {
  readonly repo: string;
  /** Full commit SHAs (as `resolveGitSource` returns them): anything else is refused before git runs. */
  readonly ancestor: string;
  readonly descendant: string;
  readonly cacheDir?: string | undefined;
  readonly lockTimeoutMs?: number | undefined;
}

/**
 * Whether `ancestor` is `descendant` or one of its ancestors
 * (`git merge-base --is-ancestor`), in the cached mirror of `repo` as the last
 * resolve left it: no fetch. Throws `SourceError` when the repository has no
 * mirror yet, an argument is not a full SHA, or git fails; a commit the mirror
 * does not hold is "not an ancestor".
 */
export async function isAncestorCommit(query: AncestryQuery): Promise<boolean> {
  const shown = redactUrl(query.repo);
  for (const sha of [query.ancestor, query.descendant]) {
    if (!OBJECT_ID.test(sha)) throw new SourceError(`refusing ${JSON.stringify(sha)} in an ancestry check of repository "${shown}": it is not a full commit SHA`);
  }
  const badRepo = repoProblem(query.repo);
  if (badRepo !== null) throw new SourceError(`refusing repository "${shown}": ${badRepo}`);
  const { mirror, lockFile } = mirrorOf(query.repo, query.cacheDir);
  if (!(await isDirectory(mirror))) throw new SourceError(`repository "${shown}" has not been fetched yet: cannot check the ancestry of ${query.ancestor}`);
  const release = await acquireLock(lockFile, query.lockTimeoutMs ?? 15 * 60_000, `repository "${shown}"`);
  try {
    const known = await runGit(['--git-dir', mirror, 'cat-file', '-e', '--end-of-options', `${query.ancestor}^{commit}`]);
    if (!known.ok) return false;
    const result = await runGit(['--git-dir', mirror, 'merge-base', '--is-ancestor', '--end-of-options', query.ancestor, query.descendant]);
    if (result.ok) return true;
    if (!result.timedOut && result.stderr === '') return false;
    throw new SourceError(`cannot check whether ${query.ancestor} is an ancestor of ${query.descendant} in repository "${shown}": ${redactUrl(result.stderr, query.repo) || 'git timed out'}`);
  } finally {
    await release();
  }
}

function gitFailure(what: string, run: Resolution, result: GitResult): SourceError {
  const why = result.timedOut ? `timed out after ${Math.round(run.gitTimeoutMs / 1000)}s` : 'failed';
  return new SourceError(
    `cannot fetch ref "${run.ref}" from repository "${run.repo}": ${what} ${why}${stderrOf(result, run)}`,
  );
}

/** `: <git's stderr>` with any secret of the repository URL redacted, or '' when git said nothing. */
function stderrOf(result: GitResult, run: Resolution): string {
  return result.stderr === '' ? '' : `: ${redactUrl(result.stderr, run.rawRepo)}`;
}

async function updateMirror(mirror: string, url: string, tmp: string, run: Resolution): Promise<void> {
  const probe = await runGit(['--git-dir', mirror, 'rev-parse', '--is-bare-repository']);
  if (probe.ok && probe.stdout.trim() === 'true') {
    const fetched = await runGit(['--git-dir', mirror, 'fetch', '--prune', '--quiet', 'origin'], {
      timeoutMs: run.gitTimeoutMs,
    });
    if (!fetched.ok) throw gitFailure('git fetch', run, fetched);
    return;
  }
  // Absent, or damaged beyond use: clone afresh beside it, then swap it in whole.
  await fs.rm(mirror, { recursive: true, force: true });
  const staging = path.join(tmp, `${path.basename(mirror, '.git')}-${uniqueSuffix()}.git`);
  try {
    const cloned = await runGit(['clone', '--mirror', '--quiet', '--', url, staging], { timeoutMs: run.gitTimeoutMs });
    if (!cloned.ok) throw gitFailure('git clone', run, cloned);
    await fs.rename(staging, mirror);
  } finally {
    await fs.rm(staging, { recursive: true, force: true });
  }
}

async function resolveCommit(mirror: string, run: Resolution): Promise<string> {
  const result = await runGit(['--git-dir', mirror, 'rev-parse', '--verify', '--end-of-options', `${run.ref}^{commit}`]);
  const commit = result.stdout.trim();
  if (!result.ok || !OBJECT_ID.test(commit)) {
    throw new SourceError(`ref "${run.ref}" not found in repository "${run.repo}"${stderrOf(result, run)}`);
  }
  return commit;
}

/**
 * `trees/<commit>`, building it first if needed. Safe to call concurrently for
 * the same commit (exported for the test that does so).
 */
export async function materialiseTree(
  mirror: string,
  commit: string,
  dirs: { trees: string; tmp: string },
  run: Resolution,
): Promise<string> {
  const tree = path.join(dirs.trees, commit);
  if (await isDirectory(tree)) return tree;
  const staging = path.join(dirs.tmp, `tree-${commit}-${uniqueSuffix()}`);
  const index = `${staging}.index`;
  try {
    await fs.mkdir(staging);
    // A private index file and an explicit work tree: the mirror itself is never modified.
    // The conversion settings are pinned so the tree of a commit is the same whoever builds it.
    const checkout = await runGit(
      [
        '-c',
        'core.autocrlf=false',
        '-c',
        'core.symlinks=true',
        '--git-dir',
        mirror,
        '--work-tree',
        staging,
        'read-tree',
        '--reset',
        '-u',
        commit,
      ],
      { env: { GIT_INDEX_FILE: index }, timeoutMs: run.gitTimeoutMs },
    );
    if (!checkout.ok) {
      throw new SourceError(
        `cannot check out commit ${commit} of repository "${run.repo}" (ref "${run.ref}")${stderrOf(checkout, run)}`,
      );
    }
    try {
      await fs.rename(staging, tree);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      // Another process built the same commit first; its tree is identical.
      if ((code !== 'EEXIST' && code !== 'ENOTEMPTY') || !(await isDirectory(tree))) throw error;
    }
    return tree;
  } finally {
    await fs.rm(staging, { recursive: true, force: true });
    await fs.rm(index, { force: true });
  }
}

/** The spec directory inside a checked-out tree; it must exist and stay inside the tree. */
async function specDirectory(tree: string, subdir: string, commit: string, run: Resolution): Promise<string> {
  if (subdir === '') return tree;
  const dir = path.join(tree, ...subdir.split('/'));
  const where = `in repository "${run.repo}" at ref "${run.ref}" (commit ${commit})`;
  let real: string;
  try {
    real = await fs.realpath(dir);
  } catch (cause) {
    throw new SourceError(`path "${subdir}" does not exist ${where}`, { cause });
  }
  const realTree = await fs.realpath(tree);
  if (real !== realTree && !real.startsWith(realTree + path.sep)) {
    throw new SourceError(`path "${subdir}" leaves the repository through a symbolic link ${where}`);
  }
  if (!(await isDirectory(real))) throw new SourceError(`path "${subdir}" is not a directory ${where}`);
  return dir;
}

/** Staging older than this was left by a process killed mid-build (every build is bounded by the git timeout). */
const ABANDONED_STAGING_MS = 24 * 60 * 60_000;

async function sweepAbandonedStaging(tmp: string): Promise<void> {
  for (const name of await fs.readdir(tmp).catch(() => [])) {
    const entry = path.join(tmp, name);
    const stat = await fs.lstat(entry).catch(() => null);
    if (stat !== null && Date.now() - stat.mtimeMs > ABANDONED_STAGING_MS) {
      await fs.rm(entry, { recursive: true, force: true }).catch(() => undefined);
    }
  }
}

async function isDirectory(file: string): Promise<boolean> {
  try {
    return (await fs.stat(file)).isDirectory();
  } catch {
    return false;
  }
}

function uniqueSuffix(): string {
  return `${process.pid}-${randomBytes(6).toString('hex')}`;
}

// ---------------------------------------------------------------------------
// A lock file per mirror

interface LockRecord {
  readonly pid: number;
  readonly host: string;
  readonly token: string;
  readonly since: string;
}

/** A lock file that cannot be parsed (written by something else) counts as stale after this long. */
const UNREADABLE_LOCK_STALE_MS = 30_000;
/** Breaking a stale lock takes milliseconds; a breaker file older than this was left by a crash. */
const BREAKER_STALE_MS = 10_000;

/**
 * Takes `file`, waiting while a live process holds it, and returns the release
 * function. The file is created complete in one step (link of a written temp
 * file), so a reader never sees a half-written holder.
 */
async function acquireLock(file: string, timeoutMs: number, what: string): Promise<() => Promise<void>> {
  const mine: LockRecord = {
    pid: process.pid,
    host: os.hostname(),
    token: randomBytes(8).toString('hex'),
    since: new Date().toISOString(),
  };
  const deadline = Date.now() + timeoutMs;
  let delay = 20;
  for (;;) {
    if (await createExclusive(file, JSON.stringify(mine))) {
      return async () => {
        const current = await readFileOrNull(file);
        if (current !== null && parseLock(current)?.token === mine.token) await fs.rm(file, { force: true });
      };
    }
    const raw = await readFileOrNull(file);
    if (raw === null) continue; // released just now
    const holder = parseLock(raw);
    if (await isStale(file, holder)) {
      await breakStaleLock(file, raw);
      continue;
    }
    if (Date.now() >= deadline) {
      const who = holder === null ? 'an unknown process' : `pid ${holder.pid} on ${holder.host} since ${holder.since}`;
      throw new SourceError(`timed out waiting for ${what}: its cache lock ${file} is held by ${who}`);
    }
    await sleep(delay + Math.random() * delay);
    delay = Math.min(delay * 2, 500);
  }
}

async function createExclusive(file: string, content: string): Promise<boolean> {
  const temp = `${file}.${uniqueSuffix()}.tmp`;
  await fs.writeFile(temp, content, { flag: 'wx', mode: 0o600 });
  try {
    await fs.link(temp, file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    await fs.rm(temp, { force: true });
  }
}

async function isStale(file: string, holder: LockRecord | null): Promise<boolean> {
  if (holder === null) {
    const stat = await fs.stat(file).catch(() => null);
    return stat !== null && Date.now() - stat.mtimeMs > UNREADABLE_LOCK_STALE_MS;
  }
  // A pid means nothing on another host (a cache on a shared file system): wait for it.
  return holder.host === os.hostname() && !processAlive(holder.pid);
}

/**
 * Removes the lock only if it still holds the stale content we saw. Breakers take
 * turns on a second lock file, so two of them can never both remove a lock and
 * then delete the fresh lock one of them created.
 */
async function breakStaleLock(file: string, staleContent: string): Promise<void> {
  const breaker = `${file}.break`;
  if (!(await createExclusive(breaker, String(process.pid)))) {
    const stat = await fs.stat(breaker).catch(() => null);
    if (stat !== null && Date.now() - stat.mtimeMs > BREAKER_STALE_MS) await fs.rm(breaker, { force: true });
    await sleep(10 + Math.random() * 20);
    return;
  }
  try {
    if ((await readFileOrNull(file)) === staleContent) await fs.rm(file, { force: true });
  } finally {
    await fs.rm(breaker, { force: true });
  }
}

function parseLock(raw: string): LockRecord | null {
  try {
    const value = JSON.parse(raw) as Partial<LockRecord> | null;
    if (
      typeof value?.pid === 'number' &&
      typeof value.host === 'string' &&
      typeof value.token === 'string' &&
      typeof value.since === 'string'
    ) {
      return value as LockRecord;
    }
  } catch {
    // not ours
  }
  return null;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readFileOrNull(file: string): Promise<string | null> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}
