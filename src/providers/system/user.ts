/**
 * User: an account in the Host's `/etc/passwd` — uid, primary and supplementary
 * groups, shell, home, comment — and its SSH `authorized_keys`, written as
 * `<home>/.ssh/authorized_keys` with mode 0600, owned by the user.
 *
 * read   passwd, group and every user's authorized_keys in one `inspect` (a
 *        second one only for users whose home is not where the spec said).
 * apply  `useradd` / `usermod` / `userdel` with `--prefix <root>` on a Host
 *        with a root; the keys file through the transport, atomically.
 *
 * Every field but `name` is managed only when the spec sets it. `groups` is the
 * exact list of supplementary groups. Deleting a User keeps its home directory
 * but removes the authorized_keys file Capstan wrote.
 */
import { posix } from 'node:path';
import { z } from 'zod';
import type { Address, Resource } from '../../spec/resource.js';
import { describePathType, type PathInfo } from '../../transport/transport.js';
import type { HostHandle } from '../host/host.js';
import { accountKey } from '../host/attributes.js';
import { inspectConfined, realPathOf, specPathSchema } from '../host/paths.js';
import { ProviderError, type ApplyRequest, type FieldChange, type ResourceDiff, type ResourceProvider } from '../provider.js';
import {
  accountIdSchema,
  accountNameSchema,
  readAccounts,
  SHADOW_TIMEOUT_MS,
  shadowRootArgs,
  type AccountDatabase,
  type PasswdEntry,
} from './accounts.js';
import { hostLabel, runChecked, validateUnique } from './command.js';

const KEY_LINE = /^[^\n\r\0]+$/;

export const userSchema = z.strictObject({
  name: accountNameSchema('name'),
  uid: accountIdSchema('uid').optional(),
  /** Primary group, by name or gid. */
  group: z.union([accountNameSchema('group'), accountIdSchema('group')], { error: 'group must be a group name or a gid' }).optional(),
  /** The exact supplementary groups (order does not matter). */
  groups: z
    .array(accountNameSchema('each of groups'), { error: 'groups must be a list of group names' })
    .transform((groups) => [...new Set(groups)].sort())
    .optional(),
  shell: z
    .string({ error: 'shell must be a path' })
    .regex(/^\/[^:\n\0]*$/, { error: 'shell must be an absolute path such as /bin/bash (no ":")' })
    .optional(),
  home: specPathSchema.refine((p) => !p.includes(':'), { error: 'home must not contain ":"' }).optional(),
  comment: z
    .string({ error: 'comment must be a string' })
    .regex(/^[^:\n\0]*$/, { error: 'comment must not contain ":" or a line break' })
    .optional(),
  /** Allocate the uid from the system range when Capstan creates the user (no effect afterwards). */
  system: z.boolean({ error: 'system must be true or false' }).optional(),
  /** Create the home directory when Capstan creates the user (default true). */
  createHome: z.boolean({ error: 'createHome must be true or false' }).optional(),
  /** Public keys, one per entry, written to `<home>/.ssh/authorized_keys` (mode 0600). */
  authorizedKeys: z
    .array(
      z
        .string({ error: 'each authorized key must be a string' })
        .regex(KEY_LINE, { error: 'each authorized key must be one line such as "ssh-ed25519 AAAA... alice@laptop"' }),
      { error: 'authorizedKeys must be a list of public keys' },
    )
    .optional(),
});

export type UserSpec = z.infer<typeof userSchema>;

export interface AuthorizedKeysLive {
  /** The file's lines (blank lines dropped). */
  readonly keys: readonly string[];
  readonly mode: string | null;
  readonly uid: number | null;
}

export interface UserLive {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  /** Name of the primary group, or null when no group has that gid. */
  readonly group: string | null;
  /** Supplementary groups, sorted. */
  readonly groups: readonly string[];
  readonly shell: string;
  readonly home: string;
  readonly comment: string;
  /** The authorized_keys file, read only when the spec manages it; null when absent or not managed. */
  readonly authorizedKeys: AuthorizedKeysLive | null;
}

const KEYS_MODE = '0600';

