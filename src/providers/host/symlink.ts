import { z } from 'zod';
import { posix } from 'node:path';
import { describePathType, isSpecialPathType, type PathInfo, type PathType } from '../../transport/transport.js';
import { ProviderError, type ApplyRequest, type FieldChange, type Reference, type ResourceDiff, type ResourceProvider } from '../provider.js';
import {
  accountReferences,
  accountSchema,
  createdAttributes,
  diffAttributes,
  liveAttributes,
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
  pathReference,
  providesPath,
  readPaths,
  realPathOf,
  specialFileError,
  specialFileRefusal,
  specPathSchema,
  validatePathConflicts,
} from './paths.js';

export const symlinkSchema = z.strictObject({
  path: specPathSchema,
  /**
   * The link's text, stored as written (absolute, or relative to the link's
   * directory). It is never followed by Capstan, and an absolute one is NOT
   * rebased under the Host's root.
   */
  target: z
    .string({ error: 'target must be a string' })
    .min(1, { error: 'target must not be empty' })
    .max(4095, { error: 'target must be shorter than 4096 characters' })
    .refine((t) => !t.includes('\0'), { error: 'target must not contain a NUL character' }),
  owner: accountSchema('owner').optional(),
  group: accountSchema('group').optional(),
});

export type SymlinkSpec = z.infer<typeof symlinkSchema>;

export interface SymlinkLive extends Omit<LiveAttributes, 'mode'> {
  readonly path: string;
  /** `symlink`, or what occupies the path instead (to be replaced). */
  readonly type: Exclude<PathType, 'absent'>;
  /** The link's text; null when the path is not a link. */
  readonly target: string | null;
}

function toLive(path: string, info: PathInfo): SymlinkLive | null {
  if (info.type === 'absent') return null;
  const { mode: _mode, ...attributes } = liveAttributes(info);
  return { path, type: info.type, target: info.type === 'symlink' ? info.linkTarget : null, ...attributes };
}

const NO_MODE = { mode: false };

export function diffSymlink(desired: SymlinkSpec, live: SymlinkLive | null, prior: SymlinkSpec | null): ResourceDiff {
  const moved = prior !== null && prior.path !== desired.path;
  const pathField: FieldChange[] = moved ? [{ path: 'path', before: prior.path, after: desired.path }] : [];
  const created = (): FieldChange[] => [{ path: 'target', before: null, after: desired.target }, ...createdAttributes(desired, NO_MODE)];
  if (live === null) {
    const fields = [...pathField, ...created()];
    return moved ? { action: 'replace', fields, reason: `path changed from ${prior.path}` } : { action: 'create', fields };
  }
  if (live.type !== 'symlink') {
    const refusal = live.type === 'directory' ? ' (refused at apply unless the directory is empty)' : '';
    return {
      action: 'replace',
      fields: [...pathField, { path: 'type', before: live.type, after: 'symlink' }, ...created()],
      reason: `${desired.path} is ${describePathType(live.type)}, not a symbolic link${refusal}`,
      ...specialFileRefusal(desired.path, live.type, 'a symbolic link'),
    };
  }
  const fields = [...pathField];
  if (live.target !== desired.target) fields.push({ path: 'target', before: live.target, after: desired.target });
  fields.push(...diffAttributes(desired, { ...live, mode: null }, NO_MODE));
  if (moved) return { action: 'replace', fields, reason: `path changed from ${prior.path}` };
  return { action: fields.length > 0 ? 'update' : 'noop', fields };
}

async function applySymlink(
  handle: HostHandle,
  request: ApplyRequest<SymlinkSpec, SymlinkLive>,
  signal: AbortSignal,
): Promise<SymlinkLive | null> {
  const { transport } = handle;
  if (request.action === 'delete') {
    const path = request.prior?.path ?? request.live?.path;
    if (path === undefined) throw new Error(`cannot delete ${request.address}: no last applied spec names its path`);
    const [info] = await inspectConfined(handle, [path], { content: false, signal });
    if (info!.type === 'symlink') await transport.remove(realPathOf(handle.root, path), { type: 'symlink' });
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
  if (current.type === 'directory') {
    try {
      await transport.remove(real, { type: 'directory' });
    } catch (err) {
      const code = errorCode(err);
      if (code === 'ENOTEMPTY' || code === 'EEXIST') {
        throw new ProviderError(
          `cannot replace ${desired.path} on ${handle.address} with a symbolic link: it is a directory that is not empty`,
          { cause: err },
        );
      }
      throw err;
    }
  } else if (isSpecialPathType(current.type)) {
    throw specialFileError(handle, desired.path, current.type);
  }
  if (current.type !== 'symlink' || current.linkTarget !== desired.target) {
    await ensureParent(handle, real);
    // Renamed over whatever is there (a file, an old link): never a moment without an object at the path.
    await transport.symlink(desired.target, real);
    current = (await inspectConfined(handle, [desired.path], { content: false, signal }))[0]!;
  }
  await reconcileAttributes(handle, real, current, desired, ids, NO_MODE);

  if (oldPath !== null && oldInfo?.type === 'symlink') {
    await transport.remove(realPathOf(handle.root, oldPath), { type: 'symlink' });
  }
  const [after] = await inspectConfined(handle, [desired.path], { content: false, signal });
  return toLive(desired.path, after!);
}

/**
 * What the link names, as a spec path on the same Host (a relative target
 * resolved from the link's directory), and its owner and group: a link is
 * made after the File, Directory or Symlink that manages its target.
 */
function symlinkReferences(spec: SymlinkSpec): Reference[] {
  const named = posix.resolve(posix.dirname(spec.path), spec.target);
  return [...pathReference(named, ['target']), ...accountReferences(spec)];
}

export const symlinkProvider: ResourceProvider<SymlinkSpec, SymlinkLive, HostHandle> = {
  role: 'resource',
  kind: 'Symlink',
  description: 'A symbolic link on a Host; created or retargeted atomically, never followed.',
  schema: symlinkSchema,
  targetKind: 'Host',
  describe: (spec) => spec.path,
  claims: claimsOfPath,
  validate: (resource, sameTarget) => validatePathConflicts(resource, sameTarget),
  implicitDependencies: (resource, sameTarget) => enclosingDirectory(resource, sameTarget),
  provides: providesPath,
  references: symlinkReferences,
  async read(handle, specs, ctx) {
    await reportUnresolvedAccounts(handle, specs, ctx);
    return readPaths(handle, specs, ctx, { content: false }, (spec, info) => toLive(spec.path, info));
  },
  diff: diffSymlink,
  apply: (handle, request, ctx) => applySymlink(handle, request, ctx.signal),
};
