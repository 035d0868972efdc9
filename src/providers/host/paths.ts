/**
 * Paths on a Host, and the rule that keeps them inside its `root`.
 *
 * A spec path is an absolute, normalised POSIX path (`/srv/app/motd`); the real
 * path is `root + path`. Before reading or writing, providers go through
 * `inspectConfined`, which asks the transport to resolve each path's parent
 * chain and refuses (ProviderError) a path whose existing ancestors lead outside
 * the root through a symbolic link, or through a link to a missing target. The
 * final component is never followed.
 *
 * What this does not defend against: a process that swaps a directory inside the
 * root for a symbolic link between the check and the write. The check protects
 * against links that exist when Capstan runs, not a concurrent adversary.
 */
import { posix } from 'node:path';
import { z } from 'zod';
import { error, type Diagnostic } from '../../diag/diagnostic.js';
import type { Address, Resource } from '../../spec/resource.js';
import { describePathType, isSpecialPathType, type PathInfo, type PathType } from '../../transport/transport.js';
import { PartialReadError, ProviderError, type Claim, type ReadContext, type Reference, type ResourceDiff } from '../provider.js';
import { inspectWithHostAccounts, nameByHostAccounts } from './account-ids.js';
import type { HostHandle } from './host.js';

/** Live file content is read (and shown in diffs) up to this size; larger files are compared by hash only. */
export const MAX_CONTENT_BYTES = 1024 * 1024;

/** The kinds of the host family that manage a path; they share one namespace per host. */
const PATH_KINDS: ReadonlySet<string> = new Set(['Directory', 'File', 'Symlink']);

/** A valid spec path: absolute, no NUL, no empty, `.` or `..` segment, no trailing slash (the usual case, checked without splitting). */
const PLAIN_PATH = /^(?:\/(?!\.\.?(?:\/|$))[^/\0]+)+$/;

/** Why `path` is not a valid spec path, or null when it is. */
export function specPathProblem(path: string): string | null {
  if (PLAIN_PATH.test(path)) return null;
  if (path.includes('\0')) return 'path must not contain a NUL character';
  if (!path.startsWith('/')) return `path must be absolute (start with "/"): ${path}`;
  if (path === '/') return 'path must name something below "/"';
  if (path.endsWith('/')) return `path must not end with "/": ${path}`;
  const segments = path.slice(1).split('/');
  if (segments.includes('')) return `path must not contain empty segments ("//"): ${path}`;
  if (segments.includes('..')) return `path must not contain ".." segments: ${path}`;
  if (segments.includes('.')) return `path must not contain "." segments: ${path}`;
  return null;
}

