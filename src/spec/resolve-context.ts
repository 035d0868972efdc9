/**
 * The real `ResolveContext`: lets a provider's `resolve` read files of the user's
 * repository, and nothing else. A path is refused when it is absolute, leaves the
 * repository (by `..` or through a symlink), is not a regular file, or is too big.
 */
import { constants } from 'node:fs';
import { lstat, open, readdir, realpath } from 'node:fs/promises';
import path from 'node:path';
import type { ResolveContext } from '../providers/provider.js';
import type { Keyring } from '../secrets/keyring.js';
import { MAX_FILE_BYTES } from './parse-yaml.js';

/** A file a provider asked for could not be read; the message is user-facing. */
export class ResolveFileError extends Error {
  constructor(
    message: string,
    /** The path exactly as the spec wrote it. */
    readonly requestedPath: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'ResolveFileError';
  }
}

export interface ResolveContextOptions {
  readonly maxFileBytes?: number;
  /** Seals values a provider marks secret (`ctx.seal`); without it `seal` is absent. */
  readonly keyring?: Keyring | undefined;
}

/**
 * `repoDir` must be absolute. `fromFile` (the document naming the path) may be
 * relative to `repoDir`, as in diagnostics, or absolute inside it.
 */
export function createResolveContext(repoDir: string, options: ResolveContextOptions = {}): ResolveContext {
  const maxBytes = options.maxFileBytes ?? MAX_FILE_BYTES;
  const root = path.resolve(repoDir);
  let realRoot: Promise<string> | undefined;

  const inside = (parent: string, child: string): boolean => {
    const rel = path.relative(parent, child);
    return rel === '' || (!rel.startsWith(`..${path.sep}`) && rel !== '..' && !path.isAbsolute(rel));
  };

  const keyring = options.keyring;
  return {
    repoDir: root,
    ...(keyring ? { seal: (value: string) => keyring.seal(value) } : {}),
    async listFiles(relativeDir: string, fromFile: string): Promise<string[]> {
      const fail = (why: string, cause?: unknown): never => {
        throw new ResolveFileError(`cannot list ${JSON.stringify(relativeDir)}: ${why}`, relativeDir, cause === undefined ? undefined : { cause });
      };
      if (relativeDir.includes('\0')) fail('the path contains a NUL byte');
      if (path.isAbsolute(relativeDir)) fail('absolute paths are not allowed; write a path relative to this file');
      const dir = path.resolve(path.dirname(path.resolve(root, fromFile)), relativeDir);
      const shown = path.relative(root, dir) || '.';
      if (!inside(root, dir)) fail('the path leaves the repository');
      realRoot ??= realpath(root);
      let real: string;
      try {
        real = await realpath(dir);
      } catch (e) {
        return fail(`no such directory (${shown} in the repository)`, e);
      }
      if (!inside(await realRoot, real)) fail('the path leads out of the repository through a symlink');
      const found: string[] = [];
      const walk = async (abs: string, rel: string): Promise<void> => {
        const st = await lstat(abs);
        if (st.isSymbolicLink()) fail(`${path.join(shown, rel)} is a symbolic link: a source tree holds regular files and directories only`);
        if (st.isDirectory()) {
          for (const name of (await readdir(abs)).sort()) await walk(path.join(abs, name), rel === '' ? name : `${rel}/${name}`);
        } else if (st.isFile()) found.push(rel);
        else fail(`${path.join(shown, rel)} is not a regular file`);
      };
      const top = await lstat(real);
      if (!top.isDirectory()) fail(`${shown} is not a directory`);
      await walk(real, '');
      return found.sort();
    },
    async readFile(relativePath: string, fromFile: string): Promise<Buffer> {
      const fail = (why: string, cause?: unknown): never => {
        throw new ResolveFileError(`cannot read ${JSON.stringify(relativePath)}: ${why}`, relativePath, cause === undefined ? undefined : { cause });
      };
      if (typeof relativePath !== 'string' || relativePath === '') fail('empty path');
      if (relativePath.includes('\0')) fail('the path contains a NUL byte');
      if (path.isAbsolute(relativePath)) fail('absolute paths are not allowed; write a path relative to this file');

      const fromDir = path.dirname(path.resolve(root, fromFile));
      const candidate = path.resolve(fromDir, relativePath);
      const shown = path.relative(root, candidate) || '.';
      if (!inside(root, candidate)) fail('the path leaves the repository');

      realRoot ??= realpath(root);
      let real: string;
      try {
        real = await realpath(candidate);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        return fail(code === 'ENOENT' ? `no such file (${shown} in the repository)` : `${code ?? 'error'} resolving ${shown}`, e);
      }
      if (!inside(await realRoot, real)) fail('the path leads out of the repository through a symlink');

      let handle;
      try {
        // O_NONBLOCK: a FIFO planted in the repository must not hang the load.
        handle = await open(real, constants.O_RDONLY | constants.O_NONBLOCK);
      } catch (e) {
        return fail(`${(e as NodeJS.ErrnoException).code ?? 'error'} opening ${shown}`, e);
      }
      try {
        const stat = await handle.stat();
        if (!stat.isFile()) fail(`${shown} is not a regular file`);
        if (stat.size > maxBytes) fail(`${shown} is ${stat.size} bytes, over the limit of ${maxBytes}`);
        // One byte more than the size: reading it means the file grew since fstat.
        const buffer = Buffer.alloc(stat.size + 1);
        let length = 0;
        for (;;) {
          const wanted = buffer.length - length;
          const { bytesRead } = await handle.read(buffer, length, wanted, length);
          length += bytesRead;
          // A short read of a regular file is its end.
          if (bytesRead < wanted || length === buffer.length) break;
        }
        if (length > stat.size) fail(`${shown} changed while it was read`);
        return buffer.subarray(0, length);
      } finally {
        await handle.close();
      }
    },
  };
}
