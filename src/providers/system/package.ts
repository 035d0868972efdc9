/**
 * Package: a Debian package on a Host, installed or absent, optionally at a
 * version or from a .deb file.
 *
 * read   one `dpkg-query -W` for every package of the batch.
 * apply  `apt-get install/remove` on a Host whose root is `/`; `dpkg -i` for a
 *        `deb:` file. A Host with another root gets dpkg with `--root` (its own
 *        package database under the root) and never apt-get, which would change
 *        the real system and fetch from the network.
 */
import { z } from 'zod';
import type { Resource } from '../../spec/resource.js';
import { describePathType } from '../../transport/transport.js';
import type { HostHandle } from '../host/host.js';
import { inspectConfined, pathReference, realPathOf, specPathSchema } from '../host/paths.js';
import { ProviderError, type ApplyRequest, type FieldChange, type ResourceDiff, type ResourceProvider } from '../provider.js';
import { commandError, hostLabel, runChecked, validateUnique } from './command.js';

// Debian policy 5.6.1 (lowercase, digits, + - .), with an optional `:arch` qualifier.
const PACKAGE_NAME = /^[a-z0-9][a-z0-9+.-]+(?::[a-z0-9-]+)?$/;
// Debian policy 5.6.12: [epoch:]upstream[-revision].
const PACKAGE_VERSION = /^(?:\d+:)?[0-9][A-Za-z0-9.+~-]*(?::[A-Za-z0-9.+~-]+)*$/;

export const packageSchema = z
  .strictObject({
    name: z
      .string({ error: 'name must be a package name such as "nginx"' })
      .regex(PACKAGE_NAME, {
        error: 'name must be a Debian package name: lowercase letters, digits, "+", "-" and ".", optionally ":arch"',
      }),
    state: z.enum(['present', 'absent'], { error: 'state must be "present" or "absent"' }).default('present'),
    /** The exact version to hold installed (as `dpkg-query` prints it, epoch included). */
    version: z
      .string({ error: 'version must be a string such as "1.22.1-9"' })
      .regex(PACKAGE_VERSION, { error: 'version must be a Debian version such as "1.22.1-9" or "1:2.3-1"' })
      .optional(),
    /** A .deb file on the host (a path below the Host's root) installed with `dpkg -i` instead of apt. */
    deb: specPathSchema.refine((p) => p.endsWith('.deb'), { error: 'deb must be the path of a .deb file' }).optional(),
  })
  .superRefine((spec, ctx) => {
    if (spec.state === 'absent' && spec.version !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['version'], message: 'version makes no sense for a package that must be absent' });
    }
    if (spec.state === 'absent' && spec.deb !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['deb'], message: 'deb makes no sense for a package that must be absent' });
    }
  });

export type PackageSpec = z.infer<typeof packageSchema>;

/** An installed package (dpkg status `installed`, or left half-way by a failed run). */
export interface PackageLive {
  readonly name: string;
  readonly version: string;
  readonly architecture: string;
  /** `installed`, or the dpkg state of a package that a failed run left half-way (`unpacked`, `half-configured`...). */
  readonly status: string;
  /**
   * The version the spec's source gives, read on the host at plan time (only
   * for a spec that needs it): the .deb's own `Version` for `deb:`; null when
   * the file is not there yet.
   */
  readonly resolvedVersion?: string | null;
}

const QUERY_FORMAT = '${binary:Package}\\t${Package}\\t${Version}\\t${Architecture}\\t${db:Status-Abbrev}\\n';
const QUERY_TIMEOUT_MS = 60_000;
const DPKG_TIMEOUT_MS = 10 * 60_000;
const APT_TIMEOUT_MS = 30 * 60_000;

/** dpkg's second status letter (`dpkg-query --help`, db:Status-Abbrev). */
const STATUS: Record<string, string | null> = {
  n: null, // not-installed
  c: null, // config-files only: the package is gone
  H: 'half-installed',
  U: 'unpacked',
  F: 'half-configured',
  W: 'installed', // triggers-awaited: installed, waiting on another package's trigger
  t: 'installed', // triggers-pending
  i: 'installed',
};

function isRooted(handle: HostHandle): boolean {
  return handle.root !== '/';
}

/** Options that point dpkg at the Host's root and its own database there. */
function dpkgRootArgs(handle: HostHandle): string[] {
  if (!isRooted(handle)) return [];
  return [
    `--root=${handle.realRoot}`,
    `--admindir=${handle.realRoot}/var/lib/dpkg`,
    `--log=${handle.realRoot}/var/log/dpkg.log`,
    // Maintainer scripts run on the machine itself, with DPKG_ROOT set, instead of in a chroot that has no shell.
    '--force-script-chrootless',
    '--force-not-root',
  ];
}

