/**
 * Mode, owner and group: the attributes Directory, File and Symlink share.
 * Each is managed only when the spec sets it; an omitted one is never a diff
 * and never changed.
 */
import { z } from 'zod';
import type { PathInfo } from '../../transport/transport.js';
import { ProviderError, type FieldChange, type ReadContext, type Reference } from '../provider.js';
import { resolveHostAccounts } from './account-ids.js';
import type { HostHandle } from './host.js';

/** A user or group by name, or by numeric id. */
export type AccountRef = string | number;

export interface ManagedAttributes {
  readonly mode?: string | undefined;
  readonly owner?: AccountRef | undefined;
  readonly group?: AccountRef | undefined;
}

/** What live states record of an object's attributes. */
export interface LiveAttributes {
  readonly mode: string | null;
  readonly uid: number | null;
  readonly gid: number | null;
  readonly owner: string | null;
  readonly group: string | null;
}

const MODE_PATTERN = /^0?[0-7]{3,4}$/;
const ACCOUNT_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,30}\$?$/;
const MAX_ID = 2 ** 32 - 2;

const SYMBOLIC_CLAUSE = /^([ugoa]*)((?:[-+=][rwxXst]*)+)$/;

/** Bits of the permission letters for one class of `who` (u, g, o). */
const CLASS_BITS = { u: { rwx: 0o700, special: 0o4000 }, g: { rwx: 0o070, special: 0o2000 }, o: { rwx: 0o007, special: 0o1000 } } as const;

/**
 * Applies chmod's symbolic mode (`u=rw,g=r,o=`, `a+x`, `u+x,go-w`) to `base`
 * (permission bits). An empty "who" means `a` (no umask is applied). `X` is
 * execute for a directory, or when some execute bit is already set. Null for
 * a mode that is not symbolic.
 */
export function applySymbolicMode(mode: string, base: number, options: { directory: boolean }): number | null {
  let bits = base & 0o7777;
  for (const clause of mode.split(',')) {
    const m = SYMBOLIC_CLAUSE.exec(clause);
    if (!m) return null;
    const who = (m[1] === '' || m[1]!.includes('a') ? 'ugo' : m[1]!).split('') as ('u' | 'g' | 'o')[];
    const classMask = who.reduce((acc, c) => acc | CLASS_BITS[c].rwx, 0);
    for (const [, op, perms] of m[2]!.matchAll(/([-+=])([rwxXst]*)/g)) {
      let set = 0;
      for (const p of perms!) {
        if (p === 'r') set |= 0o444 & classMask;
        else if (p === 'w') set |= 0o222 & classMask;
        else if (p === 'x') set |= 0o111 & classMask;
        else if (p === 'X' && (options.directory || (bits & 0o111) !== 0)) set |= 0o111 & classMask;
        else if (p === 's') set |= (who.includes('u') ? 0o4000 : 0) | (who.includes('g') ? 0o2000 : 0);
        else if (p === 't' && who.includes('o')) set |= 0o1000;
      }
      if (op === '+') bits |= set;
      else if (op === '-') bits &= ~set;
      else bits = (bits & ~who.reduce((acc, c) => acc | CLASS_BITS[c].rwx | CLASS_BITS[c].special, 0)) | set;
    }
  }
  return bits;
}

/**
 * A mode: 3 or 4 octal digits (`"0644"`, `"644"`, `"4755"` → four digits), or a
 * symbolic mode as chmod takes it. A symbolic mode that sets every bit
 * (`u=rw,g=r,o=`) becomes octal here; one relative to the current mode
 * (`a+x`) stays as written and is resolved against the live mode when planned
 * (`resolveMode`), so the plan always shows octal. A YAML number is refused:
 * `0644` unquoted reads as decimal 644.
 */
export const modeSchema = modeSchemaOf({ preserve: false });

/** `modeSchema`, taking `"preserve"` as well when asked (File with `source:`). */
export function modeSchemaOf(options: { preserve: boolean }) {
  return z
    .string({
      error: (issue) =>
        typeof issue.input === 'number'
          ? 'mode must be a quoted octal string such as "0644" (YAML reads an unquoted 0644 as the decimal number 644)'
          : 'mode must be an octal string such as "0644"',
    })
    .transform((mode, ctx) => {
      if (options.preserve && mode === 'preserve') return mode;
      if (MODE_PATTERN.test(mode)) return Number.parseInt(mode, 8).toString(8).padStart(4, '0');
      const fromNone = applySymbolicMode(mode, 0, { directory: false });
      if (fromNone === null) {
        ctx.addIssue({
          code: 'custom',
          message: `mode must be 3 or 4 octal digits such as "0644" or "2775", or a symbolic mode such as "u=rw,g=r,o=" or "a+x"; not "${mode}"`,
        });
        return z.NEVER;
      }
      const absolute = fromNone === applySymbolicMode(mode, 0o7777, { directory: false }) && !mode.includes('X');
      return absolute ? fromNone.toString(8).padStart(4, '0') : mode;
    });
}