/** An absolute path on the host, as written in a Directory, File or Symlink spec. */
export const specPathSchema = z.string({ error: 'path must be a string' }).superRefine((path, ctx) => {
  const problem = specPathProblem(path);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/** The `path` field of a kind, documented. */
export const specPathField = (description: string, example: string) => specPathSchema.meta({ description, examples: [example] });

/** A Host's `root`: absolute, `/` allowed, a trailing slash dropped. */
export const rootPathSchema = z
  .string({ error: 'root must be a string' })
  .superRefine((root, ctx) => {
    if (root === '/') return;
    const problem = specPathProblem(root.endsWith('/') ? root.slice(0, -1) : root);
    if (problem) ctx.addIssue({ code: 'custom', message: problem.replace(/^path/, 'root') });
  })
  .transform((root) => (root !== '/' && root.endsWith('/') ? root.slice(0, -1) : root));

/** `root + path`. Throws ProviderError for a path the schema would have refused. */
export function realPathOf(root: string, specPath: string): string {
  const problem = specPathProblem(specPath);
  if (problem) throw new ProviderError(problem);
  return root === '/' ? specPath : root + specPath;
}

/** The spec path of a real path inside the root, or the real path itself when it is outside. */
export function specPathOf(root: string, realPath: string): string {
  if (root === '/') return realPath;
  if (realPath === root) return '/';
  return realPath.startsWith(`${root}/`) ? realPath.slice(root.length) : realPath;
}

/** One path of a batch: what is there, or why it may not be used. */
export type ConfinedPath = { readonly info: PathInfo } | { readonly error: ProviderError };

export interface InspectPathsOptions {
  readonly content: boolean;
  readonly signal?: AbortSignal | undefined;
  /**
   * Name owners and groups from the Host's account databases (`<root>/etc/passwd`
   * on a rooted Host; see account-ids.ts), as File, Directory and Symlink
   * compare them. Without content that costs a second transport call on a
   * rooted Host, so only the kinds that show owner names ask for it; the others
   * get the machine's names.
   */
  readonly accountNames?: boolean | undefined;
}

/**
 * Inspects spec paths on the host in ONE transport call (two with
 * `accountNames` and no content, on a rooted Host) and answers for each path
 * on its own: its PathInfo, or the refusal of that path when its parent chain
 * escapes the root. Results are in the order of `specPaths`.
 */
export async function inspectEach(handle: HostHandle, specPaths: readonly string[], options: InspectPathsOptions): Promise<ConfinedPath[]> {
  const real = specPaths.map((p) => realPathOf(handle.root, p));
  const inspectOptions = { content: options.content, maxContentBytes: MAX_CONTENT_BYTES, confineTo: handle.realRoot, signal: options.signal };
  const infos = options.accountNames ? await inspectWithHostAccounts(handle, real, inspectOptions) : await handle.transport.inspect(real, inspectOptions);
  return infos.map((info, i) => (info.escape === null ? { info } : { error: escapeError(handle, specPaths[i]!, info) }));
}

/**
 * Like `inspectEach`, for a provider's own use in apply: rejects with the first
 * refused path's error.
 */
export async function inspectConfined(handle: HostHandle, specPaths: readonly string[], options: InspectPathsOptions): Promise<PathInfo[]> {
  return (await inspectEach(handle, specPaths, options)).map((r) => {
    if ('error' in r) throw r.error;
    return r.info;
  });
}

/** What a host-family resource claims on its machine: its real path (see `ResourceProvider.claims`). */
export function pathClaim(realPath: string): Claim {
  return { key: `path:${realPath}`, field: ['path'] };
}

/** `claims` of a Directory, File or Symlink: `root + path` of its Host. */
export function claimsOfPath(spec: { readonly path: string }, target: Resource): readonly Claim[] {
  const claim = hostPathClaim(target, spec.path, ['path']);
  return claim ? [claim] : [];
}

/** The claim of a spec path on a Host (`root + path`), for any kind that writes files there; undefined for a path the schema refuses. */
export function hostPathClaim(target: Resource, specPath: string, field?: readonly (string | number)[]): Claim | undefined {
  const root = hostRootOf(target.spec);
  if (root === undefined || specPathProblem(specPath) !== null) return undefined;
  return { key: `path:${root === '/' ? specPath : root + specPath}`, field };
}

function hostRootOf(spec: unknown): string | undefined {
  if (typeof spec !== 'object' || spec === null || !('root' in spec)) return undefined;
  return typeof spec.root === 'string' ? spec.root : undefined;
}

/**
 * `read` of a host-family kind: one transport call for the batch, each
 * resource's live state from `toLive`, a refused path failing that resource
 * alone (PartialReadError), and each path's real location reported to the
 * planner (`ReadContext.located`) so that aliases are found.
 */
export async function readPaths<Spec extends { readonly path: string }, Live>(
  handle: HostHandle,
  specs: readonly Spec[],
  ctx: ReadContext,
  options: { content: boolean },
  toLive: (spec: Spec, info: PathInfo) => Live | null,
): Promise<(Live | null)[]> {
  const answers = await inspectEach(
    handle,
    specs.map((s) => s.path),
    { content: options.content, signal: ctx.signal, accountNames: true },
  );
  const results = answers.map((a, i) => ('error' in a ? a : { live: toLive(specs[i]!, a.info) }));
  answers.forEach((a, i) => {
    if ('info' in a && a.info.realPath !== null) ctx.located?.(i, [pathClaim(a.info.realPath)]);
  });
  if (results.some((r) => 'error' in r)) throw new PartialReadError(results);
  return results.map((r) => ('live' in r ? r.live : null));
}

function escapeError(handle: HostHandle, specPath: string, info: PathInfo): ProviderError {
  const escape = info.escape!;
  const link = escape.symlink
    ? `the symbolic link ${specPathOf(handle.root, escape.symlink)} -> ${escape.linkTarget ?? '?'}`
    : 'a symbolic link';
  const where = `${handle.address}${handle.root === '/' ? '' : ` (root ${handle.root})`}`;
  if (escape.dangling) {
    return new ProviderError(
      `refusing ${specPath} on ${where}: its parent directory goes through ${link}, whose target does not exist; ` +
        'Capstan does not create directories through symbolic links',
    );
  }
  return new ProviderError(
    `refusing ${specPath} on ${where}: its parent directory leads outside the root through ${link} ` +
      `(it resolves to ${escape.resolvesTo})`,
  );
}

/** Creates the missing parents of a real path (inside the root: the caller has inspected it). */
export async function ensureParent(handle: HostHandle, realPath: string): Promise<void> {
  await handle.transport.mkdir(posix.dirname(realPath), { mode: '0755', parents: true });
}

interface PathIndex {
  readonly byPath: ReadonlyMap<string, readonly Resource[]>;
}

// validate and implicitDependencies are called once per resource with the same
// array of its target's resources: index it once, not once per resource.
const indexes = new WeakMap<readonly Resource[], PathIndex>();

function pathIndex(sameTarget: readonly Resource[]): PathIndex {
  let index = indexes.get(sameTarget);
  if (!index) {
    const byPath = new Map<string, Resource[]>();
    for (const r of sameTarget) {
      const path = managedPath(r);
      if (path === undefined) continue;
      const list = byPath.get(path);
      if (list) list.push(r);
      else byPath.set(path, [r]);
    }
    index = { byPath };
    indexes.set(sameTarget, index);
  }
  return index;
}

/** The path a host-family resource manages, when its spec has a valid one. */
function managedPath(resource: Resource): string | undefined {
  if (!PATH_KINDS.has(resource.kind)) return undefined;
  const spec = resource.spec;
  if (typeof spec !== 'object' || spec === null || !('path' in spec) || typeof spec.path !== 'string') return undefined;
  return specPathProblem(spec.path) === null ? spec.path : undefined;
}

/** `/a/b/c` → `/a/b`, `/a` (nearest first; `/` excluded). */
function ancestorsOf(path: string): string[] {
  const out: string[] = [];
  for (let p = posix.dirname(path); p !== '/'; p = posix.dirname(p)) out.push(p);
  return out;
}

/**
 * Path conflicts on one target: a path below one that is managed as a file or a
 * symbolic link. (The same path managed twice, on this target or through
 * another Host for the same machine and root, is found by the engine from
 * `claimsOfPath`: see src/spec/claims.ts.)
 */
export function validatePathConflicts(resource: Resource, sameTarget: readonly Resource[]): Diagnostic[] {
  const path = managedPath(resource);
  if (path === undefined) return [];
  const { byPath } = pathIndex(sameTarget);
  const diagnostics: Diagnostic[] = [];
  // Looked up only for a conflict: most resources have none.
  let at: { address: Address; source: ReturnType<Resource['positionOf']> } | undefined;
  const where = () => (at ??= { address: resource.address, source: resource.positionOf(['spec', 'path']) });
  for (const ancestor of ancestorsOf(path)) {
    for (const holder of byPath.get(ancestor) ?? []) {
      if (holder.kind === 'File') {
        diagnostics.push(error(`path ${path} lies below ${ancestor}, which ${holder.address} manages as a file`, where()));
      } else if (holder.kind === 'Symlink') {
        diagnostics.push(
          error(`path ${path} lies below ${ancestor}, which ${holder.address} manages as a symbolic link`, {
            ...where(),
            detail: "manage the path inside the link's target instead",
          }),
        );
      }
    }
  }
  return diagnostics;
}

/** The key by which a Directory, File or Symlink provides its path on a Host (see `ResourceProvider.provides`). */
export function pathKey(specPath: string): string {
  return `path:${specPath}`;
}

/** `provides` of a Directory, File or Symlink: its path. */
export function providesPath(spec: { readonly path: string; readonly state?: 'present' | 'absent' | undefined }): string[] {
  // state: absent removes the object: nothing can rely on it.
  return spec.state !== 'absent' && specPathProblem(spec.path) === null ? [pathKey(spec.path)] : [];
}

/** A reference to the object at a spec path (a link's target, a package's .deb), when the path is a valid one. */
export function pathReference(specPath: string, field: readonly (string | number)[], label = `path ${specPath}`): Reference[] {
  return specPathProblem(specPath) === null ? [{ key: pathKey(specPath), field, label }] : [];
}

/**
 * The part of a diff that says a special file (FIFO, socket, device) holds the
 * path where `wanted` ("a file") must go: apply refuses to remove one, every
 * time, so the plan is an error. Empty for any other type.
 */
export function specialFileRefusal(specPath: string, type: PathType, wanted: string): Pick<ResourceDiff, 'refusal'> {
  if (!isSpecialPathType(type)) return {};
  const what = describePathType(type);
  return {
    refusal: { message: `${specPath} is ${what}: Capstan does not replace ${what} with ${wanted}; remove it by hand, or choose another path`, field: ['path'] },
  };
}

/** Apply's refusal of a special file at the path (the plan already reported it: see `specialFileRefusal`). */
export function specialFileError(handle: HostHandle, specPath: string, type: PathType): ProviderError {
  return new ProviderError(`refusing to replace ${specPath} on ${handle.address}: it is ${describePathType(type)}`);
}

/** The nearest managed Directory above this resource's path on the same target. */
export function enclosingDirectory(resource: Resource, sameTarget: readonly Resource[]): Address[] {
  const path = managedPath(resource);
  if (path === undefined) return [];
  const { byPath } = pathIndex(sameTarget);
  for (const ancestor of ancestorsOf(path)) {
    const dir = (byPath.get(ancestor) ?? []).find((r) => r.kind === 'Directory' && r.address !== resource.address);
    if (dir) return [dir.address];
  }
  return [];
}

/** The errno-style code of a transport error, if any. */
export function errorCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

/** `T` with the keys `K` optional. */
export type WithOptional<T, K extends keyof T> = Omit<T, K> & Partial<Pick<T, K>>;

/** `state`: the path holds this kind's object (`present`), or nothing (`absent`, whoever made it). */
export const stateField = (what: string) =>
  z
    .enum(['present', 'absent'], { error: 'state must be "present" or "absent"' })
    .default('present')
    .meta({
      description: `present: the path is ${what}; absent: nothing is at the path (removed whether or not Capstan created it).`,
      examples: ['present', 'absent'],
    });

/** `force`: an object of another type at the path (which Capstan did not create) may be replaced or removed. */
export const forceField = (what: string) =>
  z
    .boolean({ error: 'force must be true or false' })
    .default(false)
    .meta({
      description: `Replace (or, with state: absent, remove) an object of another type at the path, e.g. a regular file where ${what} is wanted. Without it, such an object makes the plan an error.`,
      examples: [true],
    });

/**
 * The plan-time refusal of replacing (or removing) an object of another type
 * without `force: true`. Null when `force` allows it.
 */
export function typeRefusal(
  spec: { readonly path: string; readonly force?: boolean | undefined },
  found: PathInfo['type'],
  wanted: string,
  options: { removing: boolean },
): { message: string; field: readonly string[] } | null {
  if (spec.force === true) return null;
  const verb = options.removing ? 'remove' : 'replace';
  return {
    message:
      `${spec.path} is ${describePathType(found)}, not ${wanted}, and Capstan did not create it: ` +
      `refusing to ${verb} it (set force: true to ${verb} it${found === 'file' && !options.removing ? ', backup: true on a File to keep a copy' : ''})`,
    field: ['path'],
  };
}

/** What is below a directory: how many objects, and the first of their spec paths (sorted) up to `TREE_SAMPLE`. */
export interface TreeSummary {
  readonly count: number;
  readonly paths: readonly string[];
}

/** How many paths of a tree the plan lists. */
export const TREE_SAMPLE = 20;

const FIND_TIMEOUT_MS = 120_000;

/** One object below a listed directory. */
export interface TreeEntry {
  /** Spec path. */
  readonly path: string;
  readonly type: Exclude<PathInfo['type'], 'absent'>;
  /** Permission bits as four octal digits. */
  readonly mode: string;
  readonly uid: number;
  readonly gid: number;
  /** User name of `uid`, or null when it has none. */
  readonly owner: string | null;
  readonly group: string | null;
}

const FIND_TYPES: Record<string, TreeEntry['type']> = { f: 'file', d: 'directory', l: 'symlink' };
/** `find -printf` fields per object: starting point, path below it, type, mode, uid, user, gid, group. */
const FIND_FIELDS = 8;

/**
 * Lists everything below the directories at `specPaths` in ONE command on the
 * host (`find`, which never follows a symbolic link), sorted by path. The
 * caller has inspected the paths: each is a directory inside the root.
 */
export async function listTrees(handle: HostHandle, specPaths: readonly string[], signal?: AbortSignal): Promise<TreeEntry[][]> {
  if (specPaths.length === 0) return [];
  const real = specPaths.map((p) => realPathOf(handle.root, p));
  const format = '%H\\0%P\\0%y\\0%m\\0%U\\0%u\\0%G\\0%g\\0';
  const result = await handle.transport.exec(['find', ...real, '-mindepth', '1', '-printf', format], { timeoutMs: FIND_TIMEOUT_MS, signal });
  if (result.exitCode !== 0) {
    throw new ProviderError(`cannot list ${specPaths.join(', ')} on ${handle.address}: find failed: ${result.stderr.trim() || `exit ${result.exitCode}`}`);
  }
  const below = new Map<string, TreeEntry[]>(real.map((r) => [r, []]));
  const specOf = new Map(real.map((r, i) => [r, specPaths[i]!]));
  const f = result.stdout.split('\0');
  for (let i = 0; i + FIND_FIELDS <= f.length; i += FIND_FIELDS) {
    const [start, rel, type, mode, uid, user, gid, group] = f.slice(i, i + FIND_FIELDS) as [string, string, string, string, string, string, string, string];
    below.get(start)?.push({
      path: `${specOf.get(start)!}/${rel}`,
      type: FIND_TYPES[type] ?? 'other',
      mode: mode.padStart(4, '0'),
      uid: Number(uid),
      gid: Number(gid),
      owner: user === uid ? null : user,
      group: group === gid ? null : group,
    });
  }
  const sorted = real.map((r) => below.get(r)!.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0)));
  // find names owners from the machine's databases; a rooted Host's are its root's.
  const named = await nameByHostAccounts(handle, sorted.flat(), signal);
  let at = 0;
  return sorted.map((tree) => named.slice(at, (at += tree.length)));
}

