/**
 * What Ansible's own module tests expect of File and its owner, through the
 * built CLI on a local host:
 *
 * - a File owned by a User and Group declared in the same stack converges on the
 *   FIRST apply: the graph orders it after them, and the plan says so;
 * - an owner the host lacks, with no User in the stack, is a plan error at the
 *   owner field (Ansible's check mode), and apply changes nothing;
 * - a FIFO or a socket where a File must go is a plan error naming the type,
 *   not a replace that apply refuses every time.
 *
 * The accounts are real (useradd on this machine, names with a random test
 * prefix, removed afterwards), so their Host has root `/`; its File lives in a
 * temp directory.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { populateAccounts } from '../../src/providers/system/testing/accounts.js';
import { assertBuilt, capstan, fileDoc, hostDoc, workspace, type Workspace } from './harness.js';

// Each test runs the CLI several times; on a loaded 2-core machine one call can take seconds.
vi.setConfig({ testTimeout: 240_000 });

interface PlanJson {
  changes: { address: string; action: string; dependsOn: string[] }[];
  diagnostics: { severity: string; summary: string; address?: string }[];
}

let ws: Workspace | undefined;
const accounts: { users: string[]; groups: string[] } = { users: [], groups: [] };
beforeAll(assertBuilt);
afterEach(async () => {
  // Only what a test made (a failed test may have made nothing).
  for (const user of accounts.users.splice(0)) if (exists('passwd', user)) execFileSync('userdel', ['--', user], { stdio: 'ignore' });
  for (const group of accounts.groups.splice(0)) if (exists('group', group)) execFileSync('groupdel', ['--', group], { stdio: 'ignore' });
  await ws?.cleanup();
  ws = undefined;
});

const plan = (w: Workspace, ...extra: string[]) => capstan(['plan', w.repo, '--state', w.state, ...extra]);
const apply = (w: Workspace) => capstan(['apply', w.repo, '--state', w.state, '--yes']);

/** `FILE:LINE:COL` of the first value after `key:` in a file of the repository, as written by `fileDoc`. */
function positionOf(file: string, text: string, key: string): string {
  const lines = text.split('\n');
  const line = lines.findIndex((l) => l.trimStart().startsWith(`${key}:`));
  const col = lines[line]!.indexOf(':') + 3;
  return `${file}:${line + 1}:${col}`;
}

