/**
 * Group: a group in the Host's `/etc/group`, with its gid. Members are managed
 * from the User side (`groups:`), so that one place owns each membership.
 *
 * read   passwd and group in one `inspect` for the whole batch.
 * apply  `groupadd` / `groupmod` / `groupdel`, with `--prefix <root>` on a Host with a root.
 */
import { z } from 'zod';
import { accountKey } from '../host/attributes.js';
import type { HostHandle } from '../host/host.js';
import { ProviderError, type ApplyRequest, type FieldChange, type ResourceDiff, type ResourceProvider } from '../provider.js';
import { accountIdSchema, accountNameSchema, readAccounts, SHADOW_TIMEOUT_MS, shadowRootArgs, type GroupEntry } from './accounts.js';
import { hostLabel, runChecked, validateUnique } from './command.js';

export const groupSchema = z.strictObject({
  name: accountNameSchema('name'),
  gid: accountIdSchema('gid').optional(),
  /** Allocate the gid from the system range when Capstan creates the group (no effect afterwards). */
  system: z.boolean({ error: 'system must be true or false' }).optional(),
});

export type GroupSpec = z.infer<typeof groupSchema>;

export interface GroupLive {
  readonly name: string;
  readonly gid: number;
  /** Supplementary members listed in /etc/group, sorted. */
  readonly members: readonly string[];
}

function toLive(entry: GroupEntry | undefined): GroupLive | null {
  return entry ? { name: entry.name, gid: entry.gid, members: [...entry.members] } : null;
}

export function diffGroup(desired: GroupSpec, live: GroupLive | null, prior: GroupSpec | null): ResourceDiff {
  const renamed = prior !== null && prior.name !== desired.name;
  if (live === null) {
    const fields: FieldChange[] = [
      ...(renamed ? [{ path: 'name', before: prior.name, after: desired.name }] : []),
      ...(desired.gid !== undefined ? [{ path: 'gid', before: null, after: desired.gid }] : []),
    ];
    return renamed
      ? { action: 'replace', fields, reason: `renamed from ${prior.name}: groupmod -n renames it when it still exists` }
      : { action: 'create', fields };
  }
  const fields: FieldChange[] = [];
  if (desired.gid !== undefined && desired.gid !== live.gid) fields.push({ path: 'gid', before: live.gid, after: desired.gid });
  return { action: fields.length > 0 ? 'update' : 'noop', fields };
}

async function applyGroup(handle: HostHandle, request: ApplyRequest<GroupSpec, GroupLive>, signal: AbortSignal): Promise<GroupLive | null> {
  const prefix = shadowRootArgs(handle);
  const run = (argv: string[], what: string) => runChecked(handle, argv, what, { timeoutMs: SHADOW_TIMEOUT_MS, signal });
  if (request.action === 'delete') {
    const name = request.prior?.name ?? request.live?.name;
    if (name === undefined) throw new Error(`cannot delete ${request.address}: no last applied spec names its group`);
    const { db } = await readAccounts(handle, [], signal);
    if (db.groups.has(name)) await run(['groupdel', ...prefix, '--', name], `deleting group ${name} (${request.address})`);
    return null;
  }
  const desired = request.desired;
  if (desired === null) throw new Error(`${request.action} of ${request.address} needs a desired spec`);
  const { db } = await readAccounts(handle, [], signal);
  let current = db.groups.get(desired.name);
  const old = request.prior !== null && request.prior.name !== desired.name ? db.groups.get(request.prior.name) : undefined;
  if (current === undefined && old !== undefined) {
    await run(['groupmod', ...prefix, '-n', desired.name, '--', old.name], `renaming group ${old.name} to ${desired.name} (${request.address})`);
    current = { ...old, name: desired.name };
  }
  if (current === undefined) {
    if (desired.gid !== undefined) {
      const holder = db.groupsById.get(desired.gid);
      if (holder) {
        throw new ProviderError(`cannot create group ${desired.name} (${request.address}) on ${hostLabel(handle)}: gid ${desired.gid} belongs to group ${holder.name}`);
      }
    }
    const argv = ['groupadd', ...prefix];
    if (desired.gid !== undefined) argv.push('-g', String(desired.gid));
    if (desired.system) argv.push('-r');
    await run([...argv, '--', desired.name], `creating group ${desired.name} (${request.address})`);
  } else if (desired.gid !== undefined && desired.gid !== current.gid) {
    await run(['groupmod', ...prefix, '-g', String(desired.gid), '--', desired.name], `changing the gid of group ${desired.name} (${request.address})`);
  }
  const after = await readAccounts(handle, [], signal);
  return toLive(after.db.groups.get(desired.name));
}

export const groupProvider: ResourceProvider<GroupSpec, GroupLive, HostHandle> = {
  role: 'resource',
  kind: 'Group',
  description: "A group in the Host's /etc/group with its gid; groupadd, groupmod and groupdel.",
  schema: groupSchema,
  targetKind: 'Host',
  validate: (resource, sameTarget) => validateUnique(resource, sameTarget, (s) => s.name, (name) => `group ${name}`, ['name']),
  provides: (spec) => [accountKey('group', spec.name)],
  async read(handle, specs, ctx) {
    const { db } = await readAccounts(handle, [], ctx.signal);
    return specs.map((s) => toLive(db.groups.get(s.name)));
  },
  diff: diffGroup,
  apply: (handle, request, ctx) => applyGroup(handle, request, ctx.signal),
};