interface QueryRow {
  readonly binaryName: string;
  readonly name: string;
  readonly version: string;
  readonly architecture: string;
  readonly status: string | null;
}

function parseQuery(stdout: string): QueryRow[] {
  const rows: QueryRow[] = [];
  for (const line of stdout.split('\n')) {
    if (line === '') continue;
    const [binaryName, name, version, architecture, abbrev] = line.split('\t');
    if (binaryName === undefined || name === undefined || version === undefined || architecture === undefined || abbrev === undefined) {
      continue;
    }
    const letter = abbrev.charAt(1);
    rows.push({ binaryName, name, version, architecture, status: letter in STATUS ? STATUS[letter]! : `unknown (${abbrev.trim()})` });
  }
  return rows;
}

function matches(row: QueryRow, name: string): boolean {
  if (name.includes(':')) {
    const [base, arch] = name.split(':');
    return row.name === base && row.architecture === arch;
  }
  return row.binaryName === name || row.name === name;
}

/** One `dpkg-query -W` for every package of the batch; not-installed packages read as null. */
async function readPackages(handle: HostHandle, names: readonly string[], signal: AbortSignal): Promise<Map<string, PackageLive | null>> {
  const unique = [...new Set(names)];
  const found = new Map<string, PackageLive | null>(unique.map((n) => [n, null]));
  if (unique.length === 0) return found;
  const admin = isRooted(handle) ? [`--admindir=${handle.realRoot}/var/lib/dpkg`] : [];
  // Exit status 1 only says that some names matched nothing: those are not installed.
  const result = await runChecked(handle, ['dpkg-query', ...admin, '-W', `-f=${QUERY_FORMAT}`, '--', ...unique], 'reading packages', {
    timeoutMs: QUERY_TIMEOUT_MS,
    signal,
    okExitCodes: [0, 1],
  });
  if (result.exitCode === 1 && !/no packages found matching/.test(result.stderr)) {
    throw commandError(handle, 'reading packages', ['dpkg-query'], result, QUERY_TIMEOUT_MS);
  }
  const rows = parseQuery(result.stdout);
  for (const name of unique) {
    const row = rows.find((r) => matches(r, name) && r.status !== null);
    if (row) found.set(name, { name, version: row.version, architecture: row.architecture, status: row.status! });
  }
  return found;
}

/** The control fields of a .deb on the host; null when the file does not exist. `what` starts the message when it is not a file. */
async function debControl(handle: HostHandle, deb: string, what: string, signal: AbortSignal): Promise<Record<string, string> | null> {
  const [info] = await inspectConfined(handle, [deb], { content: false, signal });
  if (info!.type === 'absent') return null;
  if (info!.type !== 'file') throw new ProviderError(`${what} on ${hostLabel(handle)}: ${deb} is ${describePathType(info!.type)}, not a .deb file`);
  const fields = await runChecked(handle, ['dpkg-deb', '--field', realPathOf(handle.root, deb), 'Package', 'Version'], `reading ${deb}`, {
    timeoutMs: QUERY_TIMEOUT_MS,
    signal,
  });
  return Object.fromEntries(
    fields.stdout
      .split('\n')
      .map((line) => /^([A-Za-z-]+):\s*(.*)$/.exec(line))
      .filter((m) => m !== null)
      .map((m) => [m[1]!, m[2]!.trim()]),
  );
}

/** The live state of each spec: dpkg's answer for its package, with the version its source gives where the spec needs one. */
async function readPackageSpecs(handle: HostHandle, specs: readonly PackageSpec[], signal: AbortSignal): Promise<(PackageLive | null)[]> {
  const found = await readPackages(
    handle,
    specs.map((s) => s.name),
    signal,
  );
  return Promise.all(
    specs.map(async (s) => {
      const live = found.get(s.name) ?? null;
      if (live === null || s.state !== 'present' || s.deb === undefined || s.version !== undefined) return live;
      const control = await debControl(handle, s.deb, `cannot read the version of package ${s.name} from its deb:`, signal);
      return { ...live, resolvedVersion: control?.Version ?? null };
    }),
  );
}