function keysPath(home: string): string | null {
  if (!home.startsWith('/') || home === '/') return null;
  return posix.join(posix.normalize(home), '.ssh/authorized_keys');
}

function guessedHome(spec: UserSpec): string {
  return spec.home ?? `/home/${spec.name}`;
}

function keysOf(info: PathInfo): AuthorizedKeysLive | null {
  if (info.type !== 'file') return null;
  const text = info.content?.toString('utf8') ?? '';
  return { keys: text.split('\n').filter((l) => l.trim() !== ''), mode: info.mode, uid: info.uid };
}

function toLive(entry: PasswdEntry, db: AccountDatabase, keys: AuthorizedKeysLive | null): UserLive {
  const groups = [...db.groups.values()].filter((g) => g.members.includes(entry.name)).map((g) => g.name);
  return {
    name: entry.name,
    uid: entry.uid,
    gid: entry.gid,
    group: db.groupsById.get(entry.gid)?.name ?? null,
    groups: [...new Set(groups)].sort(),
    shell: entry.shell,
    home: entry.home,
    comment: entry.comment,
    authorizedKeys: keys,
  };
}

/** Reads the users of a batch: one inspect for the databases and the keys files where the specs put the homes. */
async function readUsers(handle: HostHandle, specs: readonly UserSpec[], signal: AbortSignal): Promise<(UserLive | null)[]> {
  const guesses = specs.map((s) => (s.authorizedKeys !== undefined ? keysPath(guessedHome(s)) : null));
  const guessPaths = [...new Set(guesses.filter((p) => p !== null))];
  const { db, extra } = await readAccounts(handle, guessPaths, signal);
  const keyInfos = new Map<string, PathInfo>(guessPaths.map((p, i) => [p, extra[i]!]));

  // A home that is not where the spec said (an unmanaged or changed home): one more inspect for all of them.
  const missing = new Set<string>();
  specs.forEach((s) => {
    const entry = db.users.get(s.name);
    if (s.authorizedKeys === undefined || entry === undefined) return;
    const path = keysPath(entry.home);
    if (path !== null && !keyInfos.has(path)) missing.add(path);
  });
  if (missing.size > 0) {
    const paths = [...missing];
    const infos = await inspectConfined(handle, paths, { content: true, signal });
    paths.forEach((p, i) => keyInfos.set(p, infos[i]!));
  }
  return specs.map((s) => {
    const entry = db.users.get(s.name);
    if (entry === undefined) return null;
    const path = s.authorizedKeys !== undefined ? keysPath(entry.home) : null;
    const info = path !== null ? keyInfos.get(path) : undefined;
    return toLive(entry, db, info ? keysOf(info) : null);
  });
}

