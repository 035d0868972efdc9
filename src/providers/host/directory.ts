import { z } from 'zod';
import { describePathType, isSpecialPathType, type PathInfo, type PathType } from '../../transport/transport.js';
import { ProviderError, type ApplyRequest, type FieldChange, type ResourceDiff, type ResourceProvider } from '../provider.js';
import {
  accountReferences,
  accountSchema,
  createdAttributes,
  diffAttributes,
  liveAttributes,
  modeSchema,
  reconcileAttributes,
  reportUnresolvedAccounts,
  resolveOwnership,
  type LiveAttributes,
} from './attributes.js';
import type { HostHandle } from './host.js';
import {
  claimsOfPath,
  enclosingDirectory,
  ensureParent,
  errorCode,
  inspectConfined,
  providesPath,
  readPaths,
  realPathOf,
  specialFileError,
  specialFileRefusal,
  specPathSchema,
  validatePathConflicts,
} from './paths.js';

export const directorySchema = z.strictObject({
  path: specPathSchema,
  mode: modeSchema.optional(),
  owner: accountSchema('owner').optional(),
  group: accountSchema('group').optional(),
});

export type DirectorySpec = z.infer<typeof directorySchema>;

/** What is at a Directory's path: a directory, or (to be replaced) something else. */
export interface DirectoryLive extends LiveAttributes {
  readonly path: string;
  readonly type: Exclude<PathType, 'absent'>;
}

const DEFAULT_MODE = '0755';

function toLive(path: string, info: PathInfo): DirectoryLive | null {
  if (info.type === 'absent') return null;
  return { path, type: info.type, ...liveAttributes(info) };
}

export function diffDirectory(desired: DirectorySpec, live: DirectoryLive | null, prior: DirectorySpec | null): ResourceDiff {
  const moved = prior !== null && prior.path !== desired.path;
  const pathField: FieldChange[] = moved ? [{ path: 'path', before: prior.path, after: desired.path }] : [];
  if (live === null) {
    const fields = [...pathField, ...createdAttributes(desired)];
    return moved
      ? { action: 'replace', fields, reason: `path changed from ${prior.path}: the directory is moved with its contents` }
      : { action: 'create', fields };
  }
  if (live.type !== 'directory') {
    return {
      action: 'replace',
      fields: [...pathField, { path: 'type', before: live.type, after: 'directory' }, ...createdAttributes(desired)],
      reason: `${desired.path} is ${describePathType(live.type)}, not a directory`,
      ...specialFileRefusal(desired.path, live.type, 'a directory'),
    };
  }
  const fields = [...pathField, ...diffAttributes(desired, live)];
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
    const [info] = await inspectConfined(handle, [path], { content: false, signal });
    // Something else took the path since: it is not ours to delete.
    if (info!.type !== 'directory') return null;
    await removeEmptyDirectory(handle, path);
    return null;
  }

  const desired = request.desired;
  if (desired === null) throw new Error(`${request.action} of ${request.address} needs a desired spec`);
  const oldPath = request.prior !== null && request.prior.path !== desired.path ? request.prior.path : null;
  const [info, oldInfo] = await inspectConfined(handle, oldPath ? [desired.path, oldPath] : [desired.path], {
    content: false,
    signal,
  });
  const real = realPathOf(handle.root, desired.path);
  const ids = await resolveOwnership(handle, desired);

  let current = info!;
  if (current.type === 'file' || current.type === 'symlink') {
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
  await reconcileAttributes(handle, real, current, desired, ids, { mode: true });

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
  description: 'A directory on a Host, with its mode and owner; created with its parents, removed only when empty.',
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
    return readPaths(handle, specs, ctx, { content: false }, (spec, info) => toLive(spec.path, info));
  },
  diff: diffDirectory,
  apply: (handle, request, ctx) => applyDirectory(handle, request, ctx.signal),
};
