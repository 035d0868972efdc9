/**
 * Packages and accounts on the machine itself, through the built CLI: a local
 * Host with root `/`, real dpkg (tiny .debs built here with dpkg-deb) and real
 * shadow-utils. Every package and account has this run's test prefix, and
 * `afterAll` purges and deletes whatever of them is left.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildDeb } from '../../src/providers/system/testing/debs.js';
import { assertBuilt, capstan, workspace, type Workspace } from './harness.js';

const run = promisify(execFile);

// Each test runs the CLI several times, and dpkg; on a loaded 2-core machine one call can take seconds.
vi.setConfig({ testTimeout: 240_000 });

const TAG = randomBytes(3).toString('hex');
/** Package names of this run. */
const PKG = `capstan-e2e-${TAG}`;
/** Account names of this run (at most 32 characters, lowercase). */
const ACCT = `cpe2e${TAG}`;

const HOST = 'kind: Host\nname: local\nspec: { transport: local }\n';

let ws: Workspace;
let debs: string;

beforeAll(async () => {
  assertBuilt();
  debs = await mkdtemp(path.join(os.tmpdir(), 'capstan-e2e-debs-'));
});
afterEach(async () => ws?.cleanup());
afterAll(async () => {
  const installed = await run('dpkg-query', ['-W', '-f=${Package}\\n', `${PKG}*`]).then((r) => r.stdout.split('\n').filter(Boolean), () => []);
  if (installed.length > 0) await run('dpkg', ['--purge', ...installed]);
  const passwd = await run('getent', ['passwd']).then((r) => r.stdout);
  for (const line of passwd.split('\n')) if (line.startsWith(ACCT)) await run('userdel', ['-r', line.split(':')[0]!]).catch(() => undefined);
  const group = await run('getent', ['group']).then((r) => r.stdout);
  for (const line of group.split('\n')) if (line.startsWith(ACCT)) await run('groupdel', [line.split(':')[0]!]).catch(() => undefined);
  await rm(debs, { recursive: true, force: true });
});

async function stack(docs: string): Promise<void> {
  ws ??= await workspace();
  await ws.write('stack.yaml', `${HOST}---\n${docs}`);
}

const plan = () => capstan(['plan', ws.repo, '--state', ws.state]);
async function apply(): Promise<void> {
  const r = await capstan(['apply', ws.repo, '--state', ws.state, '--yes']);
  expect(r.stderr).toBe('');
  expect(r.exitCode).toBe(0);
}

async function dpkgVersion(name: string): Promise<string | null> {
  return run('dpkg-query', ['-W', '-f=${Version}', name]).then((r) => r.stdout, () => null);
}

describe('Package on the local machine', () => {
  it('upgrades to the version of a newer .deb given in deb:, showing old -> new in the plan', async () => {
    ws = await workspace();
    const name = `${PKG}-deb`;
    const v1 = await buildDeb(debs, { name, version: '1.0-1' });
    const v2 = await buildDeb(debs, { name, version: '2.0-1' });
    await stack(`kind: Package\nname: p\ntarget: local\nspec: { name: ${name}, deb: ${v1} }\n`);
    await apply();
    expect(await dpkgVersion(name)).toBe('1.0-1');

    await stack(`kind: Package\nname: p\ntarget: local\nspec: { name: ${name}, deb: ${v2} }\n`);
    const planned = await plan();
    expect(planned.stdout).toMatch(/~ version: "1\.0-1" -> "2\.0-1"/);
    await apply();
    expect(await dpkgVersion(name)).toBe('2.0-1');
    expect((await plan()).stdout).toContain('No changes');
  });
});

