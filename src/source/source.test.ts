import { execa } from 'execa';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { resolveSource, SourceError } from './source.js';

beforeAll(() => {
  vi.stubEnv('GIT_CONFIG_GLOBAL', '/dev/null');
  vi.stubEnv('GIT_CONFIG_NOSYSTEM', '1');
});
afterAll(() => {
  vi.unstubAllEnvs();
});

let tmp: string;
let origin: string;
let head: string;

beforeEach(async () => {
  tmp = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'capstan-source-')));
  origin = path.join(tmp, 'origin');
  await fs.mkdir(path.join(origin, 'stacks', 'prod'), { recursive: true });
  await fs.writeFile(path.join(origin, 'stacks', 'prod', 'app.yaml'), 'kind: Host\nname: web-1\n');
  const git = (...args: string[]) =>
    execa('git', ['-c', 'user.name=A', '-c', 'user.email=a@example.com', '-c', 'commit.gpgsign=false', ...args], {
      cwd: origin,
    });
  await git('init', '-q', '-b', 'main');
  await git('add', '-A');
  await git('commit', '-q', '-m', 'Spec');
  head = (await git('rev-parse', 'HEAD')).stdout.trim();
});
afterEach(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('resolveSource', () => {
  it('reads a local directory as it is', async () => {
    const dir = path.join(origin, 'stacks', 'prod');
    expect(await resolveSource({ dir })).toMatchObject({ dir, repo: null, ref: null, commit: head, dirty: false });
  });

  it('fetches a repository at a ref into the cache', async () => {
    const cacheDir = path.join(tmp, 'cache');
    const source = await resolveSource({ repo: origin, ref: 'main', path: 'stacks/prod', cacheDir });
    expect(source).toMatchObject({ repo: origin, ref: 'main', commit: head, dirty: null });
    expect(source.dir).toBe(path.join(cacheDir, 'trees', head, 'stacks', 'prod'));
    expect(await fs.readdir(source.dir)).toEqual(['app.yaml']);
  });

  it('uses the current directory when given neither', async () => {
    const cwd = process.cwd();
    process.chdir(origin);
    try {
      expect((await resolveSource({})).dir).toBe(origin);
    } finally {
      process.chdir(cwd);
    }
  });

  it('refuses a directory together with a repository, and a ref or path without a repository', async () => {
    await expect(resolveSource({ dir: origin, repo: origin })).rejects.toThrow(SourceError);
    await expect(resolveSource({ dir: origin, ref: 'main' })).rejects.toThrow(/needs a repository/);
    await expect(resolveSource({ dir: origin, path: 'stacks' })).rejects.toThrow(/needs a repository/);
  });

  it('refuses a repository starting with "-" through the public entry point', async () => {
    const marker = path.join(tmp, 'pwned');
    await expect(
      resolveSource({ repo: `--upload-pack=touch ${marker}`, ref: 'main', cacheDir: path.join(tmp, 'cache') }),
    ).rejects.toThrow(/^refusing repository/);
    await expect(fs.access(marker)).rejects.toThrow();
  });
});
