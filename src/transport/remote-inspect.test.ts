/**
 * The remote inspect script, run here through `sh -c` (no SSH involved) and
 * compared with LocalTransport on the same tree: both interpreters must give
 * exactly the answers the local transport gives.
 */
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalTransport } from './local.js';
import { encodePaths, FIND_PYTHON, helperCommand, inspectCommand, parseInspectOutput, parseRealpathOutput, type RemoteInterpreter } from './remote-inspect.js';
import type { InspectOptions } from './transport.js';

let dir: string;
let root: string;
const local = new LocalTransport();
const ODD = "name with\nnewline 'quote' \"dq\" $x `y` \\ *";

async function runScript(
  interpreter: RemoteInterpreter,
  op: 'inspect' | 'realpath',
  paths: readonly string[],
  options: InspectOptions,
): Promise<Buffer> {
  const [file, ...args] = inspectCommand(op, {
    interpreter,
    confineTo: options.confineTo ?? '',
    maxContentBytes: options.maxContentBytes,
    content: options.content,
  });
  const r = await execa(file!, args, { input: encodePaths(paths), encoding: 'buffer', stripFinalNewline: false });
  return Buffer.from(r.stdout);
}

async function remoteInspect(interpreter: RemoteInterpreter, paths: readonly string[], options: InspectOptions) {
  return parseInspectOutput(await runScript(interpreter, 'inspect', paths, options), paths, options.maxContentBytes);
}

