import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { DEFAULT_SANDBOX, firstStackFiles } from '../init/first-stack.js';
import { UsageError } from '../context.js';

interface InitOptions {
  root?: string;
  force?: boolean;
  git: boolean;
}

export function registerInitCommand(program: Command): void {
  program
    .command('init [dir]')
    .description('write a first stack into DIR (default: the current directory) that validates and applies as it is')
    .option('--root <path>', `the Host's root, where every managed path lands (default: DIR/${DEFAULT_SANDBOX}, a sandbox inside the stack)`)
    .option('--force', 'overwrite the files init writes when they exist')
    .option('--no-git', 'do not `git init` DIR when it is not inside a git repository')
    .action(async (dir: string | undefined, options: InitOptions) => {
      const stackDir = path.resolve(dir ?? '.');
      const root = options.root === undefined ? path.join(stackDir, DEFAULT_SANDBOX) : path.resolve(options.root);
      const inside = path.relative(stackDir, root);
      const rootShown = inside !== '' && !inside.startsWith('..') && !path.isAbsolute(inside) ? `${inside}/` : root;
      const files = firstStackFiles({ root, rootShown });

      const existing = files.filter((f) => existsSync(path.join(stackDir, f.path))).map((f) => f.path);
      if (existing.length > 0 && !options.force) {
        throw new UsageError(`${shown(stackDir)} already has ${existing.join(', ')}: not overwriting (--force does)`);
      }
      for (const f of files) {
        const file = path.join(stackDir, ...f.path.split('/'));
        await mkdir(path.dirname(file), { recursive: true });
        await writeFile(file, f.content);
      }
      const git = options.git ? await gitInitUnlessInRepository(stackDir) : 'skipped';

      const out = process.stdout;
      out.write(`Wrote a first stack to ${shown(stackDir)}: ${files.map((f) => f.path).join(', ')}.\n`);
      out.write(`Its Host "local" is this machine; everything it manages lands under ${root}.\n`);
      if (git === 'initialised') out.write(`Initialised a git repository there (nothing committed yet).\n`);
      if (git === 'no-git') out.write(`git is not installed: the stack is not in a repository (the controller needs one).\n`);
      const cd = path.relative(process.cwd(), stackDir);
      out.write(`Next: ${cd ? `cd ${cd} && ` : ''}capstan validate && capstan plan && capstan apply\n`);
    });
}

/** The stack as the user named it: relative to the current directory when inside it. */
function shown(dir: string): string {
  const rel = path.relative(process.cwd(), dir);
  return rel === '' ? '.' : rel.startsWith('..') ? dir : rel;
}

/**
 * `git init` unless the directory already lies in a work tree (a stack in a
 * subdirectory of an infrastructure repository stays there): the controller
 * follows a branch, so a stack lives in git from its first minute.
 */
async function gitInitUnlessInRepository(dir: string): Promise<'initialised' | 'in-repository' | 'no-git'> {
  const { runGit, SourceError } = await import('../../source/git.js');
  try {
    const probe = await runGit(['rev-parse', '--is-inside-work-tree'], { cwd: dir });
    if (probe.ok && probe.stdout.trim() === 'true') return 'in-repository';
    const init = await runGit(['init', '-q', '--', dir]);
    if (!init.ok) throw new UsageError(`wrote the stack, but \`git init ${dir}\` failed: ${init.stderr}`);
    return 'initialised';
  } catch (err) {
    if (err instanceof SourceError) return 'no-git';
    throw err;
  }
}