const MODE_TEXT = 'octal ("0644", "2775") or symbolic as chmod takes it ("u=rw,g=r,o=", "a+x", "u+x,go-w"); the plan shows octal';

/** The `mode` field of a kind, documented; `what` says whose mode and what happens when it is omitted. */
export const modeField = (what: string, schema: z.ZodType<string> = modeSchema) =>
  schema.optional().meta({ description: `${what}: ${MODE_TEXT}.`, examples: ['0644', 'u=rw,g=r,o=', 'a+x'] });

/** The `owner` field: a user name or uid; unmanaged when omitted. */
export const ownerField = () =>
  accountSchema('owner')
    .optional()
    .meta({ description: 'The owning user, by name or numeric uid; left as it is when omitted.', examples: ['www-data', 0] });

/** The `group` field: a group name or gid; unmanaged when omitted. */
export const groupField = () =>
  accountSchema('group')
    .optional()
    .meta({ description: 'The owning group, by name or numeric gid; left as it is when omitted.', examples: ['adm', 33] });

/** The octal mode a spec's `mode` asks for, given the mode the object has (or will be created with). */
export function resolveMode(mode: string, base: string, options: { directory: boolean }): string {
  if (/^[0-7]{4}$/.test(mode)) return mode;
  const bits = applySymbolicMode(mode, Number.parseInt(base, 8), options);
  if (bits === null) throw new ProviderError(`invalid mode "${mode}"`);
  return bits.toString(8).padStart(4, '0');
}

/** `desired` with its `mode` resolved to octal against `base`. */
export function withResolvedMode<T extends ManagedAttributes>(desired: T, base: string | null, options: { directory: boolean; defaultMode: string }): T {
  if (desired.mode === undefined) return desired;
  return { ...desired, mode: resolveMode(desired.mode, base ?? options.defaultMode, options) };
}

/** A user (`what` = owner) or group name, or a numeric id (`33` or `"33"`). */
export function accountSchema(what: 'owner' | 'group'): z.ZodType<AccountRef> {
  const noun = what === 'owner' ? 'user' : 'group';
  return z
    .union([z.number(), z.string()], { error: `${what} must be a ${noun} name or a numeric id` })
    .transform((value, ctx) => {
      if (typeof value === 'string' && /^\d+$/.test(value)) value = Number(value);
      if (typeof value === 'number') {
        if (Number.isInteger(value) && value >= 0 && value <= MAX_ID) return value;
        ctx.addIssue({ code: 'custom', message: `${what} id must be a whole number from 0 to ${MAX_ID}` });
        return z.NEVER;
      }
      if (ACCOUNT_NAME.test(value)) return value;
      ctx.addIssue({ code: 'custom', message: `${what} must be a ${noun} name such as "www-data" or a numeric id` });
      return z.NEVER;
    });
}

export function liveAttributes(info: PathInfo): LiveAttributes {
  return { mode: info.mode, uid: info.uid, gid: info.gid, owner: info.owner, group: info.group };
}

export function accountMatches(wanted: AccountRef, id: number | null, name: string | null): boolean {
  return typeof wanted === 'number' ? wanted === id : wanted === name;
}

function accountBefore(wanted: AccountRef, id: number | null, name: string | null): string | number | null {
  return typeof wanted === 'number' ? id : (name ?? id);
}

/** Fields that differ between the managed attributes and the live ones. */
export function diffAttributes(
  desired: ManagedAttributes,
  live: LiveAttributes,
  options: { mode: boolean } = { mode: true },
): FieldChange[] {
  const fields: FieldChange[] = [];
  if (options.mode && desired.mode !== undefined && desired.mode !== live.mode) {
    fields.push({ path: 'mode', before: live.mode, after: desired.mode });
  }
  if (desired.owner !== undefined && !accountMatches(desired.owner, live.uid, live.owner)) {
    fields.push({ path: 'owner', before: accountBefore(desired.owner, live.uid, live.owner), after: desired.owner });
  }
  if (desired.group !== undefined && !accountMatches(desired.group, live.gid, live.group)) {
    fields.push({ path: 'group', before: accountBefore(desired.group, live.gid, live.group), after: desired.group });
  }
  return fields;
}

