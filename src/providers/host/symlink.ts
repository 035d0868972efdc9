import { z } from 'zod';
import { posix } from 'node:path';
import { describePathType, isSpecialPathType, type PathInfo, type PathType } from '../../transport/transport.js';
import { ProviderError, type ApplyRequest, type FieldChange, type Reference, type ResourceDiff, type ResourceProvider } from '../provider.js';
import {
  accountReferences,
  createdAttributes,
  groupField,
  ownerField,
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
  forceField,
  errorCode,
  inspectConfined,
  pathReference,
  providesPath,
  readPaths,
  realPathOf,
  specialFileError,
  specialFileRefusal,
  specPathField,
  stateField,
  typeRefusal,
  validatePathConflicts,
  type WithOptional,
} from './paths.js';

export const symlinkSchema = z
  .strictObject({
    path: specPathField('The link itself: an absolute path on the host (below its root).', '/etc/nginx/sites-enabled/app'),
    state: stateField('a symbolic link to target'),
    /**
     * The link's text, stored as written (absolute, or relative to the link's
     * directory). It is never followed by Capstan, and an absolute one is NOT
     * rebased under the Host's root.
     */
    target: z
      .string({ error: 'target must be a string' })
      .min(1, { error: 'target must not be empty' })
      .max(4095, { error: 'target must be shorter than 4096 characters' })
      .refine((t) => !t.includes('\0'), { error: 'target must not contain a NUL character' })
      .optional()
      .meta({
        description: "The link's text, stored as written (absolute, or relative to the link's directory); never followed, and an absolute one is not rebased under the Host's root. Required with state: present.",
        examples: ['../sites-available/app', 'releases/v42'],
      }),
    owner: ownerField(),
    group: groupField(),
    force: forceField('a symbolic link'),
  })
  .superRefine((spec, ctx) => {
    if (spec.state === 'present' && spec.target === undefined) ctx.addIssue({ code: 'custom', path: ['target'], message: 'a Symlink needs a target (or state: absent)' });
    if (spec.state === 'absent') {
      for (const field of ['target', 'owner', 'group'] as const) {
        if (spec[field] !== undefined) ctx.addIssue({ code: 'custom', path: [field], message: `${field} is for state: present; a Symlink with state: absent takes path and force only` });
      }
    }
  })
  .meta({ examples: [{ path: '/etc/nginx/sites-enabled/app', target: '/etc/nginx/sites-available/app' }] });

/** The defaulted fields are optional: a spec stored before they existed lacks them (absent means the default). */
export type SymlinkSpec = WithOptional<z.infer<typeof symlinkSchema>, 'state' | 'force'>;

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

/** The link's text: the schema requires it for state: present. */
function targetOf(spec: SymlinkSpec): string {
  if (spec.target === undefined) throw new ProviderError(`Symlink ${spec.path} has no target`);
  return spec.target;
}

function diffAbsent(desired: SymlinkSpec, live: SymlinkLive | null): ResourceDiff {
  if (live === null) return { action: 'noop', fields: [] };
  const fields: FieldChange[] = [{ path: 'state', before: 'present', after: 'absent' }];
  if (live.type === 'symlink') return { action: 'update', fields, reason: `removes the symbolic link ${desired.path} -> ${live.target ?? '?'}` };
  const refused =
    live.type === 'directory' || live.type === 'other'
      ? { message: `${desired.path} is ${describePathType(live.type)}, not a symbolic link: a Symlink with state: absent removes a link (or, with force: true, a file) only`, field: ['path'] }
      : typeRefusal(desired, live.type, 'a symbolic link', { removing: true });
  return { action: 'update', fields, reason: `removes the ${live.type} at ${desired.path}`, ...(refused ? { refusal: refused } : {}) };
}

