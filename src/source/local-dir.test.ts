import { execa } from 'execa';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { SourceError } from './git.js';
import { resolveLocalDir } from './local-dir.js';

beforeAll(() => {
  vi.stubEnv('GIT_CONFIG_GLOBAL', '/dev/null');
  vi.stubEnv('GIT_CONFIG_NOSYSTEM', '1');
});
afterAll(() => {
  vi.unstubAllEnvs();
});

async function git(cwd: string, ...args: string[]): Promise<string> {
  const result = await execa(
    'git',
    ['-c', 'user.name=Local Author', '-c', 'user.email=local@example.com', '-c', 'commit.gpgsign=false', ...args],
    { cwd },
  );
  return result.stdout.trim();
}

let tmp: string;

beforeEach(async () => {
  tmp = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'capstan-local-source-')));
});
afterEach(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('resolveLocalDir', () => {
  it('returns the absolute directory and nulls outside a git work tree', async () => {
    const dir = path.join(tmp, 'spec');
    await fs.mkdir(dir);
    const cwd = process.cwd();
    process.chdir(tmp);
    try {
      expect(await resolveLocalDir('spec')).toEqual({
        dir,
        repo: null,
        ref: null,
        commit: null,
        author: null,
        message: null,
        dirty: null,
      });
    } finally {
      process.chdir(cwd);
    }
  });

  it('fails clearly for a missing directory or a file', async () => {
    const missing = path.join(tmp, 'nope');
    await expect(resolveLocalDir(missing)).rejects.toThrow(
      new SourceError(`spec directory "${missing}" does not exist (${missing})`),
    );
    const file = path.join(tmp, 'file.yaml');
    await fs.writeFile(file, 'kind: Host\n');
    await expect(resolveLocalDir(file)).rejects.toThrow(/is not a directory/);
  });

  describe('inside a git work tree', () => {
    let repo: string;
    let spec: string;
    let head: string;

    beforeEach(async () => {
      repo = path.join(tmp, 'repo');
      spec = path.join(repo, 'stacks', 'prod');
      await fs.mkdir(spec, { recursive: true });
      await git(repo, 'init', '-q', '-b', 'main');
      await fs.writeFile(path.join(spec, 'app.yaml'), 'kind: Host\nname: web-1\n');
      await fs.writeFile(path.join(repo, 'README.md'), 'infra\n');
      await fs.writeFile(path.join(repo, '.gitignore'), '*.log\n');
      await git(repo, 'add', '-A');
      await git(repo, 'commit', '-q', '-m', 'Initial spec\n\nbody');
      head = await git(repo, 'rev-parse', 'HEAD');
    });

    it('records HEAD and a clean tree', async () => {
      expect(await resolveLocalDir(spec)).toEqual({
        dir: spec,
        repo: null,
        ref: null,
        commit: head,
        author: 'Local Author <local@example.com>',
        message: 'Initial spec',
        dirty: false,
      });
    });

    it.each([
      ['a modified tracked file', async () => fs.appendFile(path.join(spec, 'app.yaml'), 'spec: {}\n')],
      ['an untracked file', async () => fs.writeFile(path.join(spec, 'new.yaml'), 'kind: File\n')],
      ['a deleted file', async () => fs.rm(path.join(spec, 'app.yaml'))],
      [
        'a staged change',
        async () => {
          await fs.writeFile(path.join(spec, 'staged.yaml'), 'kind: File\n');
          await git(repo, 'add', 'stacks/prod/staged.yaml');
        },
      ],
    ])('is dirty with %s under the directory', async (_what, change) => {
      await change();
      expect((await resolveLocalDir(spec)).dirty).toBe(true);
    });

    it('is clean when changes are only outside the directory or ignored', async () => {
      await fs.appendFile(path.join(repo, 'README.md'), 'more\n');
      await fs.writeFile(path.join(spec, 'debug.log'), 'noise\n');
      expect((await resolveLocalDir(spec)).dirty).toBe(false);
      expect((await resolveLocalDir(repo)).dirty).toBe(true);
    });

    it('records no commit in a repository without commits, but still dirty state', async () => {
      const fresh = path.join(tmp, 'fresh');
      await fs.mkdir(fresh);
      await git(fresh, 'init', '-q');
      await fs.writeFile(path.join(fresh, 'a.yaml'), 'kind: Host\n');
      expect(await resolveLocalDir(fresh)).toMatchObject({ commit: null, author: null, message: null, dirty: true });
    });

    it('is not redirected by GIT_DIR or GIT_INDEX_FILE from the environment (a git hook)', async () => {
      const other = path.join(tmp, 'other');
      await fs.mkdir(other);
      await git(other, 'init', '-q');
      vi.stubEnv('GIT_DIR', path.join(other, '.git'));
      vi.stubEnv('GIT_INDEX_FILE', path.join(other, '.git', 'index'));
      try {
        expect(await resolveLocalDir(spec)).toMatchObject({ commit: head, dirty: false });
      } finally {
        vi.stubEnv('GIT_DIR', undefined);
        vi.stubEnv('GIT_INDEX_FILE', undefined);
      }
    });
  });
});
