import { execa } from 'execa';
import fc from 'fast-check';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { defaultCacheDir, isAncestorCommit, materialiseTree, redactUrl, refProblem, resolveGitSource, SourceError } from './git.js';

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

// The machine's git configuration must not change what these tests see.
beforeAll(() => {
  vi.stubEnv('GIT_CONFIG_GLOBAL', '/dev/null');
  vi.stubEnv('GIT_CONFIG_NOSYSTEM', '1');
});
afterAll(() => {
  vi.unstubAllEnvs();
});

const AUTHOR = 'Test Author <author@example.com>';

async function git(cwd: string, ...args: string[]): Promise<string> {
  const result = await execa(
    'git',
    ['-c', 'user.name=Test Author', '-c', 'user.email=author@example.com', '-c', 'commit.gpgsign=false', ...args],
    { cwd, env: { GIT_AUTHOR_DATE: '2024-01-02T03:04:05Z', GIT_COMMITTER_DATE: '2024-01-02T03:04:05Z' } },
  );
  return result.stdout.trim();
}

/** Writes `files` (relative path -> content), commits everything and returns the new SHA. */
async function commit(repo: string, files: Record<string, string>, message: string): Promise<string> {
  for (const [name, content] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(repo, name)), { recursive: true });
    await fs.writeFile(path.join(repo, name), content);
  }
  await git(repo, 'add', '-A');
  await git(repo, 'commit', '-q', '-m', message);
  return git(repo, 'rev-parse', 'HEAD');
}

let tmp: string;
let origin: string;
let cacheDir: string;
let first: string;

beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'capstan-git-source-'));
  origin = path.join(tmp, 'origin');
  cacheDir = path.join(tmp, 'cache');
  await fs.mkdir(origin);
  await git(origin, 'init', '-q', '-b', 'main');
  first = await commit(
    origin,
    { 'stacks/prod/app.yaml': 'kind: Host\nname: web-1\n', 'README.md': 'infra\n' },
    'Add prod stack\n\nWith a body that is not the subject.',
  );
});