export function diffSymlink(desired: SymlinkSpec, live: SymlinkLive | null, prior: SymlinkSpec | null): ResourceDiff {
  if (desired.state === 'absent') return diffAbsent(desired, live);
  const moved = prior !== null && prior.state !== 'absent' && prior.path !== desired.path;
  const pathField: FieldChange[] = moved ? [{ path: 'path', before: prior.path, after: desired.path }] : [];
  const created = (): FieldChange[] => [{ path: 'target', before: null, after: targetOf(desired) }, ...createdAttributes(desired, NO_MODE)];
  if (live === null) {
    const fields = [...pathField, ...created()];
    return moved ? { action: 'replace', fields, reason: `path changed from ${prior.path}` } : { action: 'create', fields };
  }
  if (live.type !== 'symlink') {
    const refusal = live.type === 'directory' ? ' (refused at apply unless the directory is empty)' : '';
    const refused = typeRefusal(desired, live.type, 'a symbolic link', { removing: false });
    return {
      action: 'replace',
      fields: [...pathField, { path: 'type', before: live.type, after: 'symlink' }, ...created()],
      reason: `${desired.path} is ${describePathType(live.type)}, not a symbolic link${refusal}`,
      ...(isSpecialPathType(live.type) ? specialFileRefusal(desired.path, live.type, 'a symbolic link') : refused ? { refusal: refused } : {}),
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
    // A Symlink with state: absent made nothing to delete.
    if (request.prior?.state === 'absent') return null;
    const [info] = await inspectConfined(handle, [path], { content: false, signal });
    if (info!.type === 'symlink') await transport.remove(realPathOf(handle.root, path), { type: 'symlink' });
    return null;
  }

  const desired = request.desired;
  if (desired === null) throw new Error(`${request.action} of ${request.address} needs a desired spec`);
  if (desired.state === 'absent') return applyAbsent(handle, desired, signal);
  const target = targetOf(desired);
  const oldPath = request.prior !== null && request.prior.state !== 'absent' && request.prior.path !== desired.path ? request.prior.path : null;
  const [info, oldInfo] = await inspectConfined(handle, oldPath ? [desired.path, oldPath] : [desired.path], {
    content: false,
    signal,
  });
  const real = realPathOf(handle.root, desired.path);
  const ids = await resolveOwnership(handle, desired);

  let current = info!;
  if (current.type !== 'symlink' && current.type !== 'absent' && !isSpecialPathType(current.type) && !desired.force) {
    // The plan refused this without force: true; an object that appeared since is refused here.
    throw new ProviderError(typeRefusal(desired, current.type, 'a symbolic link', { removing: false })!.message);
  }
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
  if (current.type !== 'symlink' || current.linkTarget !== target) {
    await ensureParent(handle, real);
    // Renamed over whatever is there (a file, an old link): never a moment without an object at the path.
    await transport.symlink(target, real);
    current = (await inspectConfined(handle, [desired.path], { content: false, signal }))[0]!;
  }
  await reconcileAttributes(handle, real, current, desired, ids, NO_MODE);

  if (oldPath !== null && oldInfo?.type === 'symlink') {
    await transport.remove(realPathOf(handle.root, oldPath), { type: 'symlink' });
  }
  const [after] = await inspectConfined(handle, [desired.path], { content: false, signal, accountNames: true });
  return toLive(desired.path, after!);
}

/**
 * What the link names, as a spec path on the same Host (a relative target
 * resolved from the link's directory), and its owner and group: a link is
 * made after the File, Directory or Symlink that manages its target.
 */
function symlinkReferences(spec: SymlinkSpec): Reference[] {
  if (spec.target === undefined) return accountReferences(spec);
  const named = posix.resolve(posix.dirname(spec.path), spec.target);
  return [...pathReference(named, ['target']), ...accountReferences(spec)];
}

async function applyAbsent(handle: HostHandle, desired: SymlinkSpec, signal: AbortSignal): Promise<null> {
  const [info] = await inspectConfined(handle, [desired.path], { content: false, signal });
  const type = info!.type;
  if (type === 'absent') return null;
  if (type !== 'symlink' && (type !== 'file' || !desired.force)) {
    throw new ProviderError(`refusing to remove ${desired.path} on ${handle.address}: it is ${describePathType(type)}, not a symbolic link`);
  }
  await handle.transport.remove(realPathOf(handle.root, desired.path), { type });
  return null;
}

export const symlinkProvider: ResourceProvider<SymlinkSpec, SymlinkLive, HostHandle> = {
  role: 'resource',
  kind: 'Symlink',
  description: 'A symbolic link on a Host; created or retargeted atomically, never followed. With state: absent, the link must not exist.',
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
