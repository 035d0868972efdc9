import * as fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testResource } from '../host/testing/sandbox.js';
import { parseGroup, parsePasswd } from './accounts.js';
import { groupProvider, groupSchema, refuseGroupDelete, type GroupLive } from './group.js';
import { populateAccounts } from './testing/accounts.js';
import { converge, ctx, openTestHost, remove, schemaErrors, type TestHost } from './testing/hosts.js';
import { diffUser, homeModeOf, userProvider, userSchema, type UserLive, type UserSpec } from './user.js';

const HASH_1 = '$6$capstan1$qX/0le/cOU3Wl4sI8MYdFYtLmLyYubj8GTJXCqXggv/dFHoVCbFbWWpW08k9K2GGSgqs5gE4Fu3KOrX6Vr4FL.';
const HASH_2 = '$6$capstan2$rv4awsTI.vbC2gDM1n1zZbD06kPktU3GBqmPfsXqyqdcyZtDpUjf2Sxpd.Vjpi.OoDP4P9HRDpNo5xBcLJSjL1';
const escape = (text: string) => text.replace(/[$.*+?^(){}|[\]\\/]/g, '\\$&');

const user = (input: Record<string, unknown>): UserSpec => userSchema.parse({ name: 'alice', ...input });
const live = (overrides: Partial<UserLive> = {}): UserLive => ({
  name: 'alice',
  uid: 2001,
  gid: 2000,
  group: 'ops',
  groups: ['adm', 'staff'],
  groupIds: [4, 50],
  shell: '/bin/bash',
  home: '/home/alice',
  comment: 'Alice',
  authorizedKeys: null,
  ...overrides,
});

describe('account databases', () => {
  it('parses passwd and group, skipping NIS markers and malformed lines', () => {
    expect([...parsePasswd('root:x:0:0:root:/root:/bin/bash\n+::::::\nbroken\nbob:x:1001:1001::/home/bob:/bin/sh\n').keys()]).toEqual(['root', 'bob']);
    expect(parseGroup('adm:x:4:syslog,alice,alice\n').get('adm')).toEqual({ name: 'adm', gid: 4, members: ['alice', 'syslog'] });
  });
});

describe('User diff', () => {
  it('compares supplementary groups as a set and the primary group by name or gid', () => {
    expect(diffUser(user({ groups: ['staff', 'adm'], group: 'ops' }), live(), null).action).toBe('noop');
    expect(diffUser(user({ group: 2000 }), live(), null).action).toBe('noop');
    expect(diffUser(user({ groups: ['staff'] }), live(), null)).toEqual({
      action: 'update',
      fields: [{ path: 'groups', before: ['adm', 'staff'], after: ['staff'] }],
    });
  });

  it('manages only the fields the spec sets', () => {
    expect(diffUser(user({}), live({ shell: '/bin/zsh', comment: 'whoever' }), null).action).toBe('noop');
  });

  it('sees a keys file with the wrong mode or owner as drift', () => {
    const keys = ['ssh-ed25519 AAAA a@b'];
    expect(diffUser(user({ authorizedKeys: keys }), live({ authorizedKeys: { keys, mode: '0644', uid: 2001 } }), null).fields).toEqual([
      { path: 'authorizedKeys.mode', before: '0644', after: '0600' },
    ]);
    expect(diffUser(user({ authorizedKeys: keys }), live({ authorizedKeys: { keys, mode: '0600', uid: 0 } }), null).fields).toEqual([
      { path: 'authorizedKeys.owner', before: 0, after: 2001 },
    ]);
  });

  it('plans a rename when the name changes', () => {
    const diff = diffUser(user({ name: 'alicia' }), null, user({}));
    expect(diff.action).toBe('replace');
    expect(diff.reason).toMatch(/renamed from alice/);
  });
});

describe('Group delete check', () => {
  const ops: GroupLive = { name: 'ops', gid: 2000, members: [], primaryOf: ['alice', 'bob'] };
  const spec = (input: Record<string, unknown> = {}) => groupSchema.parse({ name: 'ops', ...input });

  it("refuses to delete a group that is still a user's primary group, unless force or its users go too", () => {
    expect(refuseGroupDelete(spec(), ops, [])).toMatch(/group ops is the primary group of users alice, bob: .*set force: true/);
    expect(refuseGroupDelete(spec(), ops, [{ kind: 'User', spec: { name: 'alice' } }])).toMatch(/primary group of user bob:/);
    expect(refuseGroupDelete(spec(), ops, [{ kind: 'User', spec: { name: 'alice' } }, { kind: 'User', spec: { name: 'bob' } }])).toBeUndefined();
    expect(refuseGroupDelete(spec({ force: true }), ops, [])).toBeUndefined();
    expect(refuseGroupDelete(spec(), { ...ops, primaryOf: [] }, [])).toBeUndefined();
  });

  it('needs a gid for nonUnique', () => {
    expect(schemaErrors(groupSchema, { name: 'ops', nonUnique: true })).toMatch(/nonUnique needs a gid/);
  });
});