beforeAll(async () => {
  dir = await fs.realpath(await fs.mkdtemp(join(tmpdir(), 'capstan-remote-inspect-')));
  root = join(dir, 'root');
  const outside = join(dir, 'outside');
  await fs.mkdir(join(root, 'd'), { recursive: true });
  await fs.mkdir(outside);
  await fs.writeFile(join(outside, 'secret'), 'secret');
  await fs.writeFile(join(root, 'f'), 'hi');
  await fs.chmod(join(root, 'f'), 0o4750);
  await fs.writeFile(join(root, 'big'), 'x'.repeat(2000));
  await fs.writeFile(join(root, 'bin'), Buffer.from([0, 1, 2, 255, 0, 10]));
  await fs.writeFile(join(root, 'empty'), '');
  await fs.writeFile(join(root, ODD), 'odd\n');
  await fs.writeFile(join(root, 'ünï cödé ✓'), 'unicode\n');
  await fs.writeFile(join(root, '-dash'), 'dash');
  await fs.chown(join(root, '-dash'), 65534, 65534);
  await fs.chown(join(root, 'bin'), 4242, 4343);
  await fs.symlink('d', join(root, 'l'));
  await fs.symlink('../outside', join(root, 'escape'));
  await fs.symlink('missing-target', join(root, 'dangle'));
  await fs.symlink('loop2', join(root, 'loop1'));
  await fs.symlink('loop1', join(root, 'loop2'));
  await fs.symlink('d', join(root, 'inner'));
  await fs.symlink('f', join(root, 'tofile'));
  await fs.symlink(ODD, join(root, 'to-odd'));
  await execa('mkfifo', [join(root, 'fifo')]);
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

const names = [
  'f',
  'big',
  'bin',
  'empty',
  ODD,
  'ünï cödé ✓',
  '-dash',
  'd',
  'l',
  'fifo',
  'missing',
  'f/under-a-file',
  'escape',
  'escape/secret',
  'escape/new/deeper',
  'dangle',
  'dangle/x',
  'dangle/x/y',
  'loop1/x',
  'inner/x',
  'inner/x/y',
  'tofile/x',
  'missing/deeper/x',
  'to-odd',
];

describe.each(['python3', 'sh'] as const)('the inspect script under %s', (interpreter) => {
  const paths = () => [...names.map((n) => join(root, n)), join(dir, 'outside/secret'), join(dir, 'root')];

  it('answers exactly as LocalTransport does, without confinement', async () => {
    const options: InspectOptions = { content: true, maxContentBytes: 1024 };
    const unconfined = paths().filter((p) => !p.endsWith('loop1/x'));
    expect(await remoteInspect(interpreter, unconfined, options)).toEqual(await local.inspect(unconfined, options));
  });

  it('rejects, as LocalTransport does, a path it cannot look up (a symbolic link loop)', async () => {
    const options: InspectOptions = { content: false, maxContentBytes: 0 };
    const loop = [join(root, 'loop1/x')];
    await expect(local.inspect(loop, options)).rejects.toMatchObject({ code: 'ELOOP' });
    await expect(remoteInspect(interpreter, loop, options)).rejects.toMatchObject({ code: 'ELOOP', path: loop[0] });
  });

  it('answers exactly as LocalTransport does, confined to the root (escapes and dangling links)', async () => {
    const options: InspectOptions = { content: true, maxContentBytes: 1024, confineTo: root };
    const remote = await remoteInspect(interpreter, paths(), options);
    expect(remote).toEqual(await local.inspect(paths(), options));
    // The comparison is only worth something if the tree really has escapes of each sort.
    expect(remote.filter((i) => i.escape?.dangling === true).length).toBeGreaterThan(0);
    expect(remote.filter((i) => i.escape?.symlink === join(root, 'escape')).length).toBeGreaterThan(0);
    expect(remote.filter((i) => i.escape !== null && i.escape.symlink === null).length).toBeGreaterThan(0);
  });

  it('tells where a path really is through a linked directory inside the root, as LocalTransport does', async () => {
    const options: InspectOptions = { content: false, maxContentBytes: 0, confineTo: root };
    const aliases = [join(root, 'inner/x'), join(root, 'd/x'), join(root, 'l'), join(root, 'escape/secret')];
    const remote = await remoteInspect(interpreter, aliases, options);
    expect(remote.map((i) => i.realPath)).toEqual([join(root, 'd/x'), join(root, 'd/x'), join(root, 'l'), null]);
    expect(remote).toEqual(await local.inspect(aliases, options));
  });

  it('answers as LocalTransport does without content, and for an empty batch', async () => {
    const options: InspectOptions = { content: false, maxContentBytes: 0, confineTo: root };
    expect(await remoteInspect(interpreter, paths(), options)).toEqual(await local.inspect(paths(), options));
    expect(await remoteInspect(interpreter, [], options)).toEqual([]);
  });

  it('resolves real paths as LocalTransport does', async () => {
    const paths = ['inner/x/y', 'escape', 'dangle/x', 'missing/a', 'd', ODD, 'l'].map((n) => join(root, n));
    const out = await runScript(interpreter, 'realpath', paths, { content: false, maxContentBytes: 0 });
    expect(parseRealpathOutput(out, paths.length)).toEqual(await Promise.all(paths.map((p) => local.realpath(p))));
  });
});

describe('parseInspectOutput', () => {
  it('refuses an answer that was cut short or did not start', async () => {
    const paths = [join(root, 'f'), join(root, 'd')];
    const out = await runScript('sh', 'inspect', paths, { content: true, maxContentBytes: 1024 });
    expect(parseInspectOutput(out, paths, 1024)).toHaveLength(2);
    expect(() => parseInspectOutput(out.subarray(0, out.length - 10), paths, 1024)).toThrow(/cut short/);
    expect(() => parseInspectOutput(out, paths.slice(0, 1), 1024)).toThrow(/more paths than asked/);
    expect(() => parseInspectOutput(Buffer.from('sh: 1: python3: not found\n'), paths, 1024)).toThrow(/did not start/);
  });

  it('reports a path it could not inspect with its errno name', () => {
    const out = Buffer.from('CAPSTAN1\0\0\0X\0EACCES\0Permission denied\0END\0');
    expect(() => parseInspectOutput(out, ['/x'], 10)).toThrow(expect.objectContaining({ code: 'EACCES', path: '/x' }));
  });
});

describe('which python3 the scripts run', () => {
  /** A directory whose `python3` leaves a mark and fails, put first on PATH: a pyenv shim, say. */
  async function shimFirstOnPath(): Promise<{ env: Record<string, string>; mark: string }> {
    const bin = join(dir, `shim-${Math.random().toString(16).slice(2)}`);
    const mark = join(bin, 'ran');
    await fs.mkdir(bin);
    await fs.writeFile(join(bin, 'python3'), `#!/bin/sh\ntouch '${mark}'\nexit 3\n`, { mode: 0o755 });
    return { env: { PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}` }, mark };
  }

  it.skipIf(!existsSync('/usr/bin/python3'))('prefers /usr/bin/python3 to a python3 found earlier on PATH', async () => {
    const { env, mark } = await shimFirstOnPath();
    const [file, ...args] = inspectCommand('inspect', { interpreter: 'python3', confineTo: '', maxContentBytes: 0, content: false });
    const r = await execa(file!, args, { input: encodePaths([root]), encoding: 'buffer', env });
    expect(parseInspectOutput(Buffer.from(r.stdout), [root], 0)[0]?.type).toBe('directory');
    const [helperFile, ...helperArgs] = helperCommand();
    const helper = await execa(helperFile!, helperArgs, { input: '', env, reject: false });
    expect(helper.stdout).toBe('CAPSTAN-HELPER1');
    expect(existsSync(mark)).toBe(false);
  });

  it.skipIf(process.getuid?.() !== 0 || !existsSync('/usr/bin/python3'))('falls back to the python3 on PATH when the system has none', async () => {
    const { env } = await shimFirstOnPath();
    // In a mount namespace of its own, the system python3 becomes /dev/null, which cannot be executed.
    const r = await execa('unshare', ['-m', 'sh', '-c', `mount --bind /dev/null "$(readlink -f /usr/bin/python3)" && ${FIND_PYTHON} && echo "$py"`], { env });
    expect(r.stdout).toBe(join(env.PATH!.split(':')[0]!, 'python3'));
  });
});