describe('Package through apt on the local machine, from a file: repository built here', () => {
  /** A private apt configuration (sources, lists, cache) so the machine's own stays untouched; the CLI gets it through APT_CONFIG. */
  async function aptRepository(dir: string) {
    const repo = path.join(dir, 'repo');
    for (const d of [repo, 'lists/partial', 'cache/archives/partial', 'sources.list.d']) await mkdir(path.resolve(dir, d), { recursive: true });
    await writeFile(path.join(dir, 'sources.list'), `deb [trusted=yes] file:${repo} ./\n`);
    // Lists as old as on a machine nobody updated for two days.
    const old = new Date(Date.now() - 2 * 86_400_000);
    await utimes(path.join(dir, 'lists'), old, old);
    const conf = path.join(dir, 'apt.conf');
    await writeFile(
      conf,
      [
        `Dir::Etc::SourceList "${dir}/sources.list";`,
        `Dir::Etc::SourceParts "${dir}/sources.list.d";`,
        `Dir::State::Lists "${dir}/lists";`,
        `Dir::State::extended_states "${dir}/extended_states";`,
        `Dir::Cache "${dir}/cache";`,
        // Counts the apt-get update runs.
        `APT::Update::Pre-Invoke { "echo update >> ${dir}/updates"; };`,
        '',
      ].join('\n'),
    );
    return {
      env: { APT_CONFIG: conf },
      async publish(deb: { name: string; version: string }) {
        await buildDeb(repo, deb);
        const scan = await run('dpkg-scanpackages', ['--multiversion', '.', '/dev/null'], { cwd: repo });
        await writeFile(path.join(repo, 'Packages'), scan.stdout);
      },
      updates: () => readFile(path.join(dir, 'updates'), 'utf8').then((t) => t.split('\n').filter(Boolean).length, () => 0),
    };
  }

  it('installs the latest and a version pattern (resolved in the plan), refreshing the lists at most once a run and only when stale; purges', async () => {
    ws = await workspace();
    const apt = await aptRepository(path.join(path.dirname(ws.repo), 'apt'));
    const cli = (...args: string[]) => capstan([...args, ws.repo, '--state', ws.state], { env: apt.env });
    const a = `${PKG}-latest`;
    const b = `${PKG}-pattern`;
    for (const deb of [{ name: a, version: '1.0-1' }, { name: a, version: '2.0-1' }, { name: b, version: '2.1-1' }, { name: b, version: '3.0-1' }]) await apt.publish(deb);
    const docs = (valid: string, pattern: string) =>
      [
        `kind: Package\nname: a\ntarget: local\nspec: { name: ${a}, state: latest, updateCache: true, cacheValidTime: ${valid} }\n`,
        `kind: Package\nname: b\ntarget: local\nspec: { name: ${b}, version: "${pattern}", updateCache: true, cacheValidTime: ${valid} }\n`,
      ].join('---\n');

    await stack(docs('1h', '2.*'));
    // Not installed yet: the plan shows the versions apt will install, not "candidate" or the pattern.
    const first = await cli('plan');
    expect(first.exitCode).toBe(0);
    expect(first.stdout).toMatch(/Package\/a on Host\/local\n\s+\+ version: "2\.0-1"\n/);
    expect(first.stdout).toMatch(/Package\/b on Host\/local\n\s+\+ version: "2\.1-1"\n/);
    expect(first.stdout).not.toMatch(/candidate|"2\.\*"/);
    const applied = await cli('apply', '--yes');
    expect(applied.stderr).toBe('');
    expect(applied.exitCode).toBe(0);
    expect([await dpkgVersion(a), await dpkgVersion(b)]).toEqual(['2.0-1', '2.1-1']);
    expect(await apt.updates()).toBe(1);

    // A newer version appears. Lists younger than cacheValidTime are not refreshed: apt does not know it yet.
    await apt.publish({ name: a, version: '3.0-1' });
    expect((await cli('plan')).stdout).toContain('No changes');
    expect(await apt.updates()).toBe(1);
    // cacheValidTime 0: one refresh for both packages, and the candidate moved; 2.1-1 still matches 2.*.
    await stack(docs('0', '2.*'));
    const moved = await cli('plan');
    expect(moved.stdout).toMatch(/~ version: "2\.0-1" -> "3\.0-1"/);
    expect(moved.stdout).not.toContain(`Package/b`);
    expect(await apt.updates()).toBe(2);
    // The pattern is shown resolved.
    await stack(docs('1h', '3.*'));
    expect((await cli('plan')).stdout).toMatch(/~ version: "2\.1-1" -> "3\.0-1"/);
    expect((await cli('apply', '--yes')).exitCode).toBe(0);
    expect([await dpkgVersion(a), await dpkgVersion(b)]).toEqual(['3.0-1', '3.0-1']);

    await stack(`kind: Package\nname: b\ntarget: local\nspec: { name: ${b}, state: absent, purge: true }\n`);
    const purge = await cli('plan');
    expect(purge.stdout).toMatch(/~ state: "present" -> "purged"/);
    expect((await cli('apply', '--yes')).exitCode).toBe(0);
    expect(await dpkgVersion(b)).toBeNull();
  });
});