describe('home mode', () => {
  it('is HOME_MODE, else 0777 less UMASK, else 0750, like useradd -m', () => {
    expect(homeModeOf('UMASK 022\nHOME_MODE 0700\n')).toBe('0700');
    expect(homeModeOf('# HOME_MODE 0700\nUMASK\t027\n')).toBe('0750');
    expect(homeModeOf('UMASK 022\n')).toBe('0755');
    expect(homeModeOf('')).toBe('0750');
  });
});

describe('User and Group resources', () => {
  it('make a User wait for the Groups it names on the same host', () => {
    const alice = testResource('User', 'alice', user({ group: 'ops', groups: ['staff'] }));
    const others = [
      alice,
      testResource('Group', 'ops', groupSchema.parse({ name: 'ops' })),
      testResource('Group', 'staff-group', groupSchema.parse({ name: 'staff' })),
      testResource('Group', 'web', groupSchema.parse({ name: 'web' })),
    ];
    expect(userProvider.implicitDependencies!(alice, others)).toEqual(['Group/ops', 'Group/staff-group']);
  });

  it('refuse two resources for the same account', () => {
    const a = testResource('User', 'a', user({}));
    const b = testResource('User', 'b', user({}));
    expect(userProvider.validate!(a, [a, b]).map((d) => d.summary)).toEqual(['user alice is also managed by User/b']);
  });
});

