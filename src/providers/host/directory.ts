import { z } from 'zod';
import { describePathType, isSpecialPathType, type PathInfo, type PathType } from '../../transport/transport.js';
import { PartialReadError, ProviderError, type ApplyRequest, type FieldChange, type ReadContext, type ResourceDiff, type ResourceProvider } from '../provider.js';
import {
  accountMatches,
  accountReferences,
  createdAttributes,
  diffAttributes,
  groupField,
  liveAttributes,
  modeField,
  ownerField,
  reconcileAttributes,
  reportUnresolvedAccounts,
  resolveMode,
  resolveOwnership,
  withResolvedMode,
  type LiveAttributes,
} from './attributes.js';
import { applySync, readSourceTree, readSync, type SourceSync } from './directory-source.js';
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
  listTrees,
  summarise,
  typeRefusal,
  validatePathConflicts,
  type TreeEntry,
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
        description:
          'state: present: owner, group and mode apply to everything below as well (mode to directories, fileMode or else mode to regular files, owner and group to links). state: absent: remove the directory with everything below it (the plan lists what goes); without it, a directory that is not empty is a plan error.',
        examples: [true],
      }),
    fileMode: modeField('With recurse: true or source:, the mode of the regular files below (mode with recurse when omitted, else 0644); "u=rwX,g=rX,o=" suits both'),
    source: z
      .string({ error: 'source must be a path' })
      .regex(/^[^/\0].*\/$/, { error: 'source must be a directory of the repository, relative to the YAML file, ending with "/" (files/nginx/)' })
      .optional()
      .meta({ description: 'A directory of the repository (relative to the YAML file, ending with "/"): its files are kept below the directory, created and updated.', examples: ['files/nginx/'] }),
    purge: z
      .boolean({ error: 'purge must be true or false' })
      .default(false)
      .meta({ description: 'With source:, remove what is below the directory and not in the source.', examples: [true] }),
    files: z
      .record(z.string(), z.string())
      .optional()
      .meta({ description: 'Filled from source: at load time (relative path to base64 bytes); not written by hand.', examples: [{ 'nginx.conf': 'dXNlciB3d3ctZGF0YTsK' }] }),
    force: forceField('a directory'),
  })
  .superRefine((spec, ctx) => {
    if (spec.state === 'absent') {
      for (const field of ['mode', 'fileMode', 'owner', 'group', 'source', 'files'] as const) {
        if (spec[field] !== undefined) ctx.addIssue({ code: 'custom', path: [field], message: `${field} is for state: present; a Directory with state: absent takes path, recurse and force only` });
      }
    } else if (spec.fileMode !== undefined && !spec.recurse && spec.source === undefined && spec.files === undefined) {
      ctx.addIssue({ code: 'custom', path: ['fileMode'], message: 'fileMode is the mode of the files below the directory: it needs recurse: true or source:' });
    }
    if (spec.purge && spec.source === undefined && spec.files === undefined) {
      ctx.addIssue({ code: 'custom', path: ['purge'], message: 'purge: true removes what a source: does not have: it needs source:' });
    }
  })
  .meta({ examples: [{ path: '/srv/app', mode: '0750', owner: 'deploy', group: 'deploy' }] });

/** The defaulted fields are optional: a spec stored before they existed lacks them (absent means the default). */
export type DirectorySpec = WithOptional<z.infer<typeof directorySchema>, 'state' | 'recurse' | 'force' | 'purge'>;

