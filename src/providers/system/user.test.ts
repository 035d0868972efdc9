import * as fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testResource } from '../host/testing/sandbox.js';
import { parseGroup, parsePasswd } from './accounts.js';
import { groupProvider, groupSchema } from './group.js';
import { populateAccounts } from './testing/accounts.js';
import { converge, ctx, openTestHost, remove, type TestHost } from './testing/hosts.js';
import { diffUser, homeModeOf, userProvider, userSchema, type UserLive, type UserSpec } from './user.js';

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
