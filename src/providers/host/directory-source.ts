/**
 * Directory `source: DIR/`: a tree of the repository kept in sync below a
 * Directory. `resolve` reads the tree into `files` (relative path → base64
 * bytes) at load time; `read` compares it with the host in one batched inspect
 * (hashes) plus, with `purge: true`, the Directory's one `find`; `apply` writes
 * each missing or different file atomically (temporary file + rename) and,
 * with purge, removes what the source does not have.
 */
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { ProviderError, SpecFieldError, type ResolveContext } from '../provider.js';
import { resolveMode } from './attributes.js';
import type { HostHandle } from './host.js';
import { ensureParent, inspectConfined, realPathOf, removeTree, summarise, type TreeEntry, type TreeSummary } from './paths.js';

/** What a Directory with `source:` still has to do on the host. */
export interface SourceSync {
  readonly create: TreeSummary;
  readonly update: TreeSummary;
  readonly purge: TreeSummary;
}

export interface SyncedSpec {
  readonly path: string;
  readonly files?: Readonly<Record<string, string>> | undefined;
  readonly purge?: boolean | undefined;
}

/** Reads `source` (a directory of the repository) into `files`. */
export async function readSourceTree(source: string, from: { file: string }, ctx: ResolveContext): Promise<Record<string, string>> {
  if (!ctx.listFiles) throw new SpecFieldError('source: this loader cannot list repository directories', ['source']);
  let names: string[];
  try {
    names = await ctx.listFiles(source, from.file);
  } catch (err) {
    throw new SpecFieldError(`cannot read source ${source}: ${err instanceof Error ? err.message : String(err)}`, ['source'], { cause: err });
  }
  const files: Record<string, string> = {};
  for (const name of names) files[name] = (await ctx.readFile(posix.join(source, name), from.file)).toString('base64');
  return files;
}

const sha256 = (base64: string) => createHash('sha256').update(Buffer.from(base64, 'base64')).digest('hex');

/** The spec paths of the source's files below the Directory, in the order of `files`. */
function filePaths(spec: SyncedSpec): string[] {
  return Object.keys(spec.files ?? {}).map((rel) => `${spec.path}/${rel}`);
}

/** Every directory the source's files need below the Directory. */
function neededDirectories(spec: SyncedSpec): Set<string> {
  const dirs = new Set<string>();
  for (const p of filePaths(spec)) for (let d = posix.dirname(p); d !== spec.path && d.startsWith(`${spec.path}/`); d = posix.dirname(d)) dirs.add(d);
  return dirs;
}

/** What differs, as full lists: files to create or update, objects to purge (topmost first, nothing below a purged directory). */
async function plannedSync(handle: HostHandle, spec: SyncedSpec, below: readonly TreeEntry[] | undefined, signal?: AbortSignal) {
  const paths = filePaths(spec);
  const infos = await inspectConfined(handle, paths, { content: true, signal });
  const wanted = Object.values(spec.files ?? {});
  const create: string[] = [];
  const update: string[] = [];
  infos.forEach((info, i) => {
    if (info.type === 'absent') create.push(paths[i]!);
    else if (info.type !== 'file' || info.sha256 !== sha256(wanted[i]!)) update.push(paths[i]!);
  });
  const purge: string[] = [];
  if (spec.purge && below) {
    const keep = new Set([...paths, ...neededDirectories(spec)]);
    for (const e of below) {
      if (keep.has(e.path) || purge.some((p) => e.path.startsWith(`${p}/`))) continue;
      purge.push(e.path);
    }
  }
  return { create, update, purge, infos };
}

/** `read`'s part: the summary the plan shows. */
export async function readSync(handle: HostHandle, spec: SyncedSpec, below: readonly TreeEntry[] | undefined, signal?: AbortSignal): Promise<SourceSync> {
  const { create, update, purge } = await plannedSync(handle, spec, below, signal);
  return { create: summarise(create), update: summarise(update), purge: summarise(purge) };
}

/**
 * Brings the tree below the Directory to the source: each file written
 * atomically with `fileMode` (0644) and the managed owner, a file or link in
 * the way of a needed directory refused, then the purge.
 */
export async function applySync(
  handle: HostHandle,
  spec: SyncedSpec & { readonly fileMode?: string | undefined },
  below: readonly TreeEntry[] | undefined,
  ids: { uid: number | undefined; gid: number | undefined },
  signal: AbortSignal,
): Promise<void> {
  const { create, update, purge, infos } = await plannedSync(handle, spec, below, signal);
  const files = spec.files ?? {};
  const byPath = new Map(filePaths(spec).map((p, i) => [p, i]));
  for (const p of [...create, ...update]) {
    const info = infos[byPath.get(p)!]!;
    if (info.type === 'directory') throw new ProviderError(`cannot write ${p} from the source on ${handle.address}: a directory is in its place`);
    const real = realPathOf(handle.root, p);
    await ensureParent(handle, real);
    const bytes = Buffer.from(files[p.slice(spec.path.length + 1)]!, 'base64');
    const kept = info.type === 'file' ? info : null;
    await handle.transport.writeFileAtomic(real, bytes, {
      mode: spec.fileMode !== undefined ? resolveMode(spec.fileMode, kept?.mode ?? '0644', { directory: false }) : (kept?.mode ?? '0644'),
      uid: ids.uid ?? kept?.uid ?? undefined,
      gid: ids.gid ?? kept?.gid ?? undefined,
    });
  }
  const types = new Map((below ?? []).map((e) => [e.path, e.type]));
  for (const p of purge) {
    const type = types.get(p);
    if (type === 'directory') await removeTree(handle, p, signal);
    else if (type === 'file' || type === 'symlink') await handle.transport.remove(realPathOf(handle.root, p), { type });
    else throw new ProviderError(`refusing to purge ${p} on ${handle.address}: it is a special file`);
  }
}
