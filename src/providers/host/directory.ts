import { z } from 'zod';
import { describePathType, isSpecialPathType, type PathInfo, type PathType } from '../../transport/transport.js';
import { PartialReadError, ProviderError, type ApplyRequest, type FieldChange, type ReadContext, type ResourceDiff, type ResourceProvider } from '../provider.js';
import {
  accountReferences,
  createdAttributes,
  diffAttributes,
  groupField,
  liveAttributes,
  modeField,
  ownerField,
  reconcileAttributes,
  reportUnresolvedAccounts,
  resolveOwnership,
  withResolvedMode,
  type LiveAttributes,
} from './attributes.js';
import type { HostHandle } from './host.js';
import {
  claimsOfPath,
  describeTree,
  enclosingDirectory,
  forceField,
  ensureParent,
  errorCode,
  inspectConfined,
  providesPath,
  readPaths,
  realPathOf,
  removeTree,
  specialFileError,
  specialFileRefusal,
  specPathField,
  stateField,
  summariseTrees,
  typeRefusal,
  validatePathConflicts,
  type TreeSummary,
  type WithOptional,
} from './paths.js';

export const directorySchema = z
  .strictObject({
    path: specPathField('The directory: an absolute path on the host (below its root).', '/srv/www'),
    state: stateField('a directory, created with its missing parents'),
    mode: modeField('Mode of the directory (0755 when Capstan creates it and mode is omitted)'),
    owner: ownerField(),
    group: groupField(),
    recurse: z
      .boolean({ error: 'recurse must be true or false' })
      .default(false)
      .meta({
        description: 'With state: absent, remove the directory with everything below it (the plan lists what goes). Without it, a directory that is not empty is a plan error.',
        examples: [true],
      }),
    force: forceField('a directory'),
  })
  .superRefine((spec, ctx) => {
    if (spec.state === 'absent') {
      for (const field of ['mode', 'owner', 'group'] as const) {
        if (spec[field] !== undefined) ctx.addIssue({ code: 'custom', path: [field], message: `${field} is for state: present; a Directory with state: absent takes path, recurse and force only` });
      }
    } else if (spec.recurse) {
      ctx.addIssue({ code: 'custom', path: ['recurse'], message: 'recurse: true is for state: absent (removing a tree); it does not apply owner, group or mode below the directory' });
    }
  });

/** The defaulted fields are optional: a spec stored before they existed lacks them (absent means the default). */
export type DirectorySpec = WithOptional<z.infer<typeof directorySchema>, 'state' | 'recurse' | 'force'>;

/** What is at a Directory's path: a directory, or (to be replaced) something else. */
export interface DirectoryLive extends LiveAttributes {
  readonly path: string;
  readonly type: Exclude<PathType, 'absent'>;
  /** What is below the directory: read for a Directory with state: absent only. */
  readonly tree?: TreeSummary | undefined;
}

const DEFAULT_MODE = '0755';
const MODE_OPTIONS = { directory: true, defaultMode: DEFAULT_MODE };

function toLive(path: string, info: PathInfo): DirectoryLive | null {
  if (info.type === 'absent') return null;
  return { path, type: info.type, ...liveAttributes(info) };
}

/** A Directory with state: absent whose path is still occupied. */
function diffAbsent(desired: DirectorySpec, live: DirectoryLive | null): ResourceDiff {
  if (live === null) return { action: 'noop', fields: [] };
  const fields: FieldChange[] = [{ path: 'state', before: 'present', after: 'absent' }];
  if (live.type !== 'directory') {
    const refused = typeRefusal(desired, live.type, 'a directory', { removing: true });
    return { action: 'update', fields, reason: `removes the ${live.type} at ${desired.path}`, ...(refused ? { refusal: refused } : {}) };
  }
  const tree = live.tree ?? { count: 0, paths: [] };
  if (tree.count === 0) return { action: 'update', fields, reason: `removes the empty directory ${desired.path}` };
  fields.push({ path: 'contents', before: describeTree(desired.path, tree), after: null });
  if (!desired.recurse) {
    return {
      action: 'update',
      fields,
      reason: `${desired.path} is not empty`,
      refusal: {
        message: `${desired.path} is not empty (${describeTree(desired.path, tree)}): set recurse: true to remove it with everything below it`,
        field: ['state'],
      },
    };
  }
  return { action: 'update', fields, reason: `removes ${desired.path} and the ${tree.count} object${tree.count === 1 ? '' : 's'} below it` };
}

