/**
 * Group: a group in the Host's `/etc/group`, with its gid. Members are managed
 * from the User side (`groups:`), so that one place owns each membership.
 *
 * read   passwd and group in one `inspect` for the whole batch.
 * apply  `groupadd` / `groupmod` / `groupdel`, with `--prefix <root>` on a Host with a root.
 *
 * Deleting a group that is still the primary group of a user who stays is a
 * plan error (`refuseDelete`) unless the last applied spec said `force: true`.
 */
import { z } from 'zod';
import { accountKey } from '../host/attributes.js';
import type { HostHandle } from '../host/host.js';
import { ProviderError, type ApplyRequest, type FieldChange, type ResourceDiff, type ResourceProvider } from '../provider.js';
import { accountIdSchema, accountNameSchema, readAccounts, SHADOW_TIMEOUT_MS, shadowRootArgs, type AccountDatabase, type GroupEntry } from './accounts.js';
import { hostLabel, runChecked, validateUnique } from './command.js';

export const groupSchema = z
  .strictObject({
    name: accountNameSchema('name').meta({ description: 'Name of the group.', examples: ['ops', 'deploy'] }),
    gid: accountIdSchema('gid')
      .optional()
      .meta({ description: 'Group id. Absent: allocated by groupadd when the group is created, and not managed afterwards.', examples: [2000] }),
    system: z
      .boolean({ error: 'system must be true or false' })
      .optional()
      .meta({ description: 'Allocate the gid from the system range when Capstan creates the group (no effect afterwards).', examples: [true] }),
    nonUnique: z
      .boolean({ error: 'nonUnique must be true or false' })
      .default(false)
      .meta({ description: 'Allow a gid that another group already has (`groupadd -o`); needs gid.', examples: [true] }),
    force: z
      .boolean({ error: 'force must be true or false' })
      .default(false)
      .meta({
        description:
          "Allow deleting the group while it is a user's primary group (`groupdel -f`). Without it such a delete is a plan error. Set it and apply before removing the Group.",
        examples: [true],
      }),
  })
  .refine((s) => !s.nonUnique || s.gid !== undefined, { path: ['nonUnique'], error: 'nonUnique needs a gid: it allows that gid to be shared' })
  .meta({ examples: [{ name: 'deploy', gid: 1500 }] });

export type GroupSpec = z.infer<typeof groupSchema>;

export interface GroupLive {
  readonly name: string;
  readonly gid: number;
  /** Supplementary members listed in /etc/group, sorted. */
  readonly members: readonly string[];
  /** Users whose primary group it is (their gid is its gid), sorted. */
  readonly primaryOf: readonly string[];
}

function toLive(entry: GroupEntry | undefined, db: AccountDatabase): GroupLive | null {
  if (!entry) return null;
  const primaryOf = [...db.users.values()].filter((u) => u.gid === entry.gid).map((u) => u.name).sort();
  return { name: entry.name, gid: entry.gid, members: [...entry.members], primaryOf };
}

/** Deleting the primary group of users that stay leaves them without one: a plan error unless the spec said force. */
export function refuseGroupDelete(prior: GroupSpec, live: GroupLive | null, deletedAlongside: readonly { kind: string; spec: unknown }[]): string | undefined {
  if (live === null || prior.force) return undefined;
  const leaving = new Set(deletedAlongside.filter((r) => r.kind === 'User').map((r) => (r.spec as { name?: unknown } | null)?.name));
  const staying = live.primaryOf.filter((u) => !leaving.has(u));
  if (staying.length === 0) return undefined;
  return (
    `group ${live.name} is the primary group of ${staying.length === 1 ? 'user' : 'users'} ${staying.join(', ')}: deleting it would leave ` +
    `${staying.length === 1 ? 'that user' : 'them'} without one. Delete or move ${staying.length === 1 ? 'that user' : 'those users'} first, ` +
    'or set force: true on the Group and apply that before removing it'
  );
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
    const force = request.prior?.force === true ? ['-f'] : [];
    if (db.groups.has(name)) await run(['groupdel', ...prefix, ...force, '--', name], `deleting group ${name} (${request.address})`);
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
  const nonUnique = desired.nonUnique ? ['-o'] : [];
  if (current === undefined) {
    if (desired.gid !== undefined && !desired.nonUnique) {
      const holder = db.groupsById.get(desired.gid);
      if (holder) {
        throw new ProviderError(`cannot create group ${desired.name} (${request.address}) on ${hostLabel(handle)}: gid ${desired.gid} belongs to group ${holder.name}`);
      }
    }
    const argv = ['groupadd', ...prefix];
    if (desired.gid !== undefined) argv.push('-g', String(desired.gid), ...nonUnique);
    if (desired.system) argv.push('-r');
    await run([...argv, '--', desired.name], `creating group ${desired.name} (${request.address})`);
  } else if (desired.gid !== undefined && desired.gid !== current.gid) {
    await run(['groupmod', ...prefix, '-g', String(desired.gid), ...nonUnique, '--', desired.name], `changing the gid of group ${desired.name} (${request.address})`);
  }
  const after = await readAccounts(handle, [], signal);
  return toLive(after.db.groups.get(desired.name), after.db);
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
    return specs.map((s) => toLive(db.groups.get(s.name), db));
  },
  diff: diffGroup,
  refuseDelete: refuseGroupDelete,
  apply: (handle, request, ctx) => applyGroup(handle, request, ctx.signal),
};