/** The managed attributes of an object that does not exist yet. */
export function createdAttributes(desired: ManagedAttributes, options: { mode: boolean } = { mode: true }): FieldChange[] {
  const fields: FieldChange[] = [];
  if (options.mode && desired.mode !== undefined) fields.push({ path: 'mode', before: null, after: desired.mode });
  if (desired.owner !== undefined) fields.push({ path: 'owner', before: null, after: desired.owner });
  if (desired.group !== undefined) fields.push({ path: 'group', before: null, after: desired.group });
  return fields;
}

/** The key by which a User or Group provides its account on a Host (see `ResourceProvider.provides`). */
export function accountKey(kind: 'user' | 'group', name: string): string {
  return `${kind}:${name}`;
}

/** The accounts an object's owner and group name (not numeric ids, which need no account): a User's or Group's key. */
export function accountReferences(desired: ManagedAttributes): Reference[] {
  const refs: Reference[] = [];
  if (typeof desired.owner === 'string') refs.push({ key: accountKey('user', desired.owner), field: ['owner'], label: `user "${desired.owner}"` });
  if (typeof desired.group === 'string') refs.push({ key: accountKey('group', desired.group), field: ['group'], label: `group "${desired.group}"` });
  return refs;
}

/**
 * For the planner (`ReadContext.unresolved`): the owners and groups of a batch
 * that the host has no account for, looked up in one call. Nothing without
 * `unresolved` or without names.
 */
export async function reportUnresolvedAccounts(handle: HostHandle, specs: readonly ManagedAttributes[], ctx: ReadContext): Promise<void> {
  const report = ctx.unresolved;
  if (!report) return;
  const users = new Set(specs.flatMap((s) => (typeof s.owner === 'string' ? [s.owner] : [])));
  const groups = new Set(specs.flatMap((s) => (typeof s.group === 'string' ? [s.group] : [])));
  if (users.size === 0 && groups.size === 0) return;
  const ids = await resolveHostAccounts(handle, { users: [...users], groups: [...groups] });
  specs.forEach((spec, i) => {
    const missing = accountReferences(spec).filter((ref) =>
      ref.field[0] === 'owner' ? ids.users.get(spec.owner as string) == null : ids.groups.get(spec.group as string) == null,
    );
    if (missing.length > 0) report(i, missing);
  });
}

/** Numeric ids of the managed owner and group on the host (its root's databases when the root has them); ProviderError naming any that do not exist there. */
export async function resolveOwnership(
  handle: HostHandle,
  desired: ManagedAttributes,
): Promise<{ uid: number | undefined; gid: number | undefined }> {
  const users = typeof desired.owner === 'string' ? [desired.owner] : [];
  const groups = typeof desired.group === 'string' ? [desired.group] : [];
  let uid = typeof desired.owner === 'number' ? desired.owner : undefined;
  let gid = typeof desired.group === 'number' ? desired.group : undefined;
  if (users.length > 0 || groups.length > 0) {
    const ids = await resolveHostAccounts(handle, { users, groups });
    if (typeof desired.owner === 'string') {
      const found = ids.users.get(desired.owner);
      if (found == null) throw new ProviderError(`user "${desired.owner}" does not exist on ${handle.address}`);
      uid = found;
    }
    if (typeof desired.group === 'string') {
      const found = ids.groups.get(desired.group);
      if (found == null) throw new ProviderError(`group "${desired.group}" does not exist on ${handle.address}`);
      gid = found;
    }
  }
  return { uid, gid };
}

/**
 * Brings owner, group and (when `mode` is true) mode of an existing object to
 * the managed values. Owner first: chown clears setuid/setgid bits, so a managed
 * mode is set again after any chown.
 */
export async function reconcileAttributes(
  handle: HostHandle,
  realPath: string,
  current: PathInfo,
  desired: ManagedAttributes,
  ids: { uid: number | undefined; gid: number | undefined },
  options: { mode: boolean },
): Promise<void> {
  const uid = ids.uid !== undefined && ids.uid !== current.uid ? ids.uid : undefined;
  const gid = ids.gid !== undefined && ids.gid !== current.gid ? ids.gid : undefined;
  const chowned = uid !== undefined || gid !== undefined;
  if (chowned) await handle.transport.lchown(realPath, { uid, gid });
  if (options.mode && desired.mode !== undefined && (chowned || desired.mode !== current.mode)) {
    await handle.transport.chmod(realPath, desired.mode);
  } else if (chowned && current.mode !== null && current.type !== 'symlink' && (Number.parseInt(current.mode, 8) & 0o6000) !== 0) {
    // An unmanaged mode stays as it was, setuid/setgid included.
    await handle.transport.chmod(realPath, current.mode);
  }
}