function groupMatches(wanted: string | number, live: UserLive): boolean {
  return typeof wanted === 'number' ? wanted === live.gid : wanted === live.group;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function createdFields(desired: UserSpec): FieldChange[] {
  const fields: FieldChange[] = [];
  for (const key of ['uid', 'group', 'groups', 'shell', 'home', 'comment', 'authorizedKeys'] as const) {
    if (desired[key] !== undefined) fields.push({ path: key, before: null, after: desired[key] });
  }
  return fields;
}

export function diffUser(desired: UserSpec, live: UserLive | null, prior: UserSpec | null): ResourceDiff {
  const renamed = prior !== null && prior.name !== desired.name;
  if (live === null) {
    const fields = [...(renamed ? [{ path: 'name', before: prior.name, after: desired.name }] : []), ...createdFields(desired)];
    return renamed
      ? { action: 'replace', fields, reason: `renamed from ${prior.name}: usermod -l renames it when it still exists` }
      : { action: 'create', fields };
  }
  const fields: FieldChange[] = [];
  if (desired.uid !== undefined && desired.uid !== live.uid) fields.push({ path: 'uid', before: live.uid, after: desired.uid });
  if (desired.group !== undefined && !groupMatches(desired.group, live)) {
    fields.push({ path: 'group', before: typeof desired.group === 'number' ? live.gid : (live.group ?? live.gid), after: desired.group });
  }
  if (desired.groups !== undefined && !sameList(desired.groups, live.groups)) {
    fields.push({ path: 'groups', before: live.groups, after: desired.groups });
  }
  for (const key of ['shell', 'home', 'comment'] as const) {
    if (desired[key] !== undefined && desired[key] !== live[key]) fields.push({ path: key, before: live[key], after: desired[key] });
  }
  if (desired.authorizedKeys !== undefined) {
    const keys = live.authorizedKeys;
    if (keys === null || !sameList(keys.keys, desired.authorizedKeys)) {
      fields.push({ path: 'authorizedKeys', before: keys?.keys ?? null, after: desired.authorizedKeys });
    } else {
      if (keys.mode !== KEYS_MODE) fields.push({ path: 'authorizedKeys.mode', before: keys.mode, after: KEYS_MODE });
      if (keys.uid !== live.uid) fields.push({ path: 'authorizedKeys.owner', before: keys.uid, after: live.uid });
    }
  }
  return { action: fields.length > 0 ? 'update' : 'noop', fields };
}

async function writeAuthorizedKeys(handle: HostHandle, user: PasswdEntry, keys: readonly string[], address: Address, signal: AbortSignal) {
  const path = keysPath(user.home);
  if (path === null) {
    throw new ProviderError(`cannot write authorized keys for ${user.name} (${address}) on ${hostLabel(handle)}: its home "${user.home}" is not an absolute path`);
  }
  const sshDir = posix.dirname(path);
  const [home, dir] = await inspectConfined(handle, [user.home, sshDir], { content: false, signal });
  if (home!.type !== 'directory') {
    throw new ProviderError(
      `cannot write authorized keys for ${user.name} (${address}) on ${hostLabel(handle)}: its home ${user.home} ` +
        `${home!.type === 'absent' ? 'does not exist (set createHome: true, or manage it with a Directory)' : `is ${describePathType(home!.type)}`}`,
    );
  }
  const realDir = realPathOf(handle.root, sshDir);
  if (dir!.type === 'absent') {
    await handle.transport.mkdir(realDir, { mode: '0700', uid: user.uid, gid: user.gid, parents: false });
  } else if (dir!.type !== 'directory') {
    throw new ProviderError(`cannot write authorized keys for ${user.name} (${address}) on ${hostLabel(handle)}: ${sshDir} is ${describePathType(dir!.type)}`);
  }
  const content = keys.length === 0 ? '' : `${keys.join('\n')}\n`;
  await handle.transport.writeFileAtomic(realPathOf(handle.root, path), Buffer.from(content, 'utf8'), {
    mode: KEYS_MODE,
    uid: user.uid,
    gid: user.gid,
  });
}

async function removeAuthorizedKeys(handle: HostHandle, user: PasswdEntry, signal: AbortSignal): Promise<void> {
  const path = keysPath(user.home);
  if (path === null) return;
  const [info] = await inspectConfined(handle, [path], { content: false, signal });
  if (info!.type === 'file') await handle.transport.remove(realPathOf(handle.root, path), { type: 'file' });
}

function userArgs(desired: UserSpec, current: UserLive | null): string[] {
  const args: string[] = [];
  if (desired.uid !== undefined && desired.uid !== current?.uid) args.push('-u', String(desired.uid));
  if (desired.group !== undefined && (current === null || !groupMatches(desired.group, current))) args.push('-g', String(desired.group));
  if (desired.groups !== undefined && (current === null || !sameList(desired.groups, current.groups))) {
    // `-G ""` clears every supplementary group.
    args.push('-G', desired.groups.join(','));
  }
  if (desired.shell !== undefined && desired.shell !== current?.shell) args.push('-s', desired.shell);
  if (desired.home !== undefined && desired.home !== current?.home) args.push('-d', desired.home);
  if (desired.comment !== undefined && desired.comment !== current?.comment) args.push('-c', desired.comment);
  return args;
}

async function applyUser(handle: HostHandle, request: ApplyRequest<UserSpec, UserLive>, signal: AbortSignal): Promise<UserLive | null> {
  const prefix = shadowRootArgs(handle);
  const run = (argv: string[], what: string) => runChecked(handle, argv, what, { timeoutMs: SHADOW_TIMEOUT_MS, signal });

  if (request.action === 'delete') {
    const name = request.prior?.name ?? request.live?.name;
    if (name === undefined) throw new Error(`cannot delete ${request.address}: no last applied spec names its user`);
    const { db } = await readAccounts(handle, [], signal);
    const entry = db.users.get(name);
    if (entry === undefined) return null;
    if (request.prior?.authorizedKeys !== undefined) await removeAuthorizedKeys(handle, entry, signal);
    await run(['userdel', ...prefix, '--', name], `deleting user ${name} (${request.address})`);
    return null;
  }

  const desired = request.desired;
  if (desired === null) throw new Error(`${request.action} of ${request.address} needs a desired spec`);
  const { db } = await readAccounts(handle, [], signal);
  let entry = db.users.get(desired.name);
  const old = request.prior !== null && request.prior.name !== desired.name ? db.users.get(request.prior.name) : undefined;
  if (entry === undefined && old !== undefined) {
    await run(['usermod', ...prefix, '-l', desired.name, '--', old.name], `renaming user ${old.name} to ${desired.name} (${request.address})`);
    entry = { ...old, name: desired.name };
  }

  if (entry === undefined) {
    if (desired.uid !== undefined) {
      const holder = [...db.users.values()].find((u) => u.uid === desired.uid);
      if (holder) {
        throw new ProviderError(`cannot create user ${desired.name} (${request.address}) on ${hostLabel(handle)}: uid ${desired.uid} belongs to ${holder.name}`);
      }
    }
    const argv = ['useradd', ...prefix, ...userArgs(desired, null), desired.createHome === false ? '-M' : '-m'];
    if (desired.system) argv.push('-r');
    await run([...argv, '--', desired.name], `creating user ${desired.name} (${request.address})`);
  } else {
    const args = userArgs(desired, toLive(entry, db, null));
    if (args.length > 0) await run(['usermod', ...prefix, ...args, '--', desired.name], `changing user ${desired.name} (${request.address})`);
  }

  if (desired.authorizedKeys !== undefined) {
    const now = (await readAccounts(handle, [], signal)).db.users.get(desired.name);
    if (now === undefined) throw new ProviderError(`user ${desired.name} (${request.address}) is missing on ${hostLabel(handle)} right after creating it`);
    await writeAuthorizedKeys(handle, now, desired.authorizedKeys, request.address, signal);
  }
  const [after] = await readUsers(handle, [desired], signal);
  return after ?? null;
}

/** A User waits for the Groups it names on the same host. */
function groupDependencies(resource: Resource<UserSpec>, sameTarget: readonly Resource[]): Address[] {
  const names = new Set<string>([...(resource.spec.groups ?? []), ...(typeof resource.spec.group === 'string' ? [resource.spec.group] : [])]);
  if (names.size === 0) return [];
  return sameTarget
    .filter((r) => r.kind === 'Group' && typeof r.spec === 'object' && r.spec !== null && names.has((r.spec as { name?: unknown }).name as string))
    .map((r) => r.address);
}

export const userProvider: ResourceProvider<UserSpec, UserLive, HostHandle> = {
  role: 'resource',
  kind: 'User',
  description: "An account in the Host's /etc/passwd: uid, groups, shell, home, comment and SSH authorized keys; useradd and usermod.",
  schema: userSchema,
  targetKind: 'Host',
  validate: (resource, sameTarget) => validateUnique(resource, sameTarget, (s) => s.name, (name) => `user ${name}`, ['name']),
  implicitDependencies: groupDependencies,
  // Without a primary group, useradd makes one of the user's name (Debian's USERGROUPS_ENAB).
  provides: (spec) => [accountKey('user', spec.name), ...(spec.group === undefined ? [accountKey('group', spec.name)] : [])],
  read: (handle, specs, ctx) => readUsers(handle, specs, ctx.signal),
  diff: diffUser,
  apply: (handle, request, ctx) => applyUser(handle, request, ctx.signal),
};
