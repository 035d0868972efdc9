/**
 * The account databases of a Host (`<root>/etc/passwd`, `<root>/etc/group`),
 * read through `inspect` with content, and the shadow-utils commands that
 * change them (`useradd`, `groupmod`, ...) pointed at the Host's root with
 * `--prefix`, which edits `<root>/etc/*` without a chroot.
 */
import { z } from 'zod';
import { describePathType, type PathInfo } from '../../transport/transport.js';
import type { HostHandle } from '../host/host.js';
import { inspectConfined } from '../host/paths.js';
import { ProviderError } from '../provider.js';
import { hostLabel } from './command.js';

// shadow-utils' default NAME_REGEX, plus a trailing `$` for Samba machine accounts.
const ACCOUNT_NAME = /^[a-z_][a-z0-9_-]*\$?$/;
const MAX_ID = 2 ** 32 - 2;

export const accountNameSchema = (what: string) =>
  z
    .string({ error: `${what} must be a string` })
    .max(32, { error: `${what} must be at most 32 characters` })
    .regex(ACCOUNT_NAME, { error: `${what} must start with a lowercase letter or "_" and hold only a-z, 0-9, "_" and "-"` });

export const accountIdSchema = (what: string) =>
  z
    .number({ error: `${what} must be a number` })
    .int({ error: `${what} must be a whole number` })
    .min(0, { error: `${what} must be from 0 to ${MAX_ID}` })
    .max(MAX_ID, { error: `${what} must be from 0 to ${MAX_ID}` });

/** One line of /etc/passwd. */
export interface PasswdEntry {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly comment: string;
  readonly home: string;
  readonly shell: string;
}

/** One line of /etc/group. */
export interface GroupEntry {
  readonly name: string;
  readonly gid: number;
  readonly members: readonly string[];
}

/** The fields of one /etc/shadow line that Capstan manages. */
export interface ShadowEntry {
  readonly name: string;
  /** The crypt hash, with a lock's leading "!" (empty, "*" or "!" for no password). */
  readonly hash: string;
  /** Field 8: the day the account expires, in days since 1970-01-01; null for never. */
  readonly expireDays: number | null;
}

export interface AccountDatabase {
  readonly users: ReadonlyMap<string, PasswdEntry>;
  readonly groups: ReadonlyMap<string, GroupEntry>;
  readonly groupsById: ReadonlyMap<number, GroupEntry>;
}

export function parsePasswd(text: string): Map<string, PasswdEntry> {
  const users = new Map<string, PasswdEntry>();
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 7 || f[0] === '' || f[0]!.startsWith('+') || f[0]!.startsWith('-')) continue;
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    if (!Number.isInteger(uid) || !Number.isInteger(gid) || users.has(f[0]!)) continue;
    users.set(f[0]!, { name: f[0]!, uid, gid, comment: f[4]!, home: f[5]!, shell: f[6]! });
  }
  return users;
}

export function parseGroup(text: string): Map<string, GroupEntry> {
  const groups = new Map<string, GroupEntry>();
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 4 || f[0] === '' || f[0]!.startsWith('+') || f[0]!.startsWith('-')) continue;
    const gid = Number(f[2]);
    if (!Number.isInteger(gid) || groups.has(f[0]!)) continue;
    const members = f[3]!.split(',').filter((m) => m !== '');
    groups.set(f[0]!, { name: f[0]!, gid, members: [...new Set(members)].sort() });
  }
  return groups;
}

export function parseShadow(text: string): Map<string, ShadowEntry> {
  const entries = new Map<string, ShadowEntry>();
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 8 || f[0] === '' || entries.has(f[0]!)) continue;
    const expire = f[7] === '' ? null : Number(f[7]);
    entries.set(f[0]!, { name: f[0]!, hash: f[1]!, expireDays: expire !== null && Number.isInteger(expire) ? expire : null });
  }
  return entries;
}

export const PASSWD = '/etc/passwd';
export const GROUP = '/etc/group';
export const SHADOW = '/etc/shadow';
/** What useradd -m copies into a new home. */
export const SKEL = '/etc/skel';

/** The text of an account database read by inspect; a missing one reads as empty. */
export function databaseText(handle: HostHandle, info: PathInfo): string {
  if (info.type === 'absent') return '';
  if (info.type !== 'file' || info.content === null) {
    throw new ProviderError(`cannot read ${info.path} on ${hostLabel(handle)}: it is ${info.type === 'file' ? 'a file too large to read' : describePathType(info.type)}`);
  }
  return info.content.toString('utf8');
}

/**
 * Reads passwd and group, plus `extraPaths` (with content), in ONE inspect
 * call. A missing database reads as empty.
 */
export async function readAccounts(
  handle: HostHandle,
  extraPaths: readonly string[],
  signal: AbortSignal,
): Promise<{ db: AccountDatabase; extra: Awaited<ReturnType<typeof inspectConfined>> }> {
  const infos = await inspectConfined(handle, [PASSWD, GROUP, ...extraPaths], { content: true, signal });
  const users = parsePasswd(databaseText(handle, infos[0]!));
  const groups = parseGroup(databaseText(handle, infos[1]!));
  const groupsById = new Map<number, GroupEntry>();
  for (const g of groups.values()) if (!groupsById.has(g.gid)) groupsById.set(g.gid, g);
  return { db: { users, groups, groupsById }, extra: infos.slice(2) };
}

/** `--prefix <root>` for shadow-utils on a Host with a root; nothing for `/`. */
export function shadowRootArgs(handle: HostHandle): string[] {
  return handle.root === '/' ? [] : ['--prefix', handle.realRoot];
}

export const SHADOW_TIMEOUT_MS = 60_000;