describe('User on the local machine', () => {
  it('creates the missing home of an existing user with createHome: true: owner, login.defs mode, /etc/skel', async () => {
    ws = await workspace();
    const name = `${ACCT}h`;
    const home = `/home/${name}`;
    await rm(home, { recursive: true, force: true });
    await stack(`kind: User\nname: u\ntarget: local\nspec: { name: ${name}, createHome: false }\n`);
    await apply();
    await expect(stat(home)).rejects.toThrow();

    await stack(`kind: User\nname: u\ntarget: local\nspec: { name: ${name}, createHome: true, authorizedKeys: ["ssh-ed25519 AAAAC3Nza ${name}@test"] }\n`);
    const planned = await plan();
    expect(planned.stdout).toMatch(/~ home\.exists: false -> true/);
    await apply();
    const info = await stat(home);
    const ids = await run('id', ['-u', name]).then((r) => Number(r.stdout));
    const gid = await run('id', ['-g', name]).then((r) => Number(r.stdout));
    expect([info.isDirectory(), info.uid, info.gid]).toEqual([true, ids, gid]);
    expect((info.mode & 0o777).toString(8)).toBe(expectedHomeMode());
    const skel = await readdir('/etc/skel');
    expect((await readdir(home)).filter((f) => f !== '.ssh').sort()).toEqual(skel.sort());
    for (const f of skel) expect((await stat(path.join(home, f))).uid).toBe(ids);
    expect((await plan()).stdout).toContain('No changes');
  });
});

