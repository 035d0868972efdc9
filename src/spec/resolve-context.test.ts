import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createResolveContext, ResolveFileError } from './resolve-context.js';

let base: string;
let repo: string;

beforeAll(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'capstan-resolve-'));
  repo = path.join(base, 'repo');
  await mkdir(path.join(repo, 'stacks/web/files'), { recursive: true });
  await mkdir(path.join(repo, 'shared'), { recursive: true });
  await writeFile(path.join(repo, 'stacks/web/files/motd.txt'), 'hello\n');
  await writeFile(path.join(repo, 'shared/common.txt'), 'common\n');
  await writeFile(path.join(repo, 'big.bin'), Buffer.alloc(2048, 1));
  await writeFile(path.join(base, 'outside.txt'), 'secret\n');
  await symlink(path.join(base, 'outside.txt'), path.join(repo, 'shared/escape.txt'));
  await symlink('common.txt', path.join(repo, 'shared/alias.txt'));
  await symlink(base, path.join(repo, 'shared/up'));
  execFileSync('mkfifo', [path.join(repo, 'shared/fifo')]);
});

afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

async function failure(p: Promise<unknown>): Promise<ResolveFileError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(ResolveFileError);
  return e as ResolveFileError;
}

describe('createResolveContext', () => {
  it('reads a path relative to the document that names it', async () => {
    const ctx = createResolveContext(repo);
    expect(ctx.repoDir).toBe(repo);
    expect((await ctx.readFile('files/motd.txt', 'stacks/web/app.yaml')).toString()).toBe('hello\n');
    expect((await ctx.readFile('../../shared/common.txt', 'stacks/web/app.yaml')).toString()).toBe('common\n');
    // An absolute fromFile inside the repository works too.
    expect((await ctx.readFile('files/motd.txt', path.join(repo, 'stacks/web/app.yaml'))).toString()).toBe('hello\n');
  });

  it('follows symlinks that stay inside the repository', async () => {
    const ctx = createResolveContext(repo);
    expect((await ctx.readFile('alias.txt', 'shared/x.yaml')).toString()).toBe('common\n');
  });

  it('refuses absolute paths', async () => {
    const e = await failure(createResolveContext(repo).readFile('/etc/passwd', 'a.yaml'));
    expect(e.message).toBe('cannot read "/etc/passwd": absolute paths are not allowed; write a path relative to this file');
    expect(e.requestedPath).toBe('/etc/passwd');
  });

  it('refuses paths that leave the repository', async () => {
    const e = await failure(createResolveContext(repo).readFile('../../../outside.txt', 'stacks/web/app.yaml'));
    expect(e.message).toBe('cannot read "../../../outside.txt": the path leaves the repository');
  });

  it('refuses symlinks that lead out of the repository', async () => {
    const ctx = createResolveContext(repo);
    expect((await failure(ctx.readFile('escape.txt', 'shared/x.yaml'))).message).toBe(
      'cannot read "escape.txt": the path leads out of the repository through a symlink',
    );
    expect((await failure(ctx.readFile('up/outside.txt', 'shared/x.yaml'))).message).toMatch(/through a symlink/);
  });

  it('refuses missing files, directories, FIFOs and files over the limit', async () => {
    const ctx = createResolveContext(repo, { maxFileBytes: 1024 });
    expect((await failure(ctx.readFile('nope.txt', 'stacks/web/app.yaml'))).message).toBe(
      'cannot read "nope.txt": no such file (stacks/web/nope.txt in the repository)',
    );
    expect((await failure(ctx.readFile('files', 'stacks/web/app.yaml'))).message).toBe('cannot read "files": stacks/web/files is not a regular file');
    expect((await failure(ctx.readFile('fifo', 'shared/x.yaml'))).message).toBe('cannot read "fifo": shared/fifo is not a regular file');
    expect((await failure(ctx.readFile('big.bin', 'a.yaml'))).message).toBe('cannot read "big.bin": big.bin is 2048 bytes, over the limit of 1024');
    expect((await createResolveContext(repo, { maxFileBytes: 2048 }).readFile('big.bin', 'a.yaml')).length).toBe(2048);
  });

  it('refuses empty paths and NUL bytes', async () => {
    const ctx = createResolveContext(repo);
    expect((await failure(ctx.readFile('', 'a.yaml'))).message).toBe('cannot read "": empty path');
    expect((await failure(ctx.readFile('a\0b', 'a.yaml'))).message).toMatch(/NUL byte/);
  });
});

describe('createResolveContext listFiles', () => {
  it('lists the regular files below a directory, sorted, relative to it', async () => {
    const ctx = createResolveContext(repo);
    expect(await ctx.listFiles!('files', 'stacks/web/app.yaml')).toEqual(['motd.txt']);
    expect(await ctx.listFiles!('stacks/', 'top.yaml')).toEqual(['web/files/motd.txt']);
  });

  it('refuses a directory outside the repository, and a tree holding a symbolic link', async () => {
    const ctx = createResolveContext(repo);
    expect((await failure(ctx.listFiles!('../../..', 'stacks/web/app.yaml'))).message).toMatch(/leaves the repository/);
    expect((await failure(ctx.listFiles!('shared/up/', 'top.yaml'))).message).toMatch(/leads out of the repository through a symlink/);
    expect((await failure(ctx.listFiles!('shared/', 'top.yaml'))).message).toMatch(/shared\/alias\.txt is a symbolic link/);
  });
});