export function diffPackage(desired: PackageSpec, live: PackageLive | null, prior: PackageSpec | null): ResourceDiff {
  const renamed = prior !== null && prior.name !== desired.name && prior.state === 'present';
  const nameField: FieldChange[] = renamed ? [{ path: 'name', before: prior.name, after: desired.name }] : [];
  const renamedReason = renamed ? `package changed from ${prior.name}, which is removed` : undefined;

  if (desired.state === 'absent') {
    if (live === null) return renamed ? { action: 'replace', fields: nameField, reason: renamedReason } : { action: 'noop', fields: [] };
    const fields = [...nameField, { path: 'state', before: 'present', after: 'absent' }];
    return renamed ? { action: 'replace', fields, reason: renamedReason } : { action: 'update', fields };
  }

  const want = desired.version ?? live?.resolvedVersion ?? null;
  if (live === null) {
    const fields = [...nameField, { path: 'version', before: null, after: want ?? (desired.deb ? `from ${desired.deb}` : 'candidate') }];
    return renamed ? { action: 'replace', fields, reason: renamedReason } : { action: 'create', fields };
  }
  const fields = [...nameField];
  let reason = renamedReason;
  if (live.status !== 'installed') {
    fields.push({ path: 'status', before: live.status, after: 'installed' });
    reason = reason ?? `a previous run left the package ${live.status}: it is installed again`;
  }
  if (want !== null && live.version !== want) fields.push({ path: 'version', before: live.version, after: want });
  if (renamed) return { action: 'replace', fields, reason };
  if (fields.length === 0) return { action: 'noop', fields };
  return reason ? { action: 'update', fields, reason } : { action: 'update', fields };
}