/** What is at a Directory's path: a directory, or (to be replaced) something else. */
export interface DirectoryLive extends LiveAttributes {
  readonly path: string;
  readonly type: Exclude<PathType, 'absent'>;
  /** What is below the directory: read for a Directory with state: absent only. */
  readonly tree?: TreeSummary | undefined;
  /** With recurse: true (state: present): how many objects are below, and which differ from the spec's owner, group or mode. */
  readonly below?: { readonly count: number; readonly differing: TreeSummary } | undefined;
  /** With source: what is still to create, update and (purge: true) remove below. */
  readonly sync?: SourceSync | undefined;
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
    const files = Object.keys(desired.files ?? {}).map((rel) => `${desired.path}/${rel}`);
    if (files.length > 0) fields.push({ path: 'source.create', before: null, after: `${files.length}: ${describePaths(summarise(files))}` });
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
  for (const what of ['create', 'update', 'purge'] as const) {
    const list = live.sync?.[what];
    if (list && list.count > 0) fields.push({ path: `source.${what}`, before: null, after: `${list.count}: ${describePaths(list)}` });
  }
  if (desired.recurse && live.below && live.below.differing.count > 0) {
    const { count, differing } = live.below;
    fields.push({ path: 'recurse', before: `${differing.count} of ${count} below differ: ${describePaths(differing)}`, after: describeRecursive(desired) });
  }
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
  if (desired.files !== undefined) {
    const [below] = desired.purge ? await listTrees(handle, [desired.path], signal) : [undefined];
    await applySync(handle, desired, below, ids, signal);
  }
  if (desired.recurse) await applyBelow(handle, desired, ids, signal);
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
  const [after] = await inspectConfined(handle, [desired.path], { content: false, signal, accountNames: true });
  const [live] = await addTrees(handle, [desired], [toLive(desired.path, after!)], signal);
  return live ?? null;
}

/** `/a, /b, ... (and N more)`. */
function describePaths(tree: TreeSummary): string {
  return tree.paths.join(', ') + (tree.count > tree.paths.length ? `, ... (and ${tree.count - tree.paths.length} more)` : '');
}

/** What recurse: true sets below: `owner www-data, group www-data, mode 0750, files 0640`. */
function describeRecursive(spec: DirectorySpec): string {
  const parts: string[] = [];
  if (spec.owner !== undefined) parts.push(`owner ${spec.owner}`);
  if (spec.group !== undefined) parts.push(`group ${spec.group}`);
  if (spec.mode !== undefined) parts.push(`mode ${spec.mode}`);
  if (spec.fileMode !== undefined) parts.push(`files ${spec.fileMode}`);
  return parts.join(', ');
}

/** The mode recurse: true wants for an object below (none for a link). */
function modeBelow(spec: DirectorySpec, entry: TreeEntry): string | undefined {
  if (entry.type === 'directory') return spec.mode;
  if (entry.type === 'file') return spec.fileMode ?? spec.mode;
  return undefined;
}

/** An object below that recurse: true would change. */
function differsBelow(spec: DirectorySpec, entry: TreeEntry): boolean {
  if (spec.owner !== undefined && !accountMatches(spec.owner, entry.uid, entry.owner)) return true;
  if (spec.group !== undefined && !accountMatches(spec.group, entry.gid, entry.group)) return true;
  const mode = modeBelow(spec, entry);
  return mode !== undefined && resolveMode(mode, entry.mode, { directory: entry.type === 'directory' }) !== entry.mode;
}

/** chmod's own reading of a symbolic mode with no "who" applies the umask; ours means `a`. */
function chmodArgument(mode: string): string {
  return /^[0-7]{4}$/.test(mode) ? mode : mode.split(',').map((clause) => (/^[-+=]/.test(clause) ? `a${clause}` : clause)).join(',');
}

/**
 * recurse: true: owner and group of everything below (links themselves, never
 * followed), then the modes of directories and regular files (after chown,
 * which clears setuid and setgid). One `find` per step, whatever the size of
 * the tree; a failure part way leaves the rest to the next run, which plans
 * what still differs.
 */