export function diffDirectory(desired: DirectorySpec, live: DirectoryLive | null, prior: DirectorySpec | null): ResourceDiff {
  if (desired.state === 'absent') return diffAbsent(desired, live);
  const moved = prior !== null && prior.state !== 'absent' && prior.path !== desired.path;
  const pathField: FieldChange[] = moved ? [{ path: 'path', before: prior.path, after: desired.path }] : [];
  if (live === null) {
    const fields = [...pathField, ...createdAttributes(withResolvedMode(desired, null, MODE_OPTIONS))];
    return moved
      ? { action: 'replace', fields, reason: `path changed from ${prior.path}: the directory is moved with its contents` }
      : { action: 'create', fields };
  }
  if (live.type !== 'directory') {
    const refused = typeRefusal(desired, live.type, 'a directory', { removing: false });
    return {
      action: 'replace',
      fields: [...pathField, { path: 'type', before: live.type, after: 'directory' }, ...createdAttributes(withResolvedMode(desired, null, MODE_OPTIONS))],
      reason: `${desired.path} is ${describePathType(live.type)}, not a directory`,
      ...(isSpecialPathType(live.type) ? specialFileRefusal(desired.path, live.type, 'a directory') : refused ? { refusal: refused } : {}),
    };
  }
  const fields = [...pathField, ...diffAttributes(withResolvedMode(desired, live.mode, MODE_OPTIONS), live)];
  if (moved) return { action: 'replace', fields, reason: `path changed from ${prior.path}` };
  return { action: fields.length > 0 ? 'update' : 'noop', fields };
}

async function applyDirectory(
  handle: HostHandle,
  request: ApplyRequest<DirectorySpec, DirectoryLive>,
  signal: AbortSignal,
): Promise<DirectoryLive | null> {
  const { transport } = handle;
  if (request.action === 'delete') {
    const path = request.prior?.path ?? request.live?.path;
    if (path === undefined) throw new Error(`cannot delete ${request.address}: no last applied spec names its path`);
    // A Directory with state: absent made nothing to delete.
    if (request.prior?.state === 'absent') return null;
    const [info] = await inspectConfined(handle, [path], { content: false, signal });
    // Something else took the path since: it is not ours to delete.
    if (info!.type !== 'directory') return null;
    await removeEmptyDirectory(handle, path);
    return null;
  }

  const desired = request.desired;
  if (desired === null) throw new Error(`${request.action} of ${request.address} needs a desired spec`);
  if (desired.state === 'absent') return applyAbsent(handle, desired, signal);
  const oldPath = request.prior !== null && request.prior.state !== 'absent' && request.prior.path !== desired.path ? request.prior.path : null;
  const [info, oldInfo] = await inspectConfined(handle, oldPath ? [desired.path, oldPath] : [desired.path], {
    content: false,
    signal,
  });
  const real = realPathOf(handle.root, desired.path);
  const ids = await resolveOwnership(handle, desired);

  let current = info!;
  if (current.type === 'file' || current.type === 'symlink') {
    // The plan refused this without force: true; an object that appeared since is refused here.
    if (!desired.force) throw new ProviderError(typeRefusal(desired, current.type, 'a directory', { removing: false })!.message);
    await transport.remove(real, { type: current.type });
  } else if (isSpecialPathType(current.type)) {
    throw specialFileError(handle, desired.path, current.type);
  }

  let moved = false;
  if (current.type !== 'directory') {
    if (oldPath !== null && oldInfo?.type === 'directory') {
      await ensureParent(handle, real);
      try {
        await transport.rename(realPathOf(handle.root, oldPath), real);
        moved = true;
      } catch (err) {
        // EXDEV: another filesystem; EINVAL: the new path lies inside the old one. Create it instead.
        if (errorCode(err) !== 'EXDEV' && errorCode(err) !== 'EINVAL') throw err;
      }
    }
    if (!moved) {
      await transport.mkdir(real, { mode: desired.mode ?? DEFAULT_MODE, uid: ids.uid, gid: ids.gid, parents: true });
    }
    current = (await inspectConfined(handle, [desired.path], { content: false, signal }))[0]!;
  }
  await reconcileAttributes(handle, real, current, withResolvedMode(desired, current.mode, MODE_OPTIONS), ids, { mode: true });

  if (oldPath !== null && oldInfo?.type === 'directory' && !moved) {
    // The new directory exists; the old one goes when empty. Left in place when it
    // still holds files: its managed children move with their own replace.
    try {
      await transport.remove(realPathOf(handle.root, oldPath), { type: 'directory' });
    } catch (err) {
      if (errorCode(err) !== 'ENOTEMPTY' && errorCode(err) !== 'EEXIST') throw err;
    }
  }
  const [after] = await inspectConfined(handle, [desired.path], { content: false, signal });
  return toLive(desired.path, after!);
}

