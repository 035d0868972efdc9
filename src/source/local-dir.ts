/**
 * A spec directory on the local disk. When it lies inside a git work tree, the
 * run records HEAD (SHA, author, subject) and whether anything under the
 * directory differs from HEAD, so history shows what was applied and whether it
 * was committed. Outside a work tree (or without git installed) those are null.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { readCommit, runGit, SourceError } from './git.js';
import type { SourceInfo } from './source.js';

/** `workTree: false` skips git (commit, author, message and dirty stay null): for commands that only read the spec. */
export async function resolveLocalDir(dir: string, options: { workTree?: boolean } = {}): Promise<SourceInfo> {
  const absolute = path.resolve(dir);
  let stat;
  try {
    stat = await fs.stat(absolute);
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new SourceError(`spec directory "${dir}" does not exist (${absolute})`, { cause });
    }
    throw new SourceError(`cannot read spec directory "${dir}": ${(cause as Error).message}`, { cause });
  }
  if (!stat.isDirectory()) {
    throw new SourceError(`spec directory "${dir}" is not a directory (${absolute})`);
  }
  return { dir: absolute, repo: null, ref: null, ...(options.workTree === false ? OUTSIDE_GIT : await workTreeState(absolute)) };
}

type WorkTreeState = Pick<SourceInfo, 'commit' | 'author' | 'message' | 'dirty'>;

const OUTSIDE_GIT: WorkTreeState = { commit: null, author: null, message: null, dirty: null };

async function workTreeState(dir: string): Promise<WorkTreeState> {
  let probe;
  try {
    probe = await runGit(['rev-parse', '--is-inside-work-tree'], { cwd: dir });
  } catch (error) {
    if (error instanceof SourceError) return OUTSIDE_GIT; // git is not installed
    throw error;
  }
  if (!probe.ok || probe.stdout.trim() !== 'true') return OUTSIDE_GIT;

  const [head, status] = await Promise.all([
    // null in a repository without commits yet
    readCommit(['-C', dir], 'HEAD'),
    // --no-optional-locks: never take the index lock behind the user's back
    runGit(['--no-optional-locks', 'status', '--porcelain', '--', '.'], { cwd: dir }),
  ]);
  return {
    commit: head?.commit ?? null,
    author: head?.author ?? null,
    message: head?.message ?? null,
    dirty: status.ok ? status.stdout.trim() !== '' : null,
  };
}