async function install(handle: HostHandle, spec: PackageSpec, address: string, signal: AbortSignal): Promise<void> {
  if (spec.deb !== undefined) {
    await installDeb(handle, spec, spec.deb, address, signal);
    return;
  }
  if (isRooted(handle)) {
    throw new ProviderError(
      `cannot install package ${spec.name} (${address}) on ${hostLabel(handle)}: apt-get would install into the real ` +
        'system and use the network, so a Host with a root only takes packages from a .deb file: set deb: /path/to/file.deb',
    );
  }
  const target = spec.version !== undefined ? `${spec.name}=${spec.version}` : spec.name;
  const argv = [
    'apt-get',
    'install',
    '-y',
    '-q',
    '--no-install-recommends',
    // Never remove other packages to make room (a conflict): fail instead.
    '--no-remove',
    '--allow-downgrades',
    '-o',
    'DPkg::Lock::Timeout=120',
    '-o',
    'Dpkg::Options::=--force-confdef',
    '-o',
    'Dpkg::Options::=--force-confold',
    '--',
    target,
  ];
  const result = await handle.transport.exec(argv, { timeoutMs: APT_TIMEOUT_MS, signal, env: { DEBIAN_FRONTEND: 'noninteractive' } });
  if (result.exitCode === 0) return;
  const stderr = result.stderr;
  if (/Unable to locate package|has no installation candidate/.test(stderr)) {
    throw new ProviderError(
      `package ${spec.name} (${address}) does not exist on ${hostLabel(handle)}: apt knows no such package ` +
        '(check the name; if it is new, refresh the package lists with apt-get update)',
    );
  }
  const missingVersion = /Version '([^']+)' for '([^']+)' was not found/.exec(stderr);
  if (missingVersion) {
    throw new ProviderError(
      `package ${spec.name} (${address}) has no version ${missingVersion[1]} on ${hostLabel(handle)}: apt-cache policy ${spec.name} lists the versions it can install`,
    );
  }
  throw commandError(handle, `installing package ${spec.name} (${address})`, argv, result, APT_TIMEOUT_MS);
}

async function ensureDpkgDatabase(handle: HostHandle): Promise<void> {
  if (!isRooted(handle)) return;
  const admin = `${handle.realRoot}/var/lib/dpkg`;
  for (const dir of ['info', 'updates', 'triggers']) await handle.transport.mkdir(`${admin}/${dir}`, { mode: '0755', parents: true });
  await handle.transport.mkdir(`${handle.realRoot}/var/log`, { mode: '0755', parents: true });
  for (const file of ['status', 'available']) {
    const [info] = await handle.transport.inspect([`${admin}/${file}`], { content: false, maxContentBytes: 0 });
    if (info?.type === 'absent') await handle.transport.writeFileAtomic(`${admin}/${file}`, Buffer.alloc(0), { mode: '0644' });
  }
}

async function installDeb(handle: HostHandle, spec: PackageSpec, deb: string, address: string, signal: AbortSignal): Promise<void> {
  const control = await debControl(handle, deb, `cannot install package ${spec.name} (${address})`, signal);
  if (control === null) {
    throw new ProviderError(`cannot install package ${spec.name} (${address}) on ${hostLabel(handle)}: ${deb} does not exist`);
  }
  const real = realPathOf(handle.root, deb);
  const baseName = spec.name.split(':')[0];
  if (control.Package !== baseName) {
    throw new ProviderError(
      `cannot install package ${spec.name} (${address}) on ${hostLabel(handle)}: ${deb} holds package ${control.Package ?? '(unknown)'}, not ${baseName}`,
    );
  }
  if (spec.version !== undefined && control.Version !== spec.version) {
    throw new ProviderError(
      `cannot install package ${spec.name} ${spec.version} (${address}) on ${hostLabel(handle)}: ${deb} holds version ${control.Version ?? '(unknown)'}`,
    );
  }
  await ensureDpkgDatabase(handle);
  const argv = ['dpkg', ...dpkgRootArgs(handle), '--force-confdef', '--force-confold', '-i', real];
  await runChecked(handle, argv, `installing package ${spec.name} (${address}) from ${deb}`, {
    timeoutMs: DPKG_TIMEOUT_MS,
    signal,
    env: { DEBIAN_FRONTEND: 'noninteractive' },
  });
}

async function uninstall(handle: HostHandle, name: string, address: string, signal: AbortSignal): Promise<void> {
  if (isRooted(handle)) {
    // dpkg refuses (and says which) when installed packages depend on this one.
    await runChecked(handle, ['dpkg', ...dpkgRootArgs(handle), '--remove', '--', name], `removing package ${name} (${address})`, {
      timeoutMs: DPKG_TIMEOUT_MS,
      signal,
    });
    return;
  }
  // apt-get would also remove every package that depends on this one: ask first, and refuse to cascade.
  const simulated = await runChecked(handle, ['apt-get', '-s', '-q', 'remove', '--', name], `removing package ${name} (${address})`, {
    timeoutMs: QUERY_TIMEOUT_MS,
    signal,
  });
  const removed = [...simulated.stdout.matchAll(/^Remv (\S+)/gm)].map((m) => m[1]!);
  const others = removed.filter((p) => p !== name && p.split(':')[0] !== name.split(':')[0]);
  if (others.length > 0) {
    throw new ProviderError(
      `refusing to remove package ${name} (${address}) on ${hostLabel(handle)}: apt-get would also remove ${others.join(', ')}, ` +
        'which depend on it; declare those absent first',
    );
  }
  const argv = ['apt-get', 'remove', '-y', '-q', '-o', 'DPkg::Lock::Timeout=120', '--', name];
  await runChecked(handle, argv, `removing package ${name} (${address})`, {
    timeoutMs: APT_TIMEOUT_MS,
    signal,
    env: { DEBIAN_FRONTEND: 'noninteractive' },
  });
}

async function applyPackage(handle: HostHandle, request: ApplyRequest<PackageSpec, PackageLive>, signal: AbortSignal): Promise<PackageLive | null> {
  if (request.action === 'delete') {
    const name = request.prior?.name ?? request.live?.name;
    if (name === undefined) throw new Error(`cannot delete ${request.address}: no last applied spec names its package`);
    // A resource that kept a package away leaves whatever is there now alone.
    if (request.prior?.state === 'absent') return null;
    const live = (await readPackages(handle, [name], signal)).get(name);
    if (live) await uninstall(handle, name, request.address, signal);
    return null;
  }
  const desired = request.desired;
  if (desired === null) throw new Error(`${request.action} of ${request.address} needs a desired spec`);
  if (desired.state === 'present') await install(handle, desired, request.address, signal);
  else if ((await readPackages(handle, [desired.name], signal)).get(desired.name)) {
    await uninstall(handle, desired.name, request.address, signal);
  }
  const old = request.prior;
  if (old !== null && old.name !== desired.name && old.state === 'present') {
    if ((await readPackages(handle, [old.name], signal)).get(old.name)) await uninstall(handle, old.name, request.address, signal);
  }
  const [after] = await readPackageSpecs(handle, [desired], signal);
  if (desired.state === 'present' && !after) {
    throw new ProviderError(`package ${desired.name} (${request.address}) is still not installed on ${hostLabel(handle)} after installing it`);
  }
  return after ?? null;
}

export const packageProvider: ResourceProvider<PackageSpec, PackageLive, HostHandle> = {
  role: 'resource',
  kind: 'Package',
  description: 'A Debian package on a Host: installed (at a version, or from a .deb file) or absent; apt-get and dpkg.',
  schema: packageSchema,
  targetKind: 'Host',
  validate: (resource: Resource<PackageSpec>, sameTarget) =>
    validateUnique(resource, sameTarget, (s) => s.name, (name) => `package ${name}`, ['name']),
  // A .deb that a File of the same Host writes is installed after it.
  references: (spec) => (spec.deb === undefined ? [] : pathReference(spec.deb, ['deb'], `file ${spec.deb}`)),
  read: (handle, specs, ctx) => readPackageSpecs(handle, specs, ctx.signal),
  diff: diffPackage,
  apply: (handle, request, ctx) => applyPackage(handle, request, ctx.signal),
};
