/**
 * Where a run's spec comes from: a local directory, or a commit of a git
 * repository fetched into a local cache.
 *
 * `resolveSource` returns the directory the spec loader reads and the commit the
 * run is pinned to. For a git source that directory is an immutable checkout of
 * exactly that commit, so everything later in the run (plan, apply, history)
 * refers to one SHA even if the branch moves meanwhile.
 *
 * Errors: every failure throws `SourceError` (a missing directory, a refused
 * repository/ref/path, an unreachable repository, an unknown ref, a path that is
 * not in the commit). The message names the repository and ref and carries git's
 * own stderr. A failure never yields a result, so it can never read as "the
 * desired set is empty".
 */
import { isAncestorCommit, resolveGitSource, SourceError, type AncestryQuery } from './git.js';
import { resolveLocalDir } from './local-dir.js';

export { isAncestorCommit, SourceError, type AncestryQuery };

export interface SourceInfo {
  /** Absolute path of the spec directory to load (inside a cached checkout for git sources). */
  readonly dir: string;
  /** The repository URL or path given, with any password or token in the URL replaced by `***`; null for a local directory. */
  readonly repo: string | null;
  /** The ref asked for (`HEAD` when none was given); null for a local directory. */
  readonly ref: string | null;
  /** Full SHA of the commit the run is pinned to (HEAD for a local directory inside a git work tree). */
  readonly commit: string | null;
  /** `Name <email>` of that commit's author. */
  readonly author: string | null;
  /** Subject line of that commit. */
  readonly message: string | null;
  /** Local directory only: whether the work tree has uncommitted or untracked changes under `dir`. */
  readonly dirty: boolean | null;
}

export interface SourceOptions {
  /** A local spec directory. Defaults to the current directory when `repo` is not given either. */
  readonly dir?: string | undefined;
  /** A repository URL (`https://`, `ssh://`, `git@host:path`, `file://`) or local path. */
  readonly repo?: string | undefined;
  /** Branch, tag, full ref name or commit SHA; defaults to `HEAD` (the repository's default branch). */
  readonly ref?: string | undefined;
  /** Directory inside the repository that holds the spec; relative, no `..`. */
  readonly path?: string | undefined;
  /** Cache root; defaults to `$XDG_CACHE_HOME/capstan`, else `~/.cache/capstan`. */
  readonly cacheDir?: string | undefined;
  /** A local directory only: false skips reading its git work tree (commit, author, dirty), for commands that only read the spec. Default true. */
  readonly workTree?: boolean | undefined;
  /** Time limit for each clone or fetch (default 10 minutes). */
  readonly gitTimeoutMs?: number | undefined;
  /** How long to wait for another process fetching the same repository (default 15 minutes). */
  readonly lockTimeoutMs?: number | undefined;
}

export async function resolveSource(options: SourceOptions): Promise<SourceInfo> {
  if (options.repo !== undefined) {
    if (options.dir !== undefined) {
      throw new SourceError('give either a spec directory or a repository (--repo), not both');
    }
    return resolveGitSource({
      repo: options.repo,
      ref: options.ref,
      path: options.path,
      cacheDir: options.cacheDir,
      gitTimeoutMs: options.gitTimeoutMs,
      lockTimeoutMs: options.lockTimeoutMs,
    });
  }
  if (options.ref !== undefined || options.path !== undefined) {
    throw new SourceError('a ref (--ref) or a path inside a repository (--path) needs a repository (--repo)');
  }
  return resolveLocalDir(options.dir ?? '.', { workTree: options.workTree });
}