function exists(kind: 'passwd' | 'group', name: string): boolean {
  try {
    execFileSync('getent', [kind, name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('a File and the accounts it is owned by', () => {
  it('converges on the first apply when its owner and group are a User and Group of the same stack, and the plan shows the order', async () => {
    const w = (ws = await workspace());
    const suffix = randomBytes(4).toString('hex');
    const user = `capst-own-${suffix}`;
    const group = `capst-grp-${suffix}`;
    accounts.users.push(user);
    accounts.groups.push(group);
    const target = path.join(path.dirname(w.root), 'owned', 'app.conf');
    await w.write('host.yaml', 'kind: Host\nname: box\nspec: { transport: local }\n');
    await w.write(
      'stack.yaml',
      [
        `kind: User\nname: app\ntarget: box\nspec: { name: ${user}, group: ${group}, createHome: false, system: true }\n`,
        `kind: Group\nname: app\ntarget: box\nspec: { name: ${group}, system: true }\n`,
        fileDoc('conf', 'box', { path: target, content: 'secret=1\n', mode: '0640', owner: user, group }),
      ].join('---\n'),
    );

    const json = await plan(w, '--json');
    expect(json.exitCode).toBe(0);
    const planned = JSON.parse(json.stdout) as PlanJson;
    expect(planned.changes.find((c) => c.address === 'File/conf')?.dependsOn).toEqual(['Group/app', 'User/app']);
    expect(planned.diagnostics).toEqual([
      expect.objectContaining({ severity: 'warning', address: 'File/conf', summary: `user "${user}" does not exist on Host/box yet: User/app creates it first` }),
      expect.objectContaining({ severity: 'warning', address: 'File/conf', summary: `group "${group}" does not exist on Host/box yet: Group/app creates it first` }),
    ]);
    const text = await plan(w);
    expect(text.stdout).toContain(`File/conf: warning: user "${user}" does not exist on Host/box yet: User/app creates it first`);
    expect(text.stdout).toContain('Plan: 3 to create');

    const applied = await apply(w);
    expect(applied.stderr).toBe('');
    expect(applied.exitCode).toBe(0);
    const uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('getent', ['group', group], { encoding: 'utf8' }).split(':')[2]);
    const st = await stat(target);
    expect({ uid: st.uid, gid: st.gid, mode: st.mode & 0o777 }).toEqual({ uid, gid, mode: 0o640 });

    const again = await plan(w, '--detailed-exitcode');
    expect(again.stdout).toContain('No changes');
    expect(again.exitCode).toBe(0);
  });

  it('converges on the first apply on a Host with a root: owner and group resolve in <root>/etc/passwd and <root>/etc/group, not the machine', async () => {
    const w = (ws = await workspace());
    await populateAccounts(w.root);
    const suffix = randomBytes(4).toString('hex');
    const user = `capst-rown-${suffix}`;
    const group = `capst-rgrp-${suffix}`;
    // Ids no account of this machine has, so only <root>'s databases can give them.
    const uid = 40_000 + (Number.parseInt(suffix.slice(0, 4), 16) % 10_000);
    const gid = uid + 1;
    await w.write('host.yaml', hostDoc('box', w.root));
    await w.write(
      'stack.yaml',
      [
        `kind: User\nname: app\ntarget: box\nspec: { name: ${user}, uid: ${uid}, group: ${group}, createHome: false }\n`,
        `kind: Group\nname: app\ntarget: box\nspec: { name: ${group}, gid: ${gid} }\n`,
        fileDoc('conf', 'box', { path: '/etc/app.conf', content: 'x=1\n', mode: '0640', owner: user, group }),
        `kind: Directory\nname: data\ntarget: box\nspec: { path: /srv/data, owner: ${user}, group: ${group}, mode: "0750", recurse: true }\n`,
        `kind: Symlink\nname: link\ntarget: box\nspec: { path: /srv/current, target: /srv/data, owner: ${user}, group: ${group} }\n`,
      ].join('---\n'),
    );
    expect(exists('passwd', user)).toBe(false);
    // A file already below the Directory, root's: recurse: true gives it the Directory's owner.
    await mkdir(path.join(w.root, 'srv/data'), { recursive: true });
    await writeFile(path.join(w.root, 'srv/data/inner.txt'), 'y\n');

    const applied = await apply(w);
    expect(applied.stderr).toBe('');
    expect(applied.exitCode).toBe(0);
    const passwd = (await readFile(path.join(w.root, 'etc/passwd'), 'utf8')).split('\n').find((l) => l.startsWith(`${user}:`));
    const groupLine = (await readFile(path.join(w.root, 'etc/group'), 'utf8')).split('\n').find((l) => l.startsWith(`${group}:`));
    expect(Number(passwd?.split(':')[2])).toBe(uid);
    expect(Number(groupLine?.split(':')[2])).toBe(gid);
    for (const rel of ['etc/app.conf', 'srv/data', 'srv/current', 'srv/data/inner.txt']) {
      const st = await lstat(path.join(w.root, rel));
      expect({ rel, uid: st.uid, gid: st.gid }).toEqual({ rel, uid, gid });
    }
    expect(exists('passwd', user)).toBe(false);

    // The live owner reads back by <root>'s names: nothing to change.
    const again = await plan(w, '--detailed-exitcode');
    expect(again.stdout).toContain('No changes');
    expect(again.exitCode).toBe(0);
  });

  it('is a plan error at the owner field when the host has no such user and the stack declares none; apply changes nothing', async () => {
    const w = (ws = await workspace());
    const user = `capst-none-${randomBytes(4).toString('hex')}`;
    expect(exists('passwd', user)).toBe(false);
    const doc = fileDoc('conf', 'web-1', { path: '/etc/app.conf', content: 'x\n', owner: user, group: 'root' });
    await w.write('hosts.yaml', hostDoc('web-1', w.root));
    await w.write('app.yaml', doc);

    const planned = await plan(w);
    expect(planned.exitCode).toBe(1);
    expect(planned.stderr).toContain(`${positionOf('app.yaml', doc, 'owner')}: File/conf: user "${user}" does not exist on Host/web-1`);
    expect(planned.stderr).toContain('The plan has errors');

    const applied = await apply(w);
    expect(applied.exitCode).toBe(1);
    expect(`${applied.stdout}${applied.stderr}`).toContain(`user "${user}" does not exist on Host/web-1`);
    await expect(lstat(path.join(w.root, 'etc/app.conf'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('a special file where a File must go', () => {
  let server: Server | undefined;
  afterEach(async () => {
    await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
    server = undefined;
  });

  it('is a plan error naming a FIFO and a socket at the path field; apply leaves both in place', async () => {
    const w = (ws = await workspace());
    await mkdir(path.join(w.root, 'run'), { recursive: true });
    execFileSync('mkfifo', [path.join(w.root, 'run/app.fifo')]);
    const sock = path.join(w.root, 'run/app.sock');
    const listening = createServer();
    server = listening;
    await new Promise<void>((resolve) => listening.listen(sock, resolve));
    const fifoDoc = fileDoc('fifo', 'web-1', { path: '/run/app.fifo', content: 'x\n' });
    const sockDoc = fileDoc('sock', 'web-1', { path: '/run/app.sock', content: 'x\n' });
    await w.write('hosts.yaml', hostDoc('web-1', w.root));
    await w.write('fifo.yaml', fifoDoc);
    await w.write('sock.yaml', sockDoc);

    const planned = await plan(w);
    expect(planned.exitCode).toBe(1);
    expect(planned.stderr).toContain(
      `${positionOf('fifo.yaml', fifoDoc, 'path')}: File/fifo: /run/app.fifo is a FIFO: Capstan does not replace a FIFO with a file`,
    );
    expect(planned.stderr).toContain(
      `${positionOf('sock.yaml', sockDoc, 'path')}: File/sock: /run/app.sock is a socket: Capstan does not replace a socket with a file`,
    );
    expect(planned.stderr).not.toContain('a other');

    const json = JSON.parse((await plan(w, '--json')).stdout) as PlanJson;
    expect(json.diagnostics.filter((d) => d.severity === 'error').map((d) => d.address)).toEqual(['File/fifo', 'File/sock']);

    expect((await apply(w)).exitCode).toBe(1);
    expect((await lstat(path.join(w.root, 'run/app.fifo'))).isFIFO()).toBe(true);
    expect((await lstat(sock)).isSocket()).toBe(true);
  });
});