describe('User and Group options on the local machine', () => {
  const HASH_1 = '$6$capstan1$qX/0le/cOU3Wl4sI8MYdFYtLmLyYubj8GTJXCqXggv/dFHoVCbFbWWpW08k9K2GGSgqs5gE4Fu3KOrX6Vr4FL.';
  const HASH_2 = '$6$capstan2$rv4awsTI.vbC2gDM1n1zZbD06kPktU3GBqmPfsXqyqdcyZtDpUjf2Sxpd.Vjpi.OoDP4P9HRDpNo5xBcLJSjL1';
  const shadowOf = async (name: string) => (await readFile('/etc/shadow', 'utf8')).split('\n').find((l) => l.startsWith(`${name}:`)) ?? '';

  it('sets a password from an age secret without showing it anywhere, expiry, lock, groups by gid; refuses to delete a primary group in use', async () => {
    ws = await workspace();
    const base = path.dirname(ws.repo);
    const identity = path.join(base, 'identity.txt');
    await run('age-keygen', ['-o', identity]);
    const recipient = (await run('age-keygen', ['-y', identity])).stdout.trim();
    const seal = async (hash: string) => {
      await mkdir(path.join(ws.repo, 'secrets'), { recursive: true });
      const child = execFile('age', ['-r', recipient, '-o', path.join(ws.repo, 'secrets/pw.age')]);
      child.stdin!.end(hash);
      await new Promise((resolve, reject) => child.on('exit', (code) => (code === 0 ? resolve(code) : reject(new Error(`age exited ${code}`)))));
    };
    const env = { CAPSTAN_AGE_IDENTITY_FILE: identity };
    const cli = (...args: string[]) => capstan([...args, ws.repo, '--state', ws.state], { env });
    const name = `${ACCT}p`;
    const group = `${ACCT}g`;
    const users = Number((await run('getent', ['group', 'users'])).stdout.split(':')[2]);
    const docs = (user: string, withGroup = true) =>
      [
        ...(withGroup ? [`kind: Group\nname: g\ntarget: local\nspec: { name: ${group} }\n`] : []),
        `kind: User\nname: u\ntarget: local\nspec:\n  name: ${name}\n  group: ${group}\n  groups: [${users}]\n  appendGroups: true\n  removeHome: true\n  password: { secret: secrets/pw.age }\n${user}`,
      ].join('---\n');

    await seal(HASH_1);
    await stack(docs(`  expires: "2031-01-01"\n`));
    const first = await cli('plan');
    expect(first.stdout).toMatch(/\+ password: \(sensitive\)/);
    const applied = await cli('apply', '--yes');
    expect(applied.stderr).toBe('');
    expect(applied.exitCode).toBe(0);
    expect(await shadowOf(name)).toMatch(new RegExp(`^${name}:\\$6\\$capstan1\\$[^:]+:\\d+:\\d*:\\d*:\\d*:\\d*:${Date.UTC(2031, 0, 1) / 86_400_000}:`));
    expect((await run('id', ['-Gn', name])).stdout.split(/\s+/)).toEqual(expect.arrayContaining([group, 'users']));
    expect((await cli('plan')).stdout).toContain('No changes');

    await seal(HASH_2);
    const changed = await cli('plan', '--json');
    expect(changed.stdout).toContain('(sensitive value changed)');
    expect((await cli('plan')).stdout).toMatch(/~ password: \(sensitive value changed\)/);
    await stack(docs(`  expires: "2031-01-01"\n  locked: true\n`));
    expect((await cli('plan')).stdout).toMatch(/~ locked: false -> true/);
    expect((await cli('apply', '--yes')).exitCode).toBe(0);
    expect(await shadowOf(name)).toMatch(new RegExp(`^${name}:!\\$6\\$capstan2\\$`));

    // No output and no byte of the store holds either hash.
    const store = ws.state.slice('sqlite:'.length);
    const stored = Buffer.concat(await Promise.all([store, `${store}-wal`].map((f) => readFile(f).catch(() => Buffer.alloc(0)))));
    for (const hash of [HASH_1, HASH_2]) {
      const salt = hash.split('$')[3]!.slice(0, 20);
      for (const text of [first.stdout, first.stderr, applied.stdout, applied.stderr, changed.stdout, stored.toString('latin1')]) expect(text).not.toContain(salt);
    }

    // The Group goes while the User stays: the plan refuses.
    await stack(docs(`  expires: "2031-01-01"\n  locked: true\n`, false));
    const refused = await cli('plan');
    expect(refused.exitCode).toBe(1);
    expect(refused.stdout + refused.stderr).toMatch(new RegExp(`group ${group} is the primary group of user ${name}: .*force: true`));

    // Both go: the user (and its home, removeHome) first, then the group.
    await ws.write('stack.yaml', HOST);
    const deleted = await cli('apply', '--yes', '--allow-mass-delete');
    expect(deleted.stdout + deleted.stderr).toMatch(/Plan: 0 to create, 0 to update, 0 to replace, 2 to delete/);
    expect(deleted.exitCode).toBe(0);
    await expect(run('getent', ['passwd', name])).rejects.toThrow();
    await expect(run('getent', ['group', group])).rejects.toThrow();
    await expect(stat(`/home/${name}`)).rejects.toThrow();
  });
});

/** What useradd -m would give on this machine: HOME_MODE, else 0777 & ~UMASK, else 0750 (as octal digits). */
function expectedHomeMode(): string {
  let text = '';
  try {
    text = readFileSync('/etc/login.defs', 'utf8');
  } catch {
    // no login.defs: useradd's default
  }
  const setting = (key: string) => new RegExp(`^\\s*${key}\\s+(\\S+)`, 'm').exec(text)?.[1];
  const homeMode = setting('HOME_MODE');
  const umask = setting('UMASK');
  if (homeMode) return Number.parseInt(homeMode, 8).toString(8);
  if (umask) return (0o777 & ~Number.parseInt(umask, 8)).toString(8);
  return '750';
}
