/**
 * The external programs Capstan runs, and the Debian package that provides each.
 *
 * When one is missing, the error is one line that says which program, where it
 * was looked for and what to install (`promtool not found on PATH: install the
 * Debian package prometheus (apt-get install prometheus)`), instead of
 * `spawn promtool ENOENT`. `MissingProgramError` carries the program and the
 * package, so callers can tell it apart (and report it once per run).
 */

/** Program name → Debian package. README.md "Prerequisites" lists the same. */
export const DEBIAN_PACKAGES: Readonly<Record<string, string>> = {
  git: 'git',
  promtool: 'prometheus',
  amtool: 'prometheus-alertmanager',
  age: 'age',
  'age-keygen': 'age',
  nft: 'nftables',
  ip: 'iproute2',
  ssh: 'openssh-client',
  sshd: 'openssh-server',
  'ssh-keygen': 'openssh-client',
  dpkg: 'dpkg',
  'dpkg-deb': 'dpkg',
  'dpkg-query': 'dpkg',
  'apt-get': 'apt',
  psql: 'postgresql-client',
  openssl: 'openssl',
  systemctl: 'systemd',
  useradd: 'passwd',
  usermod: 'passwd',
  userdel: 'passwd',
  groupadd: 'passwd',
  groupmod: 'passwd',
  groupdel: 'passwd',
  sysctl: 'procps',
  python3: 'python3',
};

export class MissingProgramError extends Error {
  readonly code = 'ENOENT';
  constructor(
    /** The program as Capstan was asked to run it (a name or a path). */
    readonly program: string,
    /** The Debian package that provides it, when Capstan knows one. */
    readonly debianPackage: string | undefined,
    /** `PATH`, or `host web-1`. */
    where: string,
    options?: ErrorOptions,
  ) {
    super(missingProgramMessage(program, debianPackage, where), options);
    this.name = 'MissingProgramError';
  }
}

export function missingProgramMessage(program: string, debianPackage: string | undefined, where = 'PATH'): string {
  const notFound = program.includes('/') ? `${program} not found` : `${program} not found on ${where}`;
  if (debianPackage === undefined) return `${notFound}: install it, or give its path`;
  return `${notFound}: install the Debian package ${debianPackage} (apt-get install ${debianPackage})`;
}

/** The Debian package of a program given by name or path (`/usr/bin/promtool` → prometheus). */
export function debianPackageOf(program: string): string | undefined {
  const base = program.slice(program.lastIndexOf('/') + 1);
  return Object.hasOwn(DEBIAN_PACKAGES, base) ? DEBIAN_PACKAGES[base] : undefined;
}

/**
 * A MissingProgramError when `cause` is the spawn error of a program that does
 * not exist (ENOENT from spawn), else undefined. `where` names where it was
 * looked for: `PATH` locally, `host NAME` over SSH.
 */
export function missingProgram(program: string, cause: unknown, where = 'PATH'): MissingProgramError | undefined {
  const err = cause as (NodeJS.ErrnoException & { syscall?: string }) | null | undefined;
  if (!err || err.code !== 'ENOENT' || !(err.syscall ?? '').startsWith('spawn')) return undefined;
  return new MissingProgramError(program, debianPackageOf(program), where, { cause });
}

/** The MissingProgramError in `err` or its causes, if any. */
export function findMissingProgram(err: unknown): MissingProgramError | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof MissingProgramError) return e;
  }
  return undefined;
}

const MISSING_LINE = /(\S+ not found(?: on (?:PATH|host .+?))?: install (?:the Debian package (\S+) \(apt-get install \2\)|it, or give its path))/;

/**
 * Groups failures by the missing program they name, so a run that failed N
 * times for want of one program says so once: `[line, addresses]` per program,
 * and the failures that name none.
 */
export function groupByMissingProgram<F extends { readonly address: string; readonly error: string }>(
  failures: readonly F[],
): { readonly missing: ReadonlyMap<string, string[]>; readonly other: F[] } {
  const missing = new Map<string, string[]>();
  const other: F[] = [];
  for (const f of failures) {
    const line = MISSING_LINE.exec(f.error)?.[1];
    if (line === undefined) other.push(f);
    else missing.set(line, [...(missing.get(line) ?? []), f.address]);
  }
  return { missing, other };
}
