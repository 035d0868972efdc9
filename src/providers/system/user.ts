/**
 * User: an account in the Host's `/etc/passwd` — uid, primary and supplementary
 * groups, shell, home, comment — its `/etc/shadow` password (a crypt hash),
 * expiry and lock, and its SSH `authorized_keys`, written as
 * `<home>/.ssh/authorized_keys` with mode 0600, owned by the user.
 *
 * read   passwd, group (shadow when a spec manages what it holds) and every
 *        user's authorized_keys and home in one `inspect` (a second one only
 *        for users whose home is not where the spec said).
 * apply  `useradd` / `usermod` / `userdel` with `--prefix <root>` on a Host
 *        with a root; the password through `chpasswd -e` on stdin (never in an
 *        argv); a missing home made like `useradd -m`; the keys file through
 *        the transport, atomically.
 *
 * Every field but `name` is managed only when the spec sets it. `groups` is the
 * exact list of supplementary groups (with `appendGroups`, groups to add).
 * The live state holds a keyed digest of the password hash, never the hash.
 * Deleting a User keeps its home directory (unless `removeHome`) but removes
 * the authorized_keys file Capstan wrote.
 */
import { posix } from 'node:path';
import { z } from 'zod';
import type { Address, Resource } from '../../spec/resource.js';
import { describePathType, type PathInfo } from '../../transport/transport.js';
import type { HostHandle } from '../host/host.js';
import { accountKey } from '../host/attributes.js';
import { inspectConfined, realPathOf, specPathSchema } from '../host/paths.js';
import { SecretDigester } from '../../secrets/digest.js';
import { digestOf, isSensitiveDigest, revealString, secretString, SENSITIVE_TEXT } from '../../secrets/sensitive.js';
import { ProviderError, type ApplyRequest, type FieldChange, type ProviderContext, type ResourceDiff, type ResourceProvider } from '../provider.js';
import {
  accountIdSchema,
  accountNameSchema,
  databaseText,
  parseShadow,
  readAccounts,
  SHADOW,
  SHADOW_TIMEOUT_MS,
  shadowRootArgs,
  SKEL,
  type AccountDatabase,
  type PasswdEntry,
  type ShadowEntry,
} from './accounts.js';
import { hostLabel, runChecked, validateUnique } from './command.js';

const KEY_LINE = /^[^\n\r\0]+$/;

/** A crypt(3) hash: `$id$...` (yescrypt, SHA-512, ...) or a 13-character DES one. A plain password is not one. */
const CRYPT_HASH = /^(?:\$[0-9a-z]+\$[^\s:]+|[./0-9A-Za-z]{13})$/;
const CRYPT_HASH_MESSAGE = 'password must be a crypt hash such as the output of `mkpasswd -m yescrypt` or `openssl passwd -6` (a plain password is refused)';
const DATE = /^\d{4}-\d{2}-\d{2}$/;

const groupRef = (what: string) =>
  z.union([accountNameSchema(what), accountIdSchema(what)], { error: `${what} must be a group name or a gid` });