/** A TreeSummary of sorted paths. */
export function summarise(paths: readonly string[]): TreeSummary {
  return { count: paths.length, paths: paths.slice(0, TREE_SAMPLE) };
}

/** `3 objects below /srv/www: /srv/www/a, /srv/www/b, ... (and N more)`. */
export function describeTree(path: string, tree: TreeSummary): string {
  const more = tree.count > tree.paths.length ? `, ... (and ${tree.count - tree.paths.length} more)` : '';
  return `${tree.count} object${tree.count === 1 ? '' : 's'} below ${path}: ${tree.paths.join(', ')}${more}`;
}

/**
 * Removes a directory and everything below it. The directory is first renamed
 * to a hidden name beside it (atomic: the path is gone at once, never half
 * emptied), then that is deleted with `rm -r`, which never follows links. If
 * the deletion fails, the error names the hidden directory left behind.
 */
export async function removeTree(handle: HostHandle, specPath: string, signal?: AbortSignal): Promise<void> {
  const real = realPathOf(handle.root, specPath);
  const trash = posix.join(posix.dirname(real), `.${posix.basename(real)}.capstan-removed-${Date.now().toString(36)}`);
  await handle.transport.rename(real, trash);
  const result = await handle.transport.exec(['rm', '-r', '-f', '--one-file-system', '--', trash], { timeoutMs: FIND_TIMEOUT_MS, signal });
  if (result.exitCode !== 0) {
    throw new ProviderError(
      `${specPath} was moved aside to ${specPathOf(handle.root, trash)} on ${handle.address} but removing it failed: ${result.stderr.trim() || `exit ${result.exitCode}`}`,
    );
  }
}
