/**
 * The spec directory as it was at another commit of the git repository that
 * holds it (`capstan plan --base REF`): that commit's tree is checked out into
 * a private temporary directory with a private index, so the work tree, the
 * index and the repository are never modified.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runGit, SourceError } from './git.js';

export interface CommitTree {
  /** The spec directory inside the checkout of `commit`. */
  readonly dir: string;
  readonly commit: string;
  /** Removes the checkout. */
  remove(): Promise<void>;
}

/**
 * Checks out `ref` of the repository that holds `specDir`. Throws SourceError
 * when `specDir` is not in a git work tree, `ref` is refused or names no commit,
 * or the spec directory does not exist at that commit.
 */
export async function checkoutCommitOf(specDir: string, ref: string): Promise<CommitTree> {
  // Revision syntax (HEAD~1, origin/main) is welcome; git reads it after --end-of-options, and "-" never starts it.
  const problem = ref === '' ? 'it is empty' : ref.startsWith('-') ? 'it starts with "-"' : /[\x00-\x1f\x7f]/.test(ref) ? 'it contains a control character' : null;
  if (problem !== null) throw new SourceError(`refusing base ref ${JSON.stringify(ref)}: ${problem}`);
  const top = await runGit(['rev-parse', '--show-toplevel'], { cwd: specDir });
  if (!top.ok) throw new SourceError(`--base needs the spec directory in a git repository, and ${specDir} is not in one${top.stderr ? `: ${top.stderr}` : ''}`);
  const root = top.stdout.trim();
  const resolved = await runGit(['rev-parse', '--verify', '--quiet', '--end-of-options', `${ref}^{commit}`], { cwd: root });
  const commit = resolved.stdout.trim();
  if (!resolved.ok || commit === '') throw new SourceError(`base ref "${ref}" does not name a commit in the repository at ${root}`);
  const prefix = path.relative(await fs.realpath(root), await fs.realpath(specDir));

  const staging = await fs.mkdtemp(path.join(os.tmpdir(), 'capstan-base-'));
  const remove = () => fs.rm(staging, { recursive: true, force: true });
  try {
    const tree = path.join(staging, 'tree');
    await fs.mkdir(tree);
    const checkout = await runGit(
      ['-c', 'core.autocrlf=false', '-c', 'core.symlinks=true', '--work-tree', tree, 'read-tree', '--reset', '-u', commit],
      { cwd: root, env: { GIT_INDEX_FILE: path.join(staging, 'index') } },
    );
    if (!checkout.ok) throw new SourceError(`cannot check out base commit ${commit}${checkout.stderr ? `: ${checkout.stderr}` : ''}`);
    const dir = path.join(tree, prefix);
    const stat = await fs.stat(dir).catch(() => undefined);
    if (!stat?.isDirectory()) throw new SourceError(`the spec directory ${prefix || '.'} does not exist at base commit ${commit} (${ref})`);
    return { dir, commit, remove };
  } catch (err) {
    await remove();
    throw err;
  }
}