afterEach(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

async function read(dir: string, file: string): Promise<string> {
  return fs.readFile(path.join(dir, file), 'utf8');
}

async function rejection(promise: Promise<unknown>): Promise<SourceError> {
  const error = await promise.then(
    () => {
      throw new Error('expected the promise to reject');
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SourceError);
  return error as SourceError;
}

describe('resolveGitSource: fetching', () => {
  it('pins a branch to its commit and checks that commit out in the cache', async () => {
    const source = await resolveGitSource({ repo: origin, ref: 'main', cacheDir });
    expect(source).toEqual({
      dir: path.join(cacheDir, 'trees', first),
      repo: origin,
      ref: 'main',
      commit: first,
      author: AUTHOR,
      message: 'Add prod stack',
      dirty: null,
    });
    expect(await read(source.dir, 'stacks/prod/app.yaml')).toBe('kind: Host\nname: web-1\n');
    expect(await fs.readdir(path.join(cacheDir, 'repos'))).toEqual([expect.stringMatching(/^[0-9a-f]{16}\.git$/)]);
    expect(await fs.readdir(path.join(cacheDir, 'tmp'))).toEqual([]);
  });

  it('defaults to HEAD, the default branch', async () => {
    await git(origin, 'checkout', '-q', '-b', 'other');
    await commit(origin, { 'other.yaml': 'x: 1\n' }, 'On other');
    await git(origin, 'checkout', '-q', 'main');
    const source = await resolveGitSource({ repo: origin, cacheDir });
    expect(source.ref).toBe('HEAD');
    expect(source.commit).toBe(first);
  });

  it('resolves lightweight and annotated tags to the tagged commit', async () => {
    await git(origin, 'tag', 'v1');
    await git(origin, 'tag', '-a', '-m', 'release 1.1', 'v1.1');
    await commit(origin, { 'README.md': 'later\n' }, 'Later');
    const light = await resolveGitSource({ repo: origin, ref: 'v1', cacheDir });
    const annotated = await resolveGitSource({ repo: origin, ref: 'refs/tags/v1.1', cacheDir });
    expect(light.commit).toBe(first);
    expect(annotated.commit).toBe(first);
    expect(await read(annotated.dir, 'README.md')).toBe('infra\n');
  });

  it('resolves a full SHA of an older commit', async () => {
    await commit(origin, { 'README.md': 'second\n' }, 'Second');
    const source = await resolveGitSource({ repo: origin, ref: first, cacheDir });
    expect(source.commit).toBe(first);
    expect(await read(source.dir, 'README.md')).toBe('infra\n');
  });

  it('sees a new commit on the branch at the next resolve and leaves the old tree as it was', async () => {
    const before = await resolveGitSource({ repo: origin, ref: 'main', cacheDir });
    const second = await commit(origin, { 'stacks/prod/app.yaml': 'kind: Host\nname: web-2\n' }, 'Rename host');
    const after = await resolveGitSource({ repo: origin, ref: 'main', cacheDir });

    expect(after.commit).toBe(second);
    expect(after.message).toBe('Rename host');
    expect(after.dir).not.toBe(before.dir);
    expect(await read(after.dir, 'stacks/prod/app.yaml')).toBe('kind: Host\nname: web-2\n');
    expect(await read(before.dir, 'stacks/prod/app.yaml')).toBe('kind: Host\nname: web-1\n');

    const again = await resolveGitSource({ repo: origin, ref: first, cacheDir });
    expect(again.dir).toBe(before.dir);
  });

  it('forgets a branch deleted upstream (fetch --prune)', async () => {
    await git(origin, 'branch', 'feature');
    await resolveGitSource({ repo: origin, ref: 'feature', cacheDir });
    await git(origin, 'branch', '-D', 'feature');
    const error = await rejection(resolveGitSource({ repo: origin, ref: 'feature', cacheDir }));
    expect(error.message).toContain('ref "feature" not found');
  });

  it('accepts a file:// URL and gives the same tree as the path', async () => {
    const byPath = await resolveGitSource({ repo: origin, ref: 'main', cacheDir });
    const byUrl = await resolveGitSource({ repo: pathToFileURL(origin).href, ref: 'main', cacheDir });
    expect(byUrl.commit).toBe(first);
    expect(byUrl.dir).toBe(byPath.dir);
    expect(byUrl.repo).toBe(pathToFileURL(origin).href);
  });

  it('checks out symbolic links and executable bits as committed', async () => {
    await fs.symlink('app.yaml', path.join(origin, 'stacks/prod/alias.yaml'));
    await fs.writeFile(path.join(origin, 'hook.sh'), '#!/bin/sh\n', { mode: 0o755 });
    const sha = await commit(origin, {}, 'Link and script');
    const source = await resolveGitSource({ repo: origin, ref: sha, cacheDir });
    expect(await fs.readlink(path.join(source.dir, 'stacks/prod/alias.yaml'))).toBe('app.yaml');
    expect((await fs.stat(path.join(source.dir, 'hook.sh'))).mode & 0o111).not.toBe(0);
  });
});

describe('resolveGitSource: path inside the repository', () => {
  it('returns the subdirectory of the checkout', async () => {
    const source = await resolveGitSource({ repo: origin, ref: 'main', path: 'stacks/prod', cacheDir });
    expect(source.dir).toBe(path.join(cacheDir, 'trees', first, 'stacks', 'prod'));
    expect(await fs.readdir(source.dir)).toEqual(['app.yaml']);
    const dotted = await resolveGitSource({ repo: origin, ref: 'main', path: './stacks//prod/', cacheDir });
    expect(dotted.dir).toBe(source.dir);
  });

  it.each([
    ['../outside', '".."'],
    ['stacks/../../outside', '".."'],
    ['/etc', 'absolute'],
  ])('refuses path %j before fetching', async (subdir, why) => {
    const error = await rejection(resolveGitSource({ repo: origin, ref: 'main', path: subdir, cacheDir }));
    expect(error.message).toContain(why);
    await expect(fs.access(cacheDir)).rejects.toThrow();
  });

  it('fails clearly when the path is not a directory of that commit', async () => {
    const missing = await rejection(resolveGitSource({ repo: origin, ref: 'main', path: 'stacks/staging', cacheDir }));
    expect(missing.message).toBe(
      `path "stacks/staging" does not exist in repository "${origin}" at ref "main" (commit ${first})`,
    );
    const file = await rejection(resolveGitSource({ repo: origin, ref: 'main', path: 'README.md', cacheDir }));
    expect(file.message).toContain('is not a directory');
  });

  it('refuses a path that leaves the checkout through a committed symbolic link', async () => {
    await fs.symlink(tmp, path.join(origin, 'escape'));
    await commit(origin, {}, 'Add a link out');
    const error = await rejection(resolveGitSource({ repo: origin, ref: 'main', path: 'escape', cacheDir }));
    expect(error.message).toContain('leaves the repository through a symbolic link');
  });
});

describe('resolveGitSource: refusals', () => {
  let marker: string;
  let gitLog: string;
  const originalPath = process.env.PATH ?? '';

  // A `git` first on PATH that records every call, so a test can prove git never ran.
  beforeEach(async () => {
    marker = path.join(tmp, 'pwned');
    gitLog = path.join(tmp, 'git-calls.log');
    const realGit = (await execa('sh', ['-c', 'command -v git'])).stdout.trim();
    const bin = path.join(tmp, 'bin');
    await fs.mkdir(bin);
    await fs.writeFile(
      path.join(bin, 'git'),
      `#!/bin/sh\nprintf '%s\\n' "$*" >> '${gitLog}'\nexec '${realGit}' "$@"\n`,
      { mode: 0o755 },
    );
    vi.stubEnv('PATH', `${bin}${path.delimiter}${originalPath}`);
  });
  afterEach(() => {
    vi.stubEnv('PATH', originalPath);
  });

  async function gitCalls(): Promise<string[]> {
    const log = await fs.readFile(gitLog, 'utf8').catch(() => '');
    return log.split('\n').filter((line) => line !== '');
  }

  it('runs git through the wrapper for an ordinary resolve, with -- before the URL', async () => {
    await resolveGitSource({ repo: origin, ref: 'main', cacheDir });
    const calls = await gitCalls();
    expect(calls.some((call) => call.includes(`clone --mirror --quiet -- ${origin} `))).toBe(true);
  });

  it.each([
    [`--upload-pack=touch MARKER`],
    ['-oProxyCommand=touch MARKER'],
    [''],
    ['/srv/git/infra.git\n--upload-pack=touch MARKER'],
  ])('refuses repository %j without running git', async (template) => {
    const repo = template.replaceAll('MARKER', path.join(tmp, 'pwned'));
    const error = await rejection(resolveGitSource({ repo, ref: 'main', cacheDir }));
    expect(error.message).toMatch(/^refusing repository/);
    expect(await gitCalls()).toEqual([]);
    await expect(fs.access(marker)).rejects.toThrow();
    await expect(fs.access(cacheDir)).rejects.toThrow();
  });

  it.each([
    ['--output=MARKER', 'starts with "-"'],
    ['-h', 'starts with "-"'],
    ['main..evil', '".."'],
    ['main\n', 'control character'],
    ['main\u0000x', 'control character'],
    ['main^{tree}', '~ ^ :'],
    ['HEAD~1', '~ ^ :'],
    ['main@{1}', '"@{"'],
    ['refs/heads/.hidden', 'starts with "."'],
    ['main.lock', '".lock"'],
    ['', 'empty'],
  ])('refuses ref %j without running git', async (template, why) => {
    const ref = template.replaceAll('MARKER', marker);
    const error = await rejection(resolveGitSource({ repo: origin, ref, cacheDir }));
    expect(error.message).toContain(`refusing ref ${JSON.stringify(ref)} for repository "${origin}"`);
    expect(error.message).toContain(why);
    expect(await gitCalls()).toEqual([]);
    await expect(fs.access(marker)).rejects.toThrow();
  });

  it('refuses the ext:: transport, which would run a command', async () => {
    const repo = `ext::sh -c touch% ${marker}`;
    const error = await rejection(resolveGitSource({ repo, ref: 'main', cacheDir }));
    expect(error.message).toContain(`cannot fetch ref "main" from repository "${repo}"`);
    expect(error.message).toMatch(/transport 'ext' not allowed/);
    await expect(fs.access(marker)).rejects.toThrow();
  });
});

describe('resolveGitSource: failures are errors, never an empty result', () => {
  it('names the repository, the ref and git stderr for an unknown ref', async () => {
    const error = await rejection(resolveGitSource({ repo: origin, ref: 'no-such-branch', cacheDir }));
    expect(error.message).toMatch(
      new RegExp(`^ref "no-such-branch" not found in repository "${origin}": fatal: Needed a single revision$`),
    );
  });

  it('names the repository, the ref and git stderr for a repository that is not there', async () => {
    const missing = path.join(tmp, 'missing.git');
    const error = await rejection(resolveGitSource({ repo: missing, ref: 'main', cacheDir }));
    expect(error.message).toContain(`cannot fetch ref "main" from repository "${missing}": git clone failed: `);
    expect(error.message).toMatch(/fatal: .*(does not exist|not appear to be a git repository)/);
    expect(await fs.readdir(path.join(cacheDir, 'repos'))).toEqual([]);
    expect(await fs.readdir(path.join(cacheDir, 'tmp'))).toEqual([]);
  });

  it('fails when a repository fetched before has become unreachable, instead of using the stale mirror', async () => {
    await resolveGitSource({ repo: origin, ref: 'main', cacheDir });
    await fs.rm(origin, { recursive: true, force: true });
    const error = await rejection(resolveGitSource({ repo: origin, ref: 'main', cacheDir }));
    expect(error.message).toContain(`cannot fetch ref "main" from repository "${origin}": git fetch failed: fatal:`);
  });

  it('keeps a password in the URL out of the error and the result', async () => {
    const repo = 'https://deploy:s3cr3t-token@127.0.0.1:1/infra.git';
    const error = await rejection(resolveGitSource({ repo, ref: 'main', cacheDir, gitTimeoutMs: 20_000 }));
    expect(error.message).toContain('https://deploy:***@127.0.0.1:1/infra.git');
    expect(error.message).not.toContain('s3cr3t');
    expect(redactUrl('https://ghp_abc@github.com/o/r.git')).toBe('https://***@github.com/o/r.git');
    expect(redactUrl('ssh://git@github.com/o/r.git')).toBe('ssh://git@github.com/o/r.git');
    expect(redactUrl('git@github.com:o/r.git')).toBe('git@github.com:o/r.git');
  });

  it('sweeps staging left in tmp/ by a process killed more than a day ago', async () => {
    const abandoned = path.join(cacheDir, 'tmp', 'tree-abandoned');
    const recent = path.join(cacheDir, 'tmp', 'tree-recent');
    await fs.mkdir(abandoned, { recursive: true });
    await fs.mkdir(recent);
    const twoDaysAgo = new Date(Date.now() - 2 * 24 * 60 * 60_000);
    await fs.utimes(abandoned, twoDaysAgo, twoDaysAgo);
    await resolveGitSource({ repo: origin, ref: 'main', cacheDir });
    expect(await fs.readdir(path.join(cacheDir, 'tmp'))).toEqual(['tree-recent']);
  });

  it('recovers from a mirror left damaged in the cache', async () => {
    await resolveGitSource({ repo: origin, ref: 'main', cacheDir });
    const [mirror] = await fs.readdir(path.join(cacheDir, 'repos'));
    await fs.rm(path.join(cacheDir, 'repos', mirror ?? 'none', 'HEAD'));
    const source = await resolveGitSource({ repo: origin, ref: 'main', cacheDir });
    expect(source.commit).toBe(first);
  });
});

describe('resolveGitSource: concurrency', () => {
  it('four concurrent resolves in one process succeed and agree', async () => {
    const results = await Promise.all(
      Array.from({ length: 4 }, () => resolveGitSource({ repo: origin, ref: 'main', cacheDir })),
    );
    for (const result of results) expect(result).toEqual(results[0]);
    expect(results[0]?.commit).toBe(first);
    expect(await fs.readdir(path.join(cacheDir, 'repos'))).toHaveLength(1); // the lock is gone
  });

  it('four concurrent resolves in separate processes succeed and agree', async () => {
    const script = `
      const { resolveSource } = await import(${JSON.stringify(pathToFileURL(path.join(projectRoot, 'src/source/source.ts')).href)});
      const source = await resolveSource({ repo: process.argv[1], ref: 'main', cacheDir: process.argv[2] });
      process.stdout.write(JSON.stringify(source));
    `;
    const outputs = await Promise.all(
      Array.from({ length: 4 }, () =>
        execa(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, origin, cacheDir], {
          cwd: projectRoot,
        }),
      ),
    );
    const results = outputs.map((output) => JSON.parse(output.stdout) as unknown);
    for (const result of results) expect(result).toEqual(results[0]);
    expect(results[0]).toMatchObject({ commit: first, dir: path.join(cacheDir, 'trees', first) });
    expect(await fs.readdir(path.join(cacheDir, 'trees'))).toEqual([first]);
  });

  it('two mirrors of the same repository build the same commit at once: one rename wins', async () => {
    const url = pathToFileURL(origin).href;
    const results = await Promise.all([
      resolveGitSource({ repo: origin, ref: 'main', cacheDir }),
      resolveGitSource({ repo: url, ref: 'main', cacheDir }),
      resolveGitSource({ repo: origin, ref: first, cacheDir }),
      resolveGitSource({ repo: url, ref: first, cacheDir }),
    ]);
    expect(new Set(results.map((r) => r.dir))).toEqual(new Set([path.join(cacheDir, 'trees', first)]));
    expect(await read(path.join(cacheDir, 'trees', first), 'README.md')).toBe('infra\n');
    expect(await fs.readdir(path.join(cacheDir, 'tmp'))).toEqual([]);
  });

  it('building the tree of one commit several times at once leaves one complete tree', async () => {
    await resolveGitSource({ repo: origin, ref: 'main', cacheDir });
    const [mirror] = await fs.readdir(path.join(cacheDir, 'repos'));
    const tree = path.join(cacheDir, 'trees', first);
    await fs.rm(tree, { recursive: true });
    const dirs = { trees: path.join(cacheDir, 'trees'), tmp: path.join(cacheDir, 'tmp') };
    const run = { repo: origin, rawRepo: origin, ref: 'main', gitTimeoutMs: 60_000 };
    const built = await Promise.all(
      Array.from({ length: 4 }, () => materialiseTree(path.join(cacheDir, 'repos', mirror ?? ''), first, dirs, run)),
    );
    expect(built).toEqual([tree, tree, tree, tree]);
    expect(await read(tree, 'stacks/prod/app.yaml')).toBe('kind: Host\nname: web-1\n');
    expect(await fs.readdir(dirs.tmp)).toEqual([]);
  });

  async function lockFile(): Promise<string> {
    await resolveGitSource({ repo: origin, ref: 'main', cacheDir });
    const [mirror] = await fs.readdir(path.join(cacheDir, 'repos'));
    return path.join(cacheDir, 'repos', (mirror ?? '').replace(/\.git$/, '.lock'));
  }

  it('breaks a lock left by a process that died', async () => {
    const lock = await lockFile();
    const dead = execa(process.execPath, ['-e', '']);
    const pid = dead.pid;
    await dead;
    await fs.writeFile(lock, JSON.stringify({ pid, host: os.hostname(), token: 'x', since: '2024-01-01T00:00:00Z' }));
    const source = await resolveGitSource({ repo: origin, ref: 'main', cacheDir, lockTimeoutMs: 5_000 });
    expect(source.commit).toBe(first);
    await expect(fs.access(lock)).rejects.toThrow();
  });

  it('waits for a live holder, and names it when the wait times out', async () => {
    const lock = await lockFile();
    const holder = { pid: process.pid, host: os.hostname(), token: 'held', since: '2024-01-01T00:00:00Z' };
    await fs.writeFile(lock, JSON.stringify(holder));

    const error = await rejection(resolveGitSource({ repo: origin, ref: 'main', cacheDir, lockTimeoutMs: 300 }));
    expect(error.message).toContain(`held by pid ${process.pid} on ${os.hostname()} since 2024-01-01T00:00:00Z`);

    const waiting = resolveGitSource({ repo: origin, ref: 'main', cacheDir, lockTimeoutMs: 10_000 });
    let settled = false;
    const settle = () => {
      settled = true;
    };
    waiting.then(settle, settle);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(settled).toBe(false);
    await fs.rm(lock);
    expect((await waiting).commit).toBe(first);
  });
});

describe('isAncestorCommit', () => {
  it('answers from the mirror: ancestors and the commit itself yes; an unmerged branch, an unknown SHA no', async () => {
    const second = await commit(origin, { 'README.md': 'second\n' }, 'Second');
    await git(origin, 'checkout', '-q', '-b', 'feature', first);
    const unmerged = await commit(origin, { 'README.md': 'feature\n' }, 'Feature');
    await git(origin, 'checkout', '-q', 'main');
    await resolveGitSource({ repo: origin, ref: 'main', cacheDir });
    const ask = (ancestor: string, descendant: string) => isAncestorCommit({ repo: origin, ancestor, descendant, cacheDir });
    expect(await ask(first, second)).toBe(true);
    expect(await ask(second, second)).toBe(true);
    expect(await ask(second, first)).toBe(false);
    expect(await ask(unmerged, second)).toBe(false);
    expect(await ask('f'.repeat(40), second)).toBe(false);
  });

  it('refuses anything but full SHAs (an option, a ref name, an abbreviation) before running git', async () => {
    await resolveGitSource({ repo: origin, ref: 'main', cacheDir });
    for (const bad of ['--output=/tmp/x', '-h', 'main', first.slice(0, 12)]) {
      expect((await rejection(isAncestorCommit({ repo: origin, ancestor: bad, descendant: first, cacheDir }))).message).toMatch(/not a full commit SHA/);
      expect((await rejection(isAncestorCommit({ repo: origin, ancestor: first, descendant: bad, cacheDir }))).message).toMatch(/not a full commit SHA/);
    }
    expect((await rejection(isAncestorCommit({ repo: '-uhoh', ancestor: first, descendant: first, cacheDir }))).message).toMatch(/starts with "-"/);
    expect((await rejection(isAncestorCommit({ repo: path.join(tmp, 'never-fetched'), ancestor: first, descendant: first, cacheDir }))).message).toMatch(/not been fetched/);
  });
});

describe('refProblem', () => {
  it('accepts branch, tag and full ref names and full SHAs', () => {
    for (const ref of ['main', 'release/2024.1', 'refs/heads/main', 'v1.2.3', 'HEAD', 'a'.repeat(40), first]) {
      expect(refProblem(ref)).toBeNull();
    }
  });

  it('agrees with git check-ref-format --allow-onelevel on names not starting with "-"', async () => {
    const piece = fc.constantFrom('a', 'Z', '0', '.', '/', '..', '@', '{', '@{', '.lock', ' ', '~', '^', ':', '?', '*', '[', '\\', '\t', '\u007f', 'é', '-');
    await fc.assert(
      fc.asyncProperty(
        fc.array(piece, { minLength: 1, maxLength: 8 }).map((pieces) => pieces.join('')),
        async (ref) => {
          fc.pre(!ref.startsWith('-'));
          const byGit = await execa('git', ['check-ref-format', '--allow-onelevel', ref], { reject: false });
          expect(refProblem(ref) === null).toBe(byGit.exitCode === 0);
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('defaultCacheDir', () => {
  it('uses XDG_CACHE_HOME when absolute, else ~/.cache', () => {
    expect(defaultCacheDir({ XDG_CACHE_HOME: '/var/cache/me' })).toBe('/var/cache/me/capstan');
    expect(defaultCacheDir({ XDG_CACHE_HOME: 'relative' })).toBe(path.join(os.homedir(), '.cache', 'capstan'));
    expect(defaultCacheDir({})).toBe(path.join(os.homedir(), '.cache', 'capstan'));
  });
});
