/**
 * The user and group databases a Host's paths are owned by: `<root>/etc/passwd`
 * and `<root>/etc/group` when its root has them (what User and Group edit
 * there, with `useradd --prefix`); the machine's own otherwise, for a Host at
 * `/` or a root that is only a directory of files. Names resolve to ids
 * against them before a chown (always by number), and the owner and group
 * names a read reports come from them too.
 */
import { posix } from 'node:path';
import { parseIdDatabase } from '../../transport/remote-inspect.js';
import { describePathType, type AccountIds, type InspectOptions, type PathInfo } from '../../transport/transport.js';
import { ProviderError } from '../provider.js';
import type { HostHandle } from './host.js';

/** passwd and group are small; this bounds a read of one that is not. */
const MAX_DATABASE_BYTES = 64 * 1024 * 1024;

interface IdDatabase {
  readonly ids: Map<string, number>;
  readonly names: Map<number, string>;
}

/** The root's user and group databases; null for one it lacks. */
interface RootDatabases {
  readonly users: IdDatabase | null;
  readonly groups: IdDatabase | null;
}

/** Where a rooted Host's databases are: `<root>/etc/passwd`, `<root>/etc/group`. */
function rootDatabasePaths(handle: HostHandle): readonly [string, string] | null {
  if (handle.root === '/') return null;
  return [posix.join(handle.realRoot, 'etc/passwd'), posix.join(handle.realRoot, 'etc/group')];
}

/** The two databases from an inspection of `rootDatabasePaths` with content. */
function parseRootDatabases(handle: HostHandle, infos: readonly PathInfo[]): RootDatabases {
  const [users, groups] = infos.map((info) => {
    // One reached through a link out of the root is not the root's: the paths it would name are refused on their own.
    if (info.escape !== null || info.type === 'absent') return null;
    if (info.type !== 'file' || info.content === null) {
      throw new ProviderError(`cannot read ${info.path} on ${handle.address}: it is ${info.type === 'file' ? 'a file too large to read' : describePathType(info.type)}`);
    }
    return parseIdDatabase(info.content.toString('utf8'));
  });
  return { users: users ?? null, groups: groups ?? null };
}

async function readRootDatabases(handle: HostHandle, files: readonly [string, string], options: Pick<InspectOptions, 'maxContentBytes' | 'signal'>): Promise<RootDatabases> {
  return parseRootDatabases(handle, await handle.transport.inspect(files, { ...options, content: true, confineTo: handle.realRoot }));
}

/** Each asked user and group name → its id on the Host, or null when it has none. */
export async function resolveHostAccounts(
  handle: HostHandle,
  query: { users: readonly string[]; groups: readonly string[] },
): Promise<AccountIds> {
  const files = rootDatabasePaths(handle);
  const root = files ? await readRootDatabases(handle, files, { maxContentBytes: MAX_DATABASE_BYTES }) : { users: null, groups: null };
  const machine = root.users && root.groups ? null : await handle.transport.resolveAccounts(query);
  return {
    users: new Map(query.users.map((u) => [u, root.users ? (root.users.ids.get(u) ?? null) : (machine!.users.get(u) ?? null)])),
    groups: new Map(query.groups.map((g) => [g, root.groups ? (root.groups.ids.get(g) ?? null) : (machine!.groups.get(g) ?? null)])),
  };
}

interface Owned {
  readonly uid: number | null;
  readonly gid: number | null;
  readonly owner: string | null;
  readonly group: string | null;
}

/** `infos` with `owner` and `group` named from the root's databases (the transport and `find` name them from the machine's). */
function withRootAccountNames<T extends Owned>(infos: readonly T[], root: RootDatabases): T[] {
  if (!root.users && !root.groups) return [...infos];
  return infos.map((info) => ({
    ...info,
    owner: root.users && info.uid !== null ? (root.users.names.get(info.uid) ?? null) : info.owner,
    group: root.groups && info.gid !== null ? (root.groups.names.get(info.gid) ?? null) : info.group,
  }));
}

/**
 * Inspects `real` paths of the Host, naming owners and groups from its
 * databases. With content, the root's databases come in the same transport
 * call; without, in a second one, and only when something exists.
 */
export async function inspectWithHostAccounts(handle: HostHandle, real: readonly string[], options: InspectOptions): Promise<PathInfo[]> {
  const files = rootDatabasePaths(handle);
  if (!files) return handle.transport.inspect(real, options);
  if (options.content) {
    const infos = await handle.transport.inspect([...real, ...files], options);
    return withRootAccountNames(infos.slice(0, real.length), parseRootDatabases(handle, infos.slice(real.length)));
  }
  const infos = await handle.transport.inspect(real, options);
  if (infos.every((info) => info.uid === null && info.gid === null)) return infos;
  return withRootAccountNames(infos, await readRootDatabases(handle, files, options));
}

/** `entries` (of `find` on the Host) with owner and group named from its databases; unchanged on a Host at `/`. */
export async function nameByHostAccounts<T extends Owned>(handle: HostHandle, entries: readonly T[], signal?: AbortSignal): Promise<T[]> {
  const files = rootDatabasePaths(handle);
  if (!files || entries.length === 0) return [...entries];
  return withRootAccountNames(entries, await readRootDatabases(handle, files, { maxContentBytes: MAX_DATABASE_BYTES, signal }));
}