describe('User and Group on a Host with a root', () => {
  let host: TestHost;

  beforeAll(async () => {
    host = await openTestHost();
    await populateAccounts(host.root);
  });
  afterAll(() => host?.cleanup());

  const shadowLine = async (name: string) =>
    (await fs.readFile(host.real('/etc/shadow'), 'utf8')).split('\n').find((l) => l.startsWith(`${name}:`)) ?? '';

  it('creates groups and users in the root only', async () => {
    await converge(groupProvider, host.handle, groupSchema.parse({ name: 'ops', gid: 2000 }));
    await converge(groupProvider, host.handle, groupSchema.parse({ name: 'staff', gid: 2050 }));
    const { live: created } = await converge(userProvider, host.handle, user({ uid: 2001, group: 'ops', groups: ['staff'], authorizedKeys: ['ssh-ed25519 AAAA a@b'] }));
    expect(created).toMatchObject({ uid: 2001, group: 'ops', groups: ['staff'], home: '/home/alice', authorizedKeys: { keys: ['ssh-ed25519 AAAA a@b'], mode: '0600', uid: 2001 } });
    expect(await fs.readFile(host.real('/etc/passwd'), 'utf8')).toMatch(/^alice:x:2001:2000:/m);
    const sshDir = await fs.stat(host.real('/home/alice/.ssh'));
    expect([sshDir.mode & 0o777, sshDir.uid]).toEqual([0o700, 2001]);
    expect((await fs.readFile('/etc/passwd', 'utf8')).includes('alice:x:2001')).toBe(false);
  });

  it('creates the missing home of an existing user when createHome is true, with /etc/skel, before writing its keys', async () => {
    await fs.mkdir(host.real('/etc/skel'));
    await fs.writeFile(host.real('/etc/skel/.profile'), 'PATH=/bin\n', { mode: 0o644 });
    await converge(userProvider, host.handle, user({ name: 'homeless', uid: 2010, group: 'ops', createHome: false }));
    await expect(fs.access(host.real('/home/homeless'))).rejects.toThrow();
    const spec = user({ name: 'homeless', uid: 2010, group: 'ops', createHome: true, authorizedKeys: ['ssh-ed25519 AAAA h@b'] });
    const { diff, live: after } = await converge(userProvider, host.handle, spec);
    expect(diff.fields).toContainEqual({ path: 'home.exists', before: false, after: true });
    expect(after).toMatchObject({ homeExists: true, authorizedKeys: { keys: ['ssh-ed25519 AAAA h@b'] } });
    const home = await fs.stat(host.real('/home/homeless'));
    expect([home.mode & 0o777, home.uid, home.gid]).toEqual([0o750, 2010, 2000]);
    const profile = await fs.stat(host.real('/home/homeless/.profile'));
    expect([profile.mode & 0o777, profile.uid, profile.gid]).toEqual([0o644, 2010, 2000]);
    expect((await converge(userProvider, host.handle, spec)).diff.action).toBe('noop');
    await remove(userProvider, host.handle, { ...spec, removeHome: true });
    await expect(fs.access(host.real('/home/homeless'))).rejects.toThrow();
  });

  it('sets a password from a crypt hash through chpasswd stdin, keeps only a digest live, and says only that it changed', async () => {
    const spec = user({ name: 'pw', uid: 2020, group: 'ops', password: HASH_1 });
    host.recorder.reset();
    const { diff, live: created } = await converge(userProvider, host.handle, spec);
    expect(diff.fields).toContainEqual({ path: 'password', before: null, after: '(sensitive)', sensitive: true });
    expect(await shadowLine('pw')).toMatch(new RegExp(`^pw:${escape(HASH_1)}:`));
    expect(JSON.stringify(host.recorder.execs)).not.toContain(HASH_1);
    expect(JSON.stringify(created)).not.toContain(HASH_1);
    expect(created?.shadow).toEqual({ passwordDigest: expect.stringMatching(/^hmac-sha256:/), locked: false, expires: 'never' });
    expect((await converge(userProvider, host.handle, spec)).diff.action).toBe('noop');

    const changed = await converge(userProvider, host.handle, { ...spec, password: HASH_2 });
    expect(changed.diff.fields).toEqual([{ path: 'password', before: '(sensitive)', after: '(sensitive value changed)', sensitive: true }]);
    expect(await shadowLine('pw')).toMatch(new RegExp(`^pw:${escape(HASH_2)}:`));
  });

  it('locks and unlocks, and a new password keeps a lock the spec does not lift', async () => {
    const spec = user({ name: 'pw', uid: 2020, group: 'ops', password: HASH_2 });
    const { diff } = await converge(userProvider, host.handle, { ...spec, locked: true });
    expect(diff.fields).toEqual([{ path: 'locked', before: false, after: true }]);
    expect(await shadowLine('pw')).toMatch(new RegExp(`^pw:!${escape(HASH_2)}:`));
    await converge(userProvider, host.handle, { ...spec, password: HASH_1 });
    expect(await shadowLine('pw')).toMatch(new RegExp(`^pw:!${escape(HASH_1)}:`));
    await converge(userProvider, host.handle, { ...spec, password: HASH_1, locked: false });
    expect(await shadowLine('pw')).toMatch(new RegExp(`^pw:${escape(HASH_1)}:`));
  });

  it('sets and clears an expiry date', async () => {
    const spec = user({ name: 'pw', expires: '2030-12-31' });
    expect((await converge(userProvider, host.handle, spec)).diff.fields).toEqual([{ path: 'expires', before: 'never', after: '2030-12-31' }]);
    expect((await shadowLine('pw')).split(':')[7]).toBe(String(Date.UTC(2030, 11, 31) / 86_400_000));
    expect((await converge(userProvider, host.handle, spec)).diff.action).toBe('noop');
    await converge(userProvider, host.handle, user({ name: 'pw', expires: 'never' }));
    expect((await shadowLine('pw')).split(':')[7]).toBe('');
  });

  it('refuses a plain password, without showing it', () => {
    expect(schemaErrors(userSchema, { name: 'pw', password: 'hunter2' })).toMatch(/password must be a crypt hash/);
    expect(schemaErrors(userSchema, { name: 'pw', password: 'hunter2' })).not.toContain('hunter2');
  });

  it('adds groups by name or gid with appendGroups, never removing others; compares gids with the exact list', async () => {
    await converge(groupProvider, host.handle, groupSchema.parse({ name: 'extra', gid: 2060 }));
    await converge(userProvider, host.handle, user({ name: 'pw', groups: ['extra'] }));
    const { diff } = await converge(userProvider, host.handle, user({ name: 'pw', groups: [2050], appendGroups: true }));
    expect(diff.fields).toEqual([{ path: 'groups', before: ['extra'], after: ['extra', 2050] }]);
    const [after] = await userProvider.read(host.handle, [user({ name: 'pw' })], ctx);
    expect(after?.groups).toEqual(['extra', 'staff']);
    expect((await converge(userProvider, host.handle, user({ name: 'pw', groups: ['staff'], appendGroups: true }))).diff.action).toBe('noop');
    expect((await converge(userProvider, host.handle, user({ name: 'pw', groups: [2060, 'staff'] }))).diff.action).toBe('noop');
    const exact = await converge(userProvider, host.handle, user({ name: 'pw', groups: [2050] }));
    expect(exact.diff.fields).toEqual([{ path: 'groups', before: ['extra', 'staff'], after: [2050] }]);
    expect(exact.live?.groups).toEqual(['staff']);
  });

  it('reads a batch with one inspect and no command', async () => {
    host.recorder.reset();
    const lives = await userProvider.read(host.handle, [user({ authorizedKeys: [] }), user({ name: 'root' }), user({ name: 'nobody-else' })], ctx);
    expect(lives.map((l) => l?.name ?? null)).toEqual(['alice', 'root', null]);
    expect(host.recorder.inspects).toBe(1);
    expect(host.recorder.execs).toEqual([]);
  });

  it('looks for the keys where the live home is when the spec does not say', async () => {
    await fs.appendFile(host.real('/etc/passwd'), 'carol:x:2003:2000::/srv/carol:/bin/sh\n');
    await fs.mkdir(host.real('/srv/carol/.ssh'), { recursive: true });
    await fs.writeFile(host.real('/srv/carol/.ssh/authorized_keys'), 'ssh-rsa AAAA carol\n', { mode: 0o600 });
    host.recorder.reset();
    const [carol] = await userProvider.read(host.handle, [user({ name: 'carol', authorizedKeys: ['ssh-rsa AAAA carol'] })], ctx);
    expect(carol?.authorizedKeys?.keys).toEqual(['ssh-rsa AAAA carol']);
    expect(host.recorder.inspects).toBe(2);
  });

  it('names the host and the group when a supplementary group does not exist', async () => {
    await expect(converge(userProvider, host.handle, user({ name: 'bob', groups: ['nosuchgroup'] }))).rejects.toThrow(
      /creating user bob \(User\/test\) on Host\/test \(root .*\) failed: useradd exited with status 6: .*nosuchgroup/,
    );
  });

  it('refuses a uid that another user holds', async () => {
    await expect(converge(userProvider, host.handle, user({ name: 'bob', uid: 2001 }))).rejects.toThrow(/uid 2001 belongs to alice/);
  });

  it('renames a user when the spec name changes, keeping its uid', async () => {
    const { diff, live: renamed } = await converge(userProvider, host.handle, user({ name: 'alicia', uid: 2001 }), user({ uid: 2001 }));
    expect(diff.action).toBe('replace');
    expect(renamed).toMatchObject({ name: 'alicia', uid: 2001 });
    const [gone] = await userProvider.read(host.handle, [user({})], ctx);
    expect(gone).toBeNull();
  });

  it('shares a gid with nonUnique, and deletes a primary group with force (groupdel -f)', async () => {
    await expect(converge(groupProvider, host.handle, groupSchema.parse({ name: 'ops2', gid: 2000 }))).rejects.toThrow(/gid 2000 belongs to group ops/);
    const { live: shared } = await converge(groupProvider, host.handle, groupSchema.parse({ name: 'ops2', gid: 2000, nonUnique: true }));
    expect(shared).toMatchObject({ name: 'ops2', gid: 2000, primaryOf: ['alicia', 'carol', 'pw'] });
    expect(await remove(groupProvider, host.handle, groupSchema.parse({ name: 'ops2', gid: 2000, nonUnique: true, force: true }))).toBeNull();
    expect(await fs.readFile(host.real('/etc/group'), 'utf8')).not.toMatch(/^ops2:/m);
  });

  it('refuses to delete a group that is still a primary group, and says why', async () => {
    await expect(remove(groupProvider, host.handle, groupSchema.parse({ name: 'ops' }))).rejects.toThrow(
      /deleting group ops \(Group\/test\) on Host\/test .*primary group/,
    );
  });

  it('deletes a user, removing the keys Capstan wrote but keeping the home', async () => {
    await converge(userProvider, host.handle, user({ name: 'alicia', uid: 2001, authorizedKeys: ['ssh-ed25519 AAAA a@b'] }));
    const keys = host.real('/home/alice/.ssh/authorized_keys');
    await fs.access(keys);
    expect(await remove(userProvider, host.handle, user({ name: 'alicia', authorizedKeys: ['ssh-ed25519 AAAA a@b'] }))).toBeNull();
    await expect(fs.access(keys)).rejects.toThrow();
    await fs.access(host.real('/home/alice'));
    expect(await fs.readFile(host.real('/etc/passwd'), 'utf8')).not.toMatch(/^alicia:/m);
  });
});