async function applyBelow(handle: HostHandle, desired: DirectorySpec, ids: { uid: number | undefined; gid: number | undefined }, signal: AbortSignal): Promise<void> {
  const real = realPathOf(handle.root, desired.path);
  const steps: { what: string; argv: string[] }[] = [];
  if (ids.uid !== undefined || ids.gid !== undefined) {
    const owner = `${ids.uid ?? ''}${ids.gid !== undefined ? `:${ids.gid}` : ''}`;
    steps.push({ what: 'owner and group', argv: ['find', real, '-mindepth', '1', '-exec', 'chown', '-h', owner, '--', '{}', '+'] });
  }
  if (desired.mode !== undefined) {
    steps.push({ what: 'the mode of directories', argv: ['find', real, '-mindepth', '1', '-type', 'd', '-exec', 'chmod', chmodArgument(desired.mode), '--', '{}', '+'] });
  }
  const fileMode = desired.fileMode ?? desired.mode;
  if (fileMode !== undefined) {
    steps.push({ what: 'the mode of files', argv: ['find', real, '-mindepth', '1', '-type', 'f', '-exec', 'chmod', chmodArgument(fileMode), '--', '{}', '+'] });
  }
  for (const { what, argv } of steps) {
    const result = await handle.transport.exec(argv, { timeoutMs: 600_000, signal });
    if (result.exitCode !== 0) {
      throw new ProviderError(`cannot set ${what} below ${desired.path} on ${handle.address}: ${result.stderr.trim() || `exit ${result.exitCode}`}`);
    }
  }
}

/**
 * What `diff` needs from below each directory, in one `find` for the batch:
 * the tree a Directory with state: absent would remove, or (recurse: true)
 * what differs from the spec. `undefined` entries (failed reads) stay as they are.
 */
async function addTrees(
  handle: HostHandle,
  specs: readonly DirectorySpec[],
  lives: readonly (DirectoryLive | null | undefined)[],
  signal: AbortSignal | undefined,
): Promise<(DirectoryLive | null | undefined)[]> {
  const listed = lives.flatMap((l, i) => (l?.type === 'directory' && (specs[i]!.state === 'absent' || specs[i]!.recurse || specs[i]!.purge) ? [i] : []));
  const trees = await listTrees(handle, listed.map((i) => specs[i]!.path), signal);
  const out = [...lives];
  listed.forEach((i, n) => {
    const spec = specs[i]!;
    const entries = trees[n]!;
    out[i] =
      spec.state === 'absent'
        ? { ...lives[i]!, tree: summarise(entries.map((e) => e.path)) }
        : spec.recurse
          ? { ...lives[i]!, below: { count: entries.length, differing: summarise(entries.filter((e) => differsBelow(spec, e)).map((e) => e.path)) } }
          : lives[i]!;
  });
  // source: one batched inspect of its files per Directory (and the find above for purge).
  for (let i = 0; i < out.length; i++) {
    const live = out[i];
    const spec = specs[i]!;
    if (live?.type !== 'directory' || spec.state === 'absent' || spec.files === undefined) continue;
    const n = listed.indexOf(i);
    out[i] = { ...live, sync: await readSync(handle, spec, n >= 0 ? trees[n] : undefined, signal) };
  }
  return out;
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

/** `read`, with what is below each directory that diff needs (`addTrees`). */
async function readDirectories(handle: HostHandle, specs: readonly DirectorySpec[], ctx: ReadContext): Promise<(DirectoryLive | null)[]> {
  let results: readonly ({ live: DirectoryLive | null } | { error: Error })[];
  try {
    results = (await readPaths(handle, specs, ctx, { content: false }, (spec, info) => toLive(spec.path, info))).map((live) => ({ live }));
  } catch (err) {
    if (!(err instanceof PartialReadError)) throw err;
    results = (err as PartialReadError<DirectoryLive | null>).results;
  }
  const lives = await addTrees(handle, specs, results.map((r) => ('live' in r ? r.live : undefined)), ctx.signal);
  if (results.some((r) => 'error' in r)) throw new PartialReadError(results.map((r, i) => ('error' in r ? r : { live: lives[i] ?? null })));
  return lives.map((l) => l ?? null);
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
  async resolve(spec, from, ctx) {
    if (spec.source === undefined) return spec;
    const { source, ...rest } = spec;
    return { ...rest, files: await readSourceTree(source, from, ctx) };
  },
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
