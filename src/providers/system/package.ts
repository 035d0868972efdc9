/**
 * Package: a Debian package on a Host, installed (at a version, a version
 * pattern such as `2.*`, apt's candidate with `state: latest`, or from a .deb
 * file) or absent (purged with `purge: true`).
 *
 * read   one `dpkg-query -W` for every package of the batch; one `apt-cache
 *        policy` for those whose version apt decides (latest, a pattern), after
 *        at most one `apt-get update` per host and run when a package with
 *        `updateCache` needs apt and the lists are older than `cacheValidTime`.
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
import { ProviderError, type ApplyRequest, type FieldChange, type ReadContext, type ResourceDiff, type ResourceProvider } from '../provider.js';
import { commandError, hostLabel, runChecked, validateUnique } from './command.js';

// Debian policy 5.6.1 (lowercase, digits, + - .), with an optional `:arch` qualifier.
const PACKAGE_NAME = /^[a-z0-9][a-z0-9+.-]+(?::[a-z0-9-]+)?$/;
// Debian policy 5.6.12: [epoch:]upstream[-revision].
const PACKAGE_VERSION = /^(?:\d+:)?[0-9][A-Za-z0-9.+~*-]*(?::[A-Za-z0-9.+~*-]+)*$/;

const CACHE_VALID = /^(\d+)(s|m|h|d)$/;
const CACHE_VALID_MESSAGE = 'cacheValidTime must be a number of seconds or a duration such as "30m", "6h" or "1d"';
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

export const packageSchema = z
  .strictObject({
    name: z
      .string({ error: 'name must be a package name such as "nginx"' })
      .regex(PACKAGE_NAME, {
        error: 'name must be a Debian package name: lowercase letters, digits, "+", "-" and ".", optionally ":arch"',
      })
      .meta({ description: 'The package, optionally with an architecture.', examples: ['nginx', 'libc6:amd64'] }),
    state: z
      .enum(['present', 'absent', 'latest'], { error: 'state must be "present", "absent" or "latest"' })
      .default('present')
      .meta({
        description: 'present: installed (any version unless version says). latest: at the version apt would install now (an update when its candidate moves). absent: not installed.',
        examples: ['latest', 'absent'],
      }),
    version: z
      .string({ error: 'version must be a string such as "1.22.1-9"' })
      .regex(PACKAGE_VERSION, { error: 'version must be a Debian version such as "1.22.1-9" or "1:2.3-1", or a pattern such as "2.*"' })
      .optional()
      .meta({
        description:
          'The version to hold installed (as dpkg-query prints it, epoch included), or a pattern with "*": an installed version that matches is kept, else the newest that apt-cache policy lists is installed.',
        examples: ['1.22.1-9', '2.*'],
      }),
    deb: specPathSchema
      .refine((p) => p.endsWith('.deb'), { error: 'deb must be the path of a .deb file' })
      .optional()
      .meta({ description: "A .deb file on the host (a path below the Host's root) installed with dpkg -i instead of apt; its own Version is the version wanted.", examples: ['/var/cache/debs/app_2.1-1_amd64.deb'] }),
    purge: z
      .boolean({ error: 'purge must be true or false' })
      .default(false)
      .meta({ description: 'With state: absent, remove the configuration files too (apt-get purge), also of a package removed before.', examples: [true] }),
    updateCache: z
      .boolean({ error: 'updateCache must be true or false' })
      .default(false)
      .meta({
        description: 'Run apt-get update first (at most once per host and run) when this package needs apt: not installed, latest, or a version not installed yet.',
        examples: [true],
      }),
    cacheValidTime: z
      .union(
        [
          z.number().int({ error: CACHE_VALID_MESSAGE }).min(0, { error: CACHE_VALID_MESSAGE }),
          z.string().regex(CACHE_VALID, { error: CACHE_VALID_MESSAGE }),
        ],
        { error: CACHE_VALID_MESSAGE },
      )
      // Examples on the input side too: JSON Schema describes what users write, before the transform.
      .meta({ examples: ['6h', 3600] })
      .transform((v) => {
        if (typeof v === 'number') return v;
        const [, count, unit] = CACHE_VALID.exec(v)!;
        return Number(count) * UNIT_SECONDS[unit!]!;
      })
      .default(0)
      .meta({ description: 'With updateCache: skip apt-get update when the package lists are younger than this (seconds, or "30m", "6h", "1d"). 0: always update.', examples: ['6h', 3600] }),
  })
  .superRefine((spec, ctx) => {
    const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
    if (spec.state === 'absent' && spec.version !== undefined) issue('version', 'version makes no sense for a package that must be absent');
    if (spec.state === 'absent' && spec.deb !== undefined) issue('deb', 'deb makes no sense for a package that must be absent');
    if (spec.state === 'latest' && spec.version !== undefined) issue('version', 'version makes no sense with state: latest, which takes the version apt offers');
    if (spec.state === 'latest' && spec.deb !== undefined) issue('deb', 'deb makes no sense with state: latest: a .deb file has one version');
    if (spec.deb !== undefined && spec.version?.includes('*')) issue('version', 'a version pattern makes no sense with deb: a .deb file has one version');
    if (spec.purge && spec.state !== 'absent') issue('purge', 'purge needs state: absent');
  })
  .meta({ examples: [{ name: 'nginx', version: '1.22.*', updateCache: true, cacheValidTime: '6h' }] });

export type PackageSpec = z.infer<typeof packageSchema>;

/** An installed package (dpkg status `installed`, or left half-way by a failed run). */
export interface PackageLive {
  readonly name: string;
  readonly version: string;
  readonly architecture: string;
  /** `installed`, the dpkg state of a package that a failed run left half-way (`unpacked`, `half-configured`...), or `config-files` (read only for purge). */
  readonly status: string;
  /**
   * The version the spec asks for, resolved on the host at plan time (only for
   * a spec that needs it): the .deb's own `Version` for `deb:` (null when the
   * file is not there yet), apt's candidate for `latest`, the version a pattern
   * picks.
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
  /** Removed, its configuration files left (dpkg status `c`). */
  readonly configFiles: boolean;
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
    rows.push({ binaryName, name, version, architecture, status: letter in STATUS ? STATUS[letter]! : `unknown (${abbrev.trim()})`, configFiles: letter === 'c' });
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

/** One `dpkg-query -W` for every package of the batch; not-installed packages read as null, those with only config files left too unless `configFiles` names them. */
async function readPackages(
  handle: HostHandle,
  names: readonly string[],
  signal: AbortSignal,
  configFiles: ReadonlySet<string> = new Set(),
): Promise<Map<string, PackageLive | null>> {
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
    const row = rows.find((r) => matches(r, name) && r.status !== null) ?? rows.find((r) => matches(r, name) && r.configFiles && configFiles.has(name));
    if (row) found.set(name, { name, version: row.version, architecture: row.architecture, status: row.status ?? 'config-files' });
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

function isPattern(version: string | undefined): version is string {
  return version !== undefined && version.includes('*');
}

/** An installed version matches a pattern (`2.*`: `*` is any run of characters). */
export function versionMatches(pattern: string, version: string): boolean {
  const re = new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+~^$()[\]{}|\\?]/g, '\\$&')).join('.*')}$`);
  return re.test(version);
}

/** Whether apt must say which version the spec gets (latest; a pattern no installed version matches). */
function needsPolicy(spec: PackageSpec, live: PackageLive | null): boolean {
  if (spec.state === 'latest') return true;
  return spec.state === 'present' && isPattern(spec.version) && (live === null || !versionMatches(spec.version, live.version));
}

/** Whether installing the spec goes through apt, so that a spec with updateCache wants fresh lists. */
function needsApt(spec: PackageSpec, live: PackageLive | null): boolean {
  if (spec.state === 'absent' || spec.deb !== undefined) return false;
  return live === null || needsPolicy(spec, live) || (spec.version !== undefined && !isPattern(spec.version) && live.version !== spec.version);
}

/** The live state of each spec: dpkg's answer for its package, with the version its source gives where the spec needs one. */
async function readPackageSpecs(
  handle: HostHandle,
  specs: readonly PackageSpec[],
  signal: AbortSignal,
  creates?: ReadContext['creates'],
): Promise<(PackageLive | null)[]> {
  const purged = new Set(specs.filter((s) => s.purge).map((s) => s.name));
  const found = await readPackages(
    handle,
    specs.map((s) => s.name),
    signal,
    purged,
  );
  const lives = specs.map((s) => {
    const live = found.get(s.name) ?? null;
    // A package with only its config files left is absent, except to a spec that purges them.
    return live !== null && live.status === 'config-files' && !(s.state === 'absent' && s.purge) ? null : live;
  });
  const aptSpecs = specs.filter((s, i) => s.updateCache || needsPolicy(s, lives[i]!));
  if (aptSpecs.length > 0 && isRooted(handle)) {
    throw new ProviderError(
      `cannot resolve package ${aptSpecs.map((s) => s.name).join(', ')} on ${hostLabel(handle)}: latest, version patterns and updateCache need apt, ` +
        'which a Host with a root does not use (it takes packages from .deb files only)',
    );
  }
  const stale = specs.filter((s, i) => s.updateCache && needsApt(s, lives[i]!));
  if (stale.length > 0) await updateAptCache(handle, Math.min(...stale.map((s) => s.cacheValidTime)), signal);
  const policyNames = specs.filter((s, i) => needsPolicy(s, lives[i]!)).map((s) => s.name);
  const policies = policyNames.length > 0 ? await readPolicies(handle, policyNames, signal) : new Map<string, AptPolicy>();
  return Promise.all(
    specs.map(async (s, i) => {
      const live = lives[i]!;
      if (live === null) {
        // Not installed yet: the plan shows the version apt will install.
        if (creates && needsPolicy(s, null)) {
          const version = s.state === 'latest' ? policies.get(s.name)?.candidate : pickVersion(handle, s, policies.get(s.name));
          if (version) creates(i, [{ path: 'version', before: null, after: version }]);
        }
        return null;
      }
      if (s.state === 'latest') return { ...live, resolvedVersion: policies.get(s.name)?.candidate ?? null };
      if (isPattern(s.version)) {
        if (versionMatches(s.version, live.version)) return { ...live, resolvedVersion: live.version };
        return { ...live, resolvedVersion: pickVersion(handle, s, policies.get(s.name)) };
      }
      if (s.state !== 'present' || s.deb === undefined || s.version !== undefined) return live;
      const control = await debControl(handle, s.deb, `cannot read the version of package ${s.name} from its deb:`, signal);
      return { ...live, resolvedVersion: control?.Version ?? null };
    }),
  );
}

/** What `apt-cache policy` says of one package. */
export interface AptPolicy {
  readonly candidate: string | null;
  /** The versions apt knows, as listed (newest first). */
  readonly versions: readonly string[];
}

/** Parses `apt-cache policy NAME...`: a block per package that apt knows. */
export function parsePolicy(stdout: string): Map<string, AptPolicy> {
  const out = new Map<string, { candidate: string | null; versions: string[] }>();
  let current: { candidate: string | null; versions: string[] } | undefined;
  let inTable = false;
  for (const line of stdout.split('\n')) {
    const head = /^(\S+):$/.exec(line);
    if (head) {
      current = { candidate: null, versions: [] };
      out.set(head[1]!, current);
      inTable = false;
      continue;
    }
    if (!current) continue;
    const candidate = /^\s+Candidate:\s*(\S+)/.exec(line);
    if (candidate) current.candidate = candidate[1] === '(none)' ? null : candidate[1]!;
    else if (/^\s+Version table:/.test(line)) inTable = true;
    else if (inTable) {
      const row = /^\s+(?:\*\*\*\s+)?(\S+)\s+-?\d+$/.exec(line);
      if (row && !current.versions.includes(row[1]!)) current.versions.push(row[1]!);
    }
  }
  return out;
}

async function readPolicies(handle: HostHandle, names: readonly string[], signal: AbortSignal): Promise<Map<string, AptPolicy>> {
  const result = await runChecked(handle, ['apt-cache', 'policy', '--', ...new Set(names)], 'reading apt-cache policy', { timeoutMs: QUERY_TIMEOUT_MS, signal });
  return parsePolicy(result.stdout);
}

/** The newest version apt lists that matches the spec's pattern; a plan-time error when none does. */
function pickVersion(handle: HostHandle, spec: PackageSpec, policy: AptPolicy | undefined): string {
  const version = policy?.versions.find((v) => versionMatches(spec.version!, v));
  if (version === undefined) {
    throw new ProviderError(
      `package ${spec.name} has no version matching ${spec.version} on ${hostLabel(handle)}: apt-cache policy lists ` +
        `${policy && policy.versions.length > 0 ? policy.versions.join(', ') : 'none'}${spec.updateCache ? '' : ' (set updateCache: true if the lists are old)'}`,
    );
  }
  return version;
}

/** Hosts whose package lists this process refreshed already: apt-get update runs at most once per host and run. */
const refreshed = new WeakMap<HostHandle, Promise<void>>();

/** `apt-get update` unless the package lists are younger than `maxAgeSeconds` (or this run refreshed them already). */
function updateAptCache(handle: HostHandle, maxAgeSeconds: number, signal: AbortSignal): Promise<void> {
  let done = refreshed.get(handle);
  if (!done) {
    done = (async () => {
      if (maxAgeSeconds > 0) {
        const lists = await runChecked(handle, ['apt-config', 'shell', 'LISTS', 'Dir::State::lists/d'], 'reading the apt configuration', { timeoutMs: QUERY_TIMEOUT_MS, signal });
        const dir = /^LISTS='(.*)'$/m.exec(lists.stdout)?.[1];
        if (dir !== undefined) {
          const stamp = await handle.transport.exec(['stat', '-c', '%Y', '--', dir], { timeoutMs: QUERY_TIMEOUT_MS, signal });
          const age = Date.now() / 1000 - Number(stamp.stdout.trim());
          if (stamp.exitCode === 0 && age >= 0 && age < maxAgeSeconds) return;
        }
      }
      const argv = ['apt-get', 'update', '-q', '-o', 'DPkg::Lock::Timeout=120'];
      await runChecked(handle, argv, 'refreshing the package lists (apt-get update)', { timeoutMs: APT_TIMEOUT_MS, signal, env: { DEBIAN_FRONTEND: 'noninteractive' } });
    })();
    refreshed.set(handle, done);
    // A failed refresh is not remembered: the next read may try again.
    done.catch(() => refreshed.delete(handle));
  }
  return done;
}

export function diffPackage(desired: PackageSpec, live: PackageLive | null, prior: PackageSpec | null): ResourceDiff {
  const renamed = prior !== null && prior.name !== desired.name && prior.state !== 'absent';
  const nameField: FieldChange[] = renamed ? [{ path: 'name', before: prior.name, after: desired.name }] : [];
  const renamedReason = renamed ? `package changed from ${prior.name}, which is removed` : undefined;

  if (desired.state === 'absent') {
    if (live === null) return renamed ? { action: 'replace', fields: nameField, reason: renamedReason } : { action: 'noop', fields: [] };
    const before = live.status === 'config-files' ? 'config-files' : 'present';
    const fields = [...nameField, { path: 'state', before, after: desired.purge ? 'purged' : 'absent' }];
    return renamed ? { action: 'replace', fields, reason: renamedReason } : { action: 'update', fields };
  }

  const want = (isPattern(desired.version) ? undefined : desired.version) ?? live?.resolvedVersion ?? null;
  if (live === null) {
    const fields = [...nameField, { path: 'version', before: null, after: desired.version ?? (desired.deb ? `from ${desired.deb}` : 'candidate') }];
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
  // A pattern is resolved again here: apt-get takes exact versions only.
  const version = isPattern(spec.version) ? pickVersion(handle, spec, (await readPolicies(handle, [spec.name], signal)).get(spec.name)) : spec.version;
  const target = version !== undefined ? `${spec.name}=${version}` : spec.name;
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

async function uninstall(handle: HostHandle, name: string, address: string, signal: AbortSignal, purge = false): Promise<void> {
  const verb = purge ? 'purge' : 'remove';
  if (isRooted(handle)) {
    // dpkg refuses (and says which) when installed packages depend on this one.
    await runChecked(handle, ['dpkg', ...dpkgRootArgs(handle), `--${verb}`, '--', name], `${purge ? 'purging' : 'removing'} package ${name} (${address})`, {
      timeoutMs: DPKG_TIMEOUT_MS,
      signal,
    });
    return;
  }
  // apt-get would also remove every package that depends on this one: ask first, and refuse to cascade.
  const simulated = await runChecked(handle, ['apt-get', '-s', '-q', verb, '--', name], `${purge ? 'purging' : 'removing'} package ${name} (${address})`, {
    timeoutMs: QUERY_TIMEOUT_MS,
    signal,
  });
  const removed = [...simulated.stdout.matchAll(/^(?:Remv|Purg) (\S+)/gm)].map((m) => m[1]!);
  const others = removed.filter((p) => p !== name && p.split(':')[0] !== name.split(':')[0]);
  if (others.length > 0) {
    throw new ProviderError(
      `refusing to remove package ${name} (${address}) on ${hostLabel(handle)}: apt-get would also remove ${others.join(', ')}, ` +
        'which depend on it; declare those absent first',
    );
  }
  const argv = ['apt-get', verb, '-y', '-q', '-o', 'DPkg::Lock::Timeout=120', '--', name];
  await runChecked(handle, argv, `${purge ? 'purging' : 'removing'} package ${name} (${address})`, {
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
  if (desired.state !== 'absent') await install(handle, desired, request.address, signal);
  else if ((await readPackages(handle, [desired.name], signal, desired.purge ? new Set([desired.name]) : undefined)).get(desired.name)) {
    await uninstall(handle, desired.name, request.address, signal, desired.purge);
  }
  const old = request.prior;
  if (old !== null && old.name !== desired.name && old.state !== 'absent') {
    if ((await readPackages(handle, [old.name], signal)).get(old.name)) await uninstall(handle, old.name, request.address, signal);
  }
  const [after] = await readPackageSpecs(handle, [desired], signal);
  if (desired.state !== 'absent' && !after) {
    throw new ProviderError(`package ${desired.name} (${request.address}) is still not installed on ${hostLabel(handle)} after installing it`);
  }
  return after ?? null;
}

export const packageProvider: ResourceProvider<PackageSpec, PackageLive, HostHandle> = {
  role: 'resource',
  kind: 'Package',
  description: 'A Debian package on a Host: installed (at a version or pattern, the latest apt offers, or from a .deb file) or absent (or purged); apt-get and dpkg.',
  schema: packageSchema,
  targetKind: 'Host',
  validate: (resource: Resource<PackageSpec>, sameTarget) =>
    validateUnique(resource, sameTarget, (s) => s.name, (name) => `package ${name}`, ['name']),
  // A .deb that a File of the same Host writes is installed after it.
  references: (spec) => (spec.deb === undefined ? [] : pathReference(spec.deb, ['deb'], `file ${spec.deb}`)),
  read: (handle, specs, ctx) => readPackageSpecs(handle, specs, ctx.signal, ctx.creates),
  diff: diffPackage,
  apply: (handle, request, ctx) => applyPackage(handle, request, ctx.signal),
};