/** state: absent: whatever is at the path goes (a tree only with recurse, anything else only with force, as planned). */
async function applyAbsent(handle: HostHandle, desired: DirectorySpec, signal: AbortSignal): Promise<null> {
  const [info] = await inspectConfined(handle, [desired.path], { content: false, signal });
  const type = info!.type;
  if (type === 'absent') return null;
  if (type === 'directory') {
    if (desired.recurse) await removeTree(handle, desired.path, signal);
    else await removeEmptyDirectory(handle, desired.path);
    return null;
  }
  if (type !== 'file' && type !== 'symlink') throw specialFileError(handle, desired.path, type);
  const refused = typeRefusal(desired, type, 'a directory', { removing: true });
  if (refused) throw new ProviderError(refused.message);
  await handle.transport.remove(realPathOf(handle.root, desired.path), { type });
  return null;
}

/** `read`, with the tree below each directory that a Directory with state: absent would remove (one `find` for the batch). */
async function readDirectories(handle: HostHandle, specs: readonly DirectorySpec[], ctx: ReadContext): Promise<(DirectoryLive | null)[]> {
  let results: ({ live: DirectoryLive | null } | { error: Error })[];
  try {
    results = (await readPaths(handle, specs, ctx, { content: false }, (spec, info) => toLive(spec.path, info))).map((live) => ({ live }));
  } catch (err) {
    if (!(err instanceof PartialReadError)) throw err;
    results = [...(err as PartialReadError<DirectoryLive | null>).results];
  }
  const listed = results.flatMap((r, i) => ('live' in r && r.live?.type === 'directory' && specs[i]!.state === 'absent' ? [i] : []));
  const trees = await summariseTrees(handle, listed.map((i) => specs[i]!.path), ctx.signal);
  listed.forEach((i, n) => {
    const r = results[i] as { live: DirectoryLive };
    results[i] = { live: { ...r.live, tree: trees[n]! } };
  });
  if (results.some((r) => 'error' in r)) throw new PartialReadError(results);
  return results.map((r) => ('live' in r ? r.live : null));
}

async function removeEmptyDirectory(handle: HostHandle, path: string): Promise<void> {
  try {
    await handle.transport.remove(realPathOf(handle.root, path), { type: 'directory' });
  } catch (err) {
    const code = errorCode(err);
    if (code === 'ENOTEMPTY' || code === 'EEXIST') {
      throw new ProviderError(`directory ${path} is not empty: it holds files Capstan does not manage`, { cause: err });
    }
    throw err;
  }
}

export const directoryProvider: ResourceProvider<DirectorySpec, DirectoryLive, HostHandle> = {
  role: 'resource',
  kind: 'Directory',
  description:
    'A directory on a Host, with its mode and owner; created with its parents, removed only when empty. With state: absent, the path must not exist (recurse: true removes a tree).',
  schema: directorySchema,
  targetKind: 'Host',
  describe: (spec) => spec.path,
  claims: claimsOfPath,
  validate: (resource, sameTarget) => validatePathConflicts(resource, sameTarget),
  implicitDependencies: (resource, sameTarget) => enclosingDirectory(resource, sameTarget),
  provides: providesPath,
  references: accountReferences,
  async read(handle, specs, ctx) {
    await reportUnresolvedAccounts(handle, specs, ctx);
    return readDirectories(handle, specs, ctx);
  },
  diff: diffDirectory,
  apply: (handle, request, ctx) => applyDirectory(handle, request, ctx.signal),
};