export const userSchema = z.strictObject({
  name: accountNameSchema('name').meta({ description: 'Login name of the account.', examples: ['alice', 'deploy'] }),
  uid: accountIdSchema('uid')
    .optional()
    .meta({ description: 'User id. Absent: allocated by useradd when the user is created, and not managed afterwards.', examples: [2001] }),
  group: groupRef('group')
    .optional()
    .meta({ description: 'Primary group, by name or gid. Absent: useradd\'s default (a group named after the user).', examples: ['ops', 2000] }),
  groups: z
    .array(groupRef('each of groups'), { error: 'groups must be a list of group names or gids' })
    // Examples on the input side too: JSON Schema describes what users write, before the transform.
    .meta({ examples: [['staff', 'adm'], ['docker', 27]] })
    .transform((groups) => [...new Set(groups)].sort((a, b) => String(a).localeCompare(String(b))))
    .optional()
    .meta({
      description: 'Supplementary groups, by name or gid: the exact list (order does not matter), or with appendGroups only groups to add.',
      examples: [['staff', 'adm'], ['docker', 27]],
    }),
  appendGroups: z
    .boolean({ error: 'appendGroups must be true or false' })
    .default(false)
    .meta({ description: 'Add the user to `groups` and never remove it from other groups (`usermod -a -G`).', examples: [true] }),
  shell: z
    .string({ error: 'shell must be a path' })
    .regex(/^\/[^:\n\0]*$/, { error: 'shell must be an absolute path such as /bin/bash (no ":")' })
    .optional()
    .meta({ description: 'Login shell.', examples: ['/bin/bash', '/usr/sbin/nologin'] }),
  home: specPathSchema
    .refine((p) => !p.includes(':'), { error: 'home must not contain ":"' })
    .optional()
    .meta({ description: 'Home directory path. Changing it does not move the old directory.', examples: ['/home/alice', '/srv/deploy'] }),
  comment: z
    .string({ error: 'comment must be a string' })
    .regex(/^[^:\n\0]*$/, { error: 'comment must not contain ":" or a line break' })
    .optional()
    .meta({ description: 'The GECOS field: usually the full name.', examples: ['Alice Liddell'] }),
  system: z
    .boolean({ error: 'system must be true or false' })
    .optional()
    .meta({ description: 'Allocate the uid from the system range when Capstan creates the user (no effect afterwards).', examples: [true] }),
  createHome: z
    .boolean({ error: 'createHome must be true or false' })
    .optional()
    .meta({
      description:
        'true: the home directory exists (created like `useradd -m`: owned by the user, mode from login.defs, a copy of /etc/skel), also for an existing user. ' +
        'false: never created. Absent: created only when Capstan creates the user.',
      examples: [true, false],
    }),
  removeHome: z
    .boolean({ error: 'removeHome must be true or false' })
    .default(false)
    .meta({ description: 'When the User is deleted, delete its home directory and mail spool too (`userdel -r`).', examples: [true] }),
  password: secretString('password must be a crypt hash, or { secret: PATH } holding one')
    .refine((v) => typeof v !== 'string' || CRYPT_HASH.test(v), { error: CRYPT_HASH_MESSAGE })
    .optional()
    .meta({
      description:
        'The password as a crypt hash (never a plain password), best as { secret: PATH } to an age file. Never shown: plans say only that it changes. Absent: not managed.',
      examples: [{ secret: 'secrets/alice-password.age' }],
    }),
  expires: z
    .union([z.string().regex(DATE), z.literal('never')], { error: 'expires must be a date such as "2030-12-31" or "never"' })
    .refine((d) => d === 'never' || !Number.isNaN(Date.parse(`${d}T00:00:00Z`)), { error: 'expires must be a real date such as "2030-12-31"' })
    .optional()
    .meta({ description: 'The day the account expires (YYYY-MM-DD, UTC), or "never". Absent: not managed.', examples: ['2030-12-31', 'never'] }),
  locked: z
    .boolean({ error: 'locked must be true or false' })
    .optional()
    .meta({ description: 'Lock (true) or unlock (false) the password (`usermod -L` / `-U`); SSH keys still work. Absent: not managed.', examples: [true] }),
  authorizedKeys: z
    .array(
      z
        .string({ error: 'each authorized key must be a string' })
        .regex(KEY_LINE, { error: 'each authorized key must be one line such as "ssh-ed25519 AAAA... alice@laptop"' }),
      { error: 'authorizedKeys must be a list of public keys' },
    )
    .optional()
    .meta({
      description: 'The exact public keys, one per entry, written to <home>/.ssh/authorized_keys (mode 0600, owned by the user).',
      examples: [['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI... alice@laptop']],
    }),
}).meta({ examples: [{ name: 'deploy', uid: 1500, groups: ['www-data'], shell: '/bin/bash', comment: 'Deploys the web application', createHome: true, authorizedKeys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI... alice@laptop'] }] });

export type UserSpec = z.infer<typeof userSchema>;

export interface AuthorizedKeysLive {
  /** The file's lines (blank lines dropped). */
  readonly keys: readonly string[];
  readonly mode: string | null;
  readonly uid: number | null;
}

/** What /etc/shadow says, read only when the spec manages the password, the expiry or the lock. */
export interface ShadowLive {
  /** Keyed digest of the crypt hash (without a lock's "!"); null when the account has no password. Never the hash. */
  readonly passwordDigest: string | null;
  /** The hash starts with "!" (usermod -L). */
  readonly locked: boolean;
  /** YYYY-MM-DD, or "never". */
  readonly expires: string;
}

export interface UserLive {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  /** Name of the primary group, or null when no group has that gid. */
  readonly group: string | null;
  /** Supplementary groups, sorted. */
  readonly groups: readonly string[];
  /** Their gids, in the same order. */
  readonly groupIds: readonly number[];
  readonly shell: string;
  readonly home: string;
  readonly comment: string;
  /** The authorized_keys file, read only when the spec manages it; null when absent or not managed. */
  readonly authorizedKeys: AuthorizedKeysLive | null;
  /** Whether the home is a directory; read only when the spec says createHome: true. */
  readonly homeExists?: boolean;
  /** Read only when the spec manages password, expires or locked; null when the user has no shadow entry. */
  readonly shadow?: ShadowLive | null;
}

type GroupRef = string | number;

const KEYS_MODE = '0600';
const PASSWORD_CHANGED = '(sensitive value changed)';
/** Digests without a run's digester (a caller that handles no secrets): the fixed-key one, as the loader uses then. */
const UNKEYED = SecretDigester.forIdentity(undefined);

function keysPath(home: string): string | null {
  if (!home.startsWith('/') || home === '/') return null;
  return posix.join(posix.normalize(home), '.ssh/authorized_keys');
}

function homePath(home: string): string | null {
  return home.startsWith('/') && home !== '/' ? posix.normalize(home) : null;
}

function guessedHome(spec: UserSpec): string {
  return spec.home ?? `/home/${spec.name}`;
}

function managesShadow(spec: UserSpec): boolean {
  return spec.password !== undefined || spec.expires !== undefined || spec.locked !== undefined;
}

/** The paths a spec needs read for a user whose home is `home`. */
function pathsFor(spec: UserSpec, home: string): string[] {
  const keys = spec.authorizedKeys !== undefined ? keysPath(home) : null;
  const dir = spec.createHome === true ? homePath(home) : null;
  return [keys, dir].filter((p) => p !== null);
}

function keysOf(info: PathInfo): AuthorizedKeysLive | null {
  if (info.type !== 'file') return null;
  const text = info.content?.toString('utf8') ?? '';
  return { keys: text.split('\n').filter((l) => l.trim() !== ''), mode: info.mode, uid: info.uid };
}

function shadowOf(entry: ShadowEntry | undefined, digester: SecretDigester): ShadowLive | null {
  if (entry === undefined) return null;
  const locked = entry.hash.startsWith('!');
  const hash = entry.hash.replace(/^!+/, '');
  return {
    passwordDigest: hash === '' || hash === '*' ? null : digester.digest(hash),
    locked,
    expires: entry.expireDays === null ? 'never' : new Date(entry.expireDays * 86_400_000).toISOString().slice(0, 10),
  };
}

function toLive(entry: PasswdEntry, db: AccountDatabase): UserLive {
  const groups = [...db.groups.values()].filter((g) => g.members.includes(entry.name)).sort((a, b) => a.name.localeCompare(b.name));
  return {
    name: entry.name,
    uid: entry.uid,
    gid: entry.gid,
    group: db.groupsById.get(entry.gid)?.name ?? null,
    groups: groups.map((g) => g.name),
    groupIds: groups.map((g) => g.gid),
    shell: entry.shell,
    home: entry.home,
    comment: entry.comment,
    authorizedKeys: null,
  };
}

/**
 * Reads the users of a batch: one inspect for the databases (shadow too when a
 * spec manages what it holds) and the files where the specs put the homes, and
 * one more only for homes that are elsewhere.
 */
async function readUsers(handle: HostHandle, specs: readonly UserSpec[], digester: SecretDigester, signal: AbortSignal): Promise<(UserLive | null)[]> {
  const shadowNeeded = specs.some(managesShadow);
  const guessPaths = [...new Set(specs.flatMap((s) => pathsFor(s, guessedHome(s))))];
  const { db, extra } = await readAccounts(handle, [...(shadowNeeded ? [SHADOW] : []), ...guessPaths], signal);
  const shadow = shadowNeeded ? parseShadow(databaseText(handle, extra[0]!)) : new Map<string, ShadowEntry>();
  const infos = new Map<string, PathInfo>(guessPaths.map((p, i) => [p, extra[i + (shadowNeeded ? 1 : 0)]!]));

  // A home that is not where the spec said (an unmanaged or changed home): one more inspect for all of them.
  const missing = new Set<string>();
  for (const s of specs) {
    const entry = db.users.get(s.name);
    if (entry !== undefined) for (const p of pathsFor(s, entry.home)) if (!infos.has(p)) missing.add(p);
  }
  if (missing.size > 0) {
    const paths = [...missing];
    const more = await inspectConfined(handle, paths, { content: true, signal });
    paths.forEach((p, i) => infos.set(p, more[i]!));
  }
  return specs.map((s) => {
    const entry = db.users.get(s.name);
    if (entry === undefined) return null;
    const keys = s.authorizedKeys !== undefined ? keysPath(entry.home) : null;
    const keysInfo = keys !== null ? infos.get(keys) : undefined;
    const home = s.createHome === true ? homePath(entry.home) : null;
    return {
      ...toLive(entry, db),
      authorizedKeys: keysInfo ? keysOf(keysInfo) : null,
      ...(s.createHome === true ? { homeExists: home !== null && infos.get(home)?.type === 'directory' } : {}),
      ...(managesShadow(s) ? { shadow: shadowOf(shadow.get(s.name), digester) } : {}),
    };
  });
}

function groupMatches(wanted: GroupRef, live: UserLive): boolean {
  return typeof wanted === 'number' ? wanted === live.gid : wanted === live.group;
}

/** Supplementary groups the spec names that the user is not in, and groups it is in that the spec does not name. */
function groupDifference(wanted: readonly GroupRef[], live: UserLive): { missing: GroupRef[]; extra: string[] } {
  const isMember = (ref: GroupRef) => (typeof ref === 'number' ? live.groupIds.includes(ref) : live.groups.includes(ref));
  const named = (name: string, i: number) => wanted.some((ref) => (typeof ref === 'number' ? ref === live.groupIds[i] : ref === name));
  return { missing: wanted.filter((ref) => !isMember(ref)), extra: live.groups.filter((g, i) => !named(g, i)) };
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** The digest a spec's password compares by: the loader's (a Sensitive, or what one became in JSON), or the unkeyed one of a plain string. */
function desiredPasswordDigest(password: NonNullable<UserSpec['password']>): string {
  return digestOf(password) ?? UNKEYED.digest(password as string);
}

function createdFields(desired: UserSpec): FieldChange[] {
  const fields: FieldChange[] = [];
  for (const key of ['uid', 'group', 'groups', 'shell', 'home', 'comment', 'expires', 'locked', 'authorizedKeys'] as const) {
    if (desired[key] !== undefined) fields.push({ path: key, before: null, after: desired[key] });
  }
  if (desired.password !== undefined) fields.push({ path: 'password', before: null, after: SENSITIVE_TEXT, sensitive: true });
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
  if (desired.groups !== undefined) {
    const { missing, extra } = groupDifference(desired.groups, live);
    if (desired.appendGroups && missing.length > 0) fields.push({ path: 'groups', before: live.groups, after: [...live.groups, ...missing] });
    if (!desired.appendGroups && (missing.length > 0 || extra.length > 0)) fields.push({ path: 'groups', before: live.groups, after: desired.groups });
  }
  for (const key of ['shell', 'home', 'comment'] as const) {
    if (desired[key] !== undefined && desired[key] !== live[key]) fields.push({ path: key, before: live[key], after: desired[key] });
  }
  if (desired.createHome === true && live.homeExists === false) fields.push({ path: 'home.exists', before: false, after: true });
  const shadow = live.shadow ?? null;
  if (desired.password !== undefined && desiredPasswordDigest(desired.password) !== (shadow?.passwordDigest ?? null)) {
    fields.push({ path: 'password', before: shadow?.passwordDigest ? SENSITIVE_TEXT : null, after: PASSWORD_CHANGED, sensitive: true });
  }
  if (desired.expires !== undefined && desired.expires !== (shadow?.expires ?? null)) {
    fields.push({ path: 'expires', before: shadow?.expires ?? null, after: desired.expires });
  }
  if (desired.locked !== undefined && desired.locked !== (shadow?.locked ?? null)) fields.push({ path: 'locked', before: shadow?.locked ?? null, after: desired.locked });
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

/** The mode useradd -m gives a home: login.defs HOME_MODE, else 0777 less its UMASK, else 0750. */
export function homeModeOf(loginDefs: string): string {
  const setting = (key: string) => new RegExp(`^\\s*${key}\\s+([0-7]{1,4})\\s*$`, 'm').exec(loginDefs)?.[1];
  const homeMode = setting('HOME_MODE');
  const umask = setting('UMASK');
  const bits = homeMode !== undefined ? Number.parseInt(homeMode, 8) : umask !== undefined ? 0o777 & ~Number.parseInt(umask, 8) : 0o750;
  return bits.toString(8).padStart(4, '0');
}

/** Creates a missing home the way `useradd -m` does: owned by the user and its primary group, login.defs' mode, a copy of /etc/skel. */
async function createHomeDirectory(handle: HostHandle, user: PasswdEntry, address: Address, signal: AbortSignal): Promise<void> {
  const home = homePath(user.home);
  const fail = (problem: string) => new ProviderError(`cannot create the home of ${user.name} (${address}) on ${hostLabel(handle)}: ${problem}`);
  if (home === null) throw fail(`"${user.home}" is not an absolute path below /`);
  const [info, defs, skel] = await inspectConfined(handle, [home, '/etc/login.defs', SKEL], { content: true, signal });
  if (info!.type === 'directory') return;
  if (info!.type !== 'absent') throw fail(`${home} is a ${info!.type}`);
  const mode = homeModeOf(defs!.type === 'file' ? (defs!.content?.toString('utf8') ?? '') : '');
  const real = realPathOf(handle.root, home);
  await handle.transport.mkdir(real, { mode, uid: user.uid, gid: user.gid, parents: true });
  if (skel!.type === 'directory') {
    const what = `copying ${SKEL} into the home of ${user.name} (${address})`;
    await runChecked(handle, ['cp', '-R', '-P', '--preserve=mode,timestamps', '--', `${realPathOf(handle.root, SKEL)}/.`, real], what, { timeoutMs: SHADOW_TIMEOUT_MS, signal });
    await runChecked(handle, ['chown', '-R', '-h', `${user.uid}:${user.gid}`, '--', real], what, { timeoutMs: SHADOW_TIMEOUT_MS, signal });
    // cp gave the home the mode of /etc/skel itself.
    await handle.transport.chmod(real, mode);
  }
}

/**
 * Group names for usermod and useradd: a gid becomes the name /etc/group gives
 * it (shadow-utils 4.13 aborts on a numeric group with --prefix).
 */
function groupNames(refs: readonly GroupRef[], db: AccountDatabase, user: string, address: Address, handle: HostHandle): string[] {
  return refs.map((ref) => {
    if (typeof ref === 'string') return ref;
    const group = db.groupsById.get(ref);
    if (group === undefined) throw new ProviderError(`cannot put user ${user} (${address}) in group ${ref} on ${hostLabel(handle)}: no group has gid ${ref}`);
    return group.name;
  });
}

function userArgs(desired: UserSpec, current: UserLive | null, names: (refs: readonly GroupRef[]) => string[]): string[] {
  const args: string[] = [];
  if (desired.uid !== undefined && desired.uid !== current?.uid) args.push('-u', String(desired.uid));
  if (desired.group !== undefined && (current === null || !groupMatches(desired.group, current))) args.push('-g', names([desired.group])[0]!);
  if (desired.groups !== undefined) {
    const { missing, extra } = current === null ? { missing: desired.groups, extra: [] } : groupDifference(desired.groups, current);
    // `-G ""` clears every supplementary group.
    if (!desired.appendGroups && (current === null || missing.length > 0 || extra.length > 0)) args.push('-G', names(desired.groups).join(','));
    if (desired.appendGroups && missing.length > 0) args.push(...(current === null ? [] : ['-a']), '-G', names(missing).join(','));
  }
  if (desired.shell !== undefined && desired.shell !== current?.shell) args.push('-s', desired.shell);
  if (desired.home !== undefined && desired.home !== current?.home) args.push('-d', desired.home);
  if (desired.comment !== undefined && desired.comment !== current?.comment) args.push('-c', desired.comment);
  if (desired.expires !== undefined && desired.expires !== current?.shadow?.expires) {
    if (desired.expires !== 'never') args.push('-e', desired.expires);
    else if (current !== null) args.push('-e', '');
  }
  return args;
}

/** The crypt hash to set, checked; never in an argv or a message. */
function passwordHash(password: NonNullable<UserSpec['password']>, address: Address): string {
  if (isSensitiveDigest(password)) {
    throw new ProviderError(`${address}: the password is not available (a saved plan or a stored spec holds only its digest); make a new plan`);
  }
  const hash = revealString(password);
  if (!CRYPT_HASH.test(hash)) throw new ProviderError(`${address}: ${CRYPT_HASH_MESSAGE}`);
  return hash;
}

async function applyUser(handle: HostHandle, request: ApplyRequest<UserSpec, UserLive>, ctx: ProviderContext): Promise<UserLive | null> {
  const { signal } = ctx;
  const digester = ctx.digester ?? UNKEYED;
  const prefix = shadowRootArgs(handle);
  const run = (argv: string[], what: string, input?: string) =>
    runChecked(handle, argv, what, { timeoutMs: SHADOW_TIMEOUT_MS, signal, ...(input !== undefined ? { input } : {}) });

  if (request.action === 'delete') {
    const name = request.prior?.name ?? request.live?.name;
    if (name === undefined) throw new Error(`cannot delete ${request.address}: no last applied spec names its user`);
    const { db } = await readAccounts(handle, [], signal);
    const entry = db.users.get(name);
    if (entry === undefined) return null;
    const removeHome = request.prior?.removeHome === true;
    if (!removeHome && request.prior?.authorizedKeys !== undefined) await removeAuthorizedKeys(handle, entry, signal);
    await run(['userdel', ...prefix, ...(removeHome ? ['-r'] : []), '--', name], `deleting user ${name} (${request.address})`);
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

  const names = (refs: readonly GroupRef[]) => groupNames(refs, db, desired.name, request.address, handle);
  if (entry === undefined) {
    if (desired.uid !== undefined) {
      const holder = [...db.users.values()].find((u) => u.uid === desired.uid);
      if (holder) {
        throw new ProviderError(`cannot create user ${desired.name} (${request.address}) on ${hostLabel(handle)}: uid ${desired.uid} belongs to ${holder.name}`);
      }
    }
    const argv = ['useradd', ...prefix, ...userArgs(desired, null, names), desired.createHome === false ? '-M' : '-m'];
    if (desired.system) argv.push('-r');
    await run([...argv, '--', desired.name], `creating user ${desired.name} (${request.address})`);
  } else {
    const [current] = await readUsers(handle, [{ ...desired, authorizedKeys: undefined, createHome: undefined }], digester, signal);
    const args = userArgs(desired, current!, names);
    if (args.length > 0) await run(['usermod', ...prefix, ...args, '--', desired.name], `changing user ${desired.name} (${request.address})`);
  }

  if (desired.password !== undefined || desired.locked !== undefined) {
    const [now] = await readUsers(handle, [{ ...desired, authorizedKeys: undefined, createHome: undefined }], digester, signal);
    const shadow = now?.shadow ?? null;
    let locked = shadow?.locked ?? false;
    if (desired.password !== undefined && desiredPasswordDigest(desired.password) !== (shadow?.passwordDigest ?? null)) {
      // chpasswd reads the hash from stdin: it never shows in a process list or an error.
      const hash = passwordHash(desired.password, request.address);
      const root = handle.root === '/' ? [] : ['-R', handle.realRoot];
      await run(['chpasswd', '-e', ...root], `setting the password of ${desired.name} (${request.address})`, `${desired.name}:${hash}\n`);
      // A locked account with a password stays locked unless the spec says otherwise; a new account's "!" is no lock.
      const keepLocked = desired.locked ?? (locked && shadow?.passwordDigest !== null);
      locked = false;
      if (keepLocked) {
        await run(['usermod', ...prefix, '-L', '--', desired.name], `locking user ${desired.name} (${request.address})`);
        locked = true;
      }
    }
    if (desired.locked !== undefined && desired.locked !== locked) {
      await run(['usermod', ...prefix, desired.locked ? '-L' : '-U', '--', desired.name], `${desired.locked ? 'locking' : 'unlocking'} user ${desired.name} (${request.address})`);
    }
  }

  const now = (await readAccounts(handle, [], signal)).db.users.get(desired.name);
  if (now === undefined) throw new ProviderError(`user ${desired.name} (${request.address}) is missing on ${hostLabel(handle)} right after creating it`);
  if (desired.createHome === true) await createHomeDirectory(handle, now, request.address, signal);
  if (desired.authorizedKeys !== undefined) await writeAuthorizedKeys(handle, now, desired.authorizedKeys, request.address, signal);
  const [after] = await readUsers(handle, [desired], digester, signal);
  return after ?? null;
}

/** A User waits for the Groups it names (by name or gid) on the same host. */
function groupDependencies(resource: Resource<UserSpec>, sameTarget: readonly Resource[]): Address[] {
  const refs = new Set<GroupRef>([...(resource.spec.groups ?? []), ...(resource.spec.group !== undefined ? [resource.spec.group] : [])]);
  if (refs.size === 0) return [];
  return sameTarget
    .filter((r) => {
      if (r.kind !== 'Group' || typeof r.spec !== 'object' || r.spec === null) return false;
      const spec = r.spec as { name?: unknown; gid?: unknown };
      return refs.has(spec.name as string) || (typeof spec.gid === 'number' && refs.has(spec.gid));
    })
    .map((r) => r.address);
}

export const userProvider: ResourceProvider<UserSpec, UserLive, HostHandle> = {
  role: 'resource',
  kind: 'User',
  description:
    "An account in the Host's /etc/passwd: uid, groups, shell, home, comment, password (a crypt hash), expiry, lock and SSH authorized keys; useradd and usermod.",
  schema: userSchema,
  targetKind: 'Host',
  sensitiveFields: ['password'],
  validate: (resource, sameTarget) => validateUnique(resource, sameTarget, (s) => s.name, (name) => `user ${name}`, ['name']),
  implicitDependencies: groupDependencies,
  // Without a primary group, useradd makes one of the user's name (Debian's USERGROUPS_ENAB).
  provides: (spec) => [accountKey('user', spec.name), ...(spec.group === undefined ? [accountKey('group', spec.name)] : [])],
  read: (handle, specs, ctx) => readUsers(handle, specs, ctx.digester ?? UNKEYED, ctx.signal),
  diff: diffUser,
  apply: applyUser,
};
