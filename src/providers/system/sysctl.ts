/**
 * Sysctl: a kernel parameter, set now and (with `persist`, the default) kept
 * across reboots in `<root>/etc/sysctl.d/99-capstan-<key>.conf`, a file of
 * Capstan's own, or in the `file:` the spec names, where Capstan manages only
 * the key's line (the file may hold other keys, hand-written or of other
 * Sysctl resources). `persistOnly` writes the file and leaves the running
 * value alone (it takes effect at the next boot or `sysctl --system`).
 *
 * read   one `sysctl <key>...` for every key of the batch, and one `inspect`
 *        for their files.
 * apply  `sysctl -w key=value`, then the file, written atomically. Sysctls
 *        that share a `file:` wait for each other (in key order), so no two
 *        rewrite it at once.
 *
 * The value is the kernel's, so a Host with a root still changes the kernel it
 * runs on (or its network namespace); only the file lives under the root.
 * Deleting a Sysctl removes its file (its line, in a shared `file:`; the file
 * too when nothing else is left in it) and leaves the running value alone: the
 * value it had before Capstan set it is not known.
 */
import { z } from 'zod';
import type { Address, Resource } from '../../spec/resource.js';
import type { PathInfo } from '../../transport/transport.js';
import type { HostHandle } from '../host/host.js';
import { ensureParent, inspectConfined, realPathOf, specPathSchema } from '../host/paths.js';
import { ProviderError, type ApplyRequest, type FieldChange, type ResourceDiff, type ResourceProvider } from '../provider.js';
import { hostLabel, runChecked, tail, validateUnique } from './command.js';

// Dotted names under /proc/sys: `net.ipv4.ip_forward`, `net.ipv4.conf.veth-a.forwarding`.
const KEY = /^[a-z][a-z0-9_]*(?:\.[A-Za-z0-9_@:+-]+)+$/;
const TIMEOUT_MS = 30_000;

export const sysctlSchema = z
  .strictObject({
    key: z
      .string({ error: 'key must be a string such as "net.ipv4.ip_forward"' })
      .max(200, { error: 'key is too long' })
      .regex(KEY, { error: 'key must be a dotted kernel parameter name such as "net.ipv4.ip_forward"' })
      .meta({ description: 'The kernel parameter, dotted as `sysctl` prints it.', examples: ['net.ipv4.ip_forward', 'vm.swappiness'] }),
    value: z
      .union([z.string(), z.number()], { error: 'value must be a string or a number' })
      // Examples on the input side too: JSON Schema describes what users write, before the transform.
      .meta({ examples: [1, '32768 60999'] })
      .transform((v) => normaliseValue(String(v)))
      .refine((v) => v !== '', { error: 'value must not be empty' })
      .refine((v) => !/[\n\r\0=]/.test(v), { error: 'value must not contain a line break or "="' })
      .meta({ description: 'A number, or a string; several numbers are separated by spaces.', examples: [1, '32768 60999'] }),
    persist: z
      .boolean({ error: 'persist must be true or false' })
      .default(true)
      .meta({ description: 'Keep the value across reboots in a sysctl.d file. false: set it now only (and remove the file).', examples: [false] }),
    file: specPathSchema
      .refine((p) => p.endsWith('.conf'), { error: 'file must be a .conf file such as /etc/sysctl.d/60-net.conf (systemd-sysctl reads only *.conf)' })
      .optional()
      .meta({
        description:
          'The file that keeps the value. Absent: /etc/sysctl.d/99-capstan-<key>.conf, a file of its own. A file given here may hold other keys: only this key\'s line is managed.',
        examples: ['/etc/sysctl.d/60-net.conf', '/etc/sysctl.conf'],
      }),
    persistOnly: z
      .boolean({ error: 'persistOnly must be true or false' })
      .default(false)
      .meta({ description: 'Write the file and leave the running value alone: it takes effect at the next boot.', examples: [true] }),
  })
  .superRefine((spec, ctx) => {
    if (spec.persistOnly && !spec.persist) ctx.addIssue({ code: 'custom', path: ['persistOnly'], message: 'persistOnly needs persist: it writes only the file' });
    if (spec.file !== undefined && !spec.persist) ctx.addIssue({ code: 'custom', path: ['file'], message: 'file makes no sense with persist: false' });
  })
  .meta({ examples: [{ key: 'net.ipv4.ip_forward', value: '1', file: '/etc/sysctl.d/60-net.conf' }] });

export type SysctlSpec = z.infer<typeof sysctlSchema>;

export interface SysctlLive {
  readonly key: string;
  /** The running value, whitespace collapsed. */
  readonly value: string;
  /** The value Capstan's file for this key sets, or null when the file is absent. */
  readonly persisted: string | null;
  /** The file holds exactly what Capstan writes (no hand edits, no other keys). */
  readonly persistedExact: boolean;
}

/** The kernel prints several values separated by tabs: compare with single spaces. */
export function normaliseValue(value: string): string {
  return value.trim().split(/\s+/).join(' ');
}

export function persistPath(key: string): string {
  return `/etc/sysctl.d/99-capstan-${key}.conf`;
}

/** The file a spec keeps its value in. */
function fileOf(spec: Pick<SysctlSpec, 'key' | 'file'>): string {
  return spec.file ?? persistPath(spec.key);
}

/** A line that sets `key` (`key = value`, `key=value`, `-key = value`, slashes for dots). */
function setsKey(line: string, key: string): boolean {
  const m = /^\s*-?([^#;=\s][^=]*?)\s*=/.exec(line);
  return m !== null && m[1]!.replaceAll('/', '.') === key;
}

/**
 * A shared file with the key set to `value`: the first line that sets it is
 * replaced, later ones dropped, and the line appended when there is none.
 * null `value`: every line that sets it dropped.
 */
export function editSharedFile(text: string, key: string, value: string | null): string {
  const lines = text === '' ? [] : text.replace(/\n$/, '').split('\n');
  const out: string[] = [];
  let placed = false;
  for (const line of lines) {
    if (!setsKey(line, key)) out.push(line);
    else if (!placed && value !== null) {
      out.push(`${key} = ${value}`);
      placed = true;
    }
  }
  if (!placed && value !== null) out.push(`${key} = ${value}`);
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}

function fileContent(key: string, value: string): string {
  return `# Managed by Capstan: changes made here are overwritten.\n${key} = ${value}\n`;
}

function parseFile(text: string, key: string): string | null {
  let found: string | null = null;
  for (const line of text.split('\n')) {
    const m = /^\s*-?([^#;=\s][^=]*?)\s*=\s*(.*?)\s*$/.exec(line);
    if (m && m[1]!.replaceAll('/', '.') === key) found = normaliseValue(m[2]!);
  }
  return found;
}

/** `key = value` lines of `sysctl` output. */
export function parseSysctlOutput(stdout: string): Map<string, string> {
  const values = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const at = line.indexOf(' = ');
    if (at > 0) values.set(line.slice(0, at), normaliseValue(line.slice(at + 3)));
    else if (line.endsWith(' =')) values.set(line.slice(0, -2), '');
  }
  return values;
}

async function readSysctls(handle: HostHandle, specs: readonly SysctlSpec[], signal: AbortSignal): Promise<SysctlLive[]> {
  if (specs.length === 0) return [];
  const keys = [...new Set(specs.map((s) => s.key))];
  // Without -n: `key = value` lines name what they answer, and an unknown key only costs its own line.
  const result = await handle.transport.exec(['sysctl', '--', ...keys], { timeoutMs: TIMEOUT_MS, signal });
  const values = parseSysctlOutput(result.stdout);
  const unknown = keys.filter((k) => !values.has(k));
  if (unknown.length > 0) {
    const detail = tail(result.stderr);
    throw new ProviderError(
      `unknown kernel parameter${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} on ${hostLabel(handle)}` + (detail ? `: ${detail}` : ''),
    );
  }
  const paths = [...new Set(specs.map(fileOf))];
  const infos = await inspectConfined(handle, paths, { content: true, signal });
  const files = new Map(paths.map((p, i) => [p, infos[i]!]));
  return specs.map((s) => {
    const info = files.get(fileOf(s))!;
    const text = info.type === 'file' && info.content !== null ? info.content.toString('utf8') : null;
    const persisted = info.type === 'absent' ? null : text === null ? `(${info.type})` : parseFile(text, s.key);
    const value = values.get(s.key)!;
    if (s.file === undefined) {
      return {
        key: s.key,
        value,
        persisted: info.type === 'absent' ? null : (persisted ?? '(not set in the file)'),
        persistedExact: text !== null && persisted !== null && text === fileContent(s.key, persisted),
      };
    }
    // A shared file: the key counts as absent when no line sets it; exact when one line sets it as Capstan writes it.
    const setting = text === null ? [] : text.split('\n').filter((l) => setsKey(l, s.key));
    return {
      key: s.key,
      value,
      persisted: info.type === 'absent' || (text !== null && setting.length === 0) ? null : persisted,
      persistedExact: persisted !== null && setting.length === 1 && setting[0] === `${s.key} = ${persisted}`,
    };
  });
}

export function diffSysctl(desired: SysctlSpec, live: SysctlLive | null, prior: SysctlSpec | null): ResourceDiff {
  const fields: FieldChange[] = [];
  const rekeyed = prior !== null && prior.key !== desired.key && prior.persist;
  const moved = prior !== null && prior.persist && fileOf(prior) !== fileOf(desired);
  if (rekeyed) fields.push({ path: 'key', before: prior.key, after: desired.key });
  if (moved) fields.push({ path: 'file', before: fileOf(prior), after: fileOf(desired) });
  if (!desired.persistOnly && (live === null || live.value !== desired.value)) fields.push({ path: 'value', before: live?.value ?? null, after: desired.value });
  if (desired.persist) {
    if (live === null || live.persisted === null) fields.push({ path: 'persisted', before: null, after: desired.value });
    else if (live.persisted !== desired.value || !live.persistedExact) {
      fields.push({ path: 'persisted', before: live.persisted, after: desired.value });
    }
  } else if (live !== null && live.persisted !== null) {
    fields.push({ path: 'persisted', before: live.persisted, after: null });
  }
  if (fields.length === 0) return { action: 'noop', fields };
  if (rekeyed) return { action: 'replace', fields, reason: `key changed from ${prior.key}: its file is removed` };
  if (moved) return { action: 'replace', fields, reason: `file changed from ${fileOf(prior)}: the setting is removed there` };
  // Nothing of Capstan's exists yet: the file is what gets created.
  if (desired.persist && (live === null || live.persisted === null)) return { action: 'create', fields };
  return { action: 'update', fields };
}

/** Takes the key out of the file that keeps it: Capstan's own file is removed; in a shared one, only its lines (the file too when nothing else is left). */
async function removeSetting(handle: HostHandle, spec: Pick<SysctlSpec, 'key' | 'file'>, signal: AbortSignal): Promise<void> {
  const path = fileOf(spec);
  const [info] = await inspectConfined(handle, [path], { content: spec.file !== undefined, signal });
  if (info!.type !== 'file' && info!.type !== 'symlink') return;
  const real = realPathOf(handle.root, path);
  if (spec.file !== undefined && info!.type === 'file') {
    const rest = editSharedFile(info!.content?.toString('utf8') ?? '', spec.key, null);
    if (rest.split('\n').some((l) => l.trim() !== '' && !/^\s*[#;]/.test(l))) {
      await handle.transport.writeFileAtomic(real, Buffer.from(rest, 'utf8'), { mode: info!.mode ?? '0644', ...ownerOf(info!) });
      return;
    }
  }
  await handle.transport.remove(real, { type: info!.type });
}

function ownerOf(info: PathInfo): { uid?: number; gid?: number } {
  return { ...(info.uid !== null ? { uid: info.uid } : {}), ...(info.gid !== null ? { gid: info.gid } : {}) };
}

/** Writes the key into the file that keeps it. */
async function writeSetting(handle: HostHandle, spec: SysctlSpec, signal: AbortSignal): Promise<void> {
  const path = fileOf(spec);
  const real = realPathOf(handle.root, path);
  const [info] = await inspectConfined(handle, [path], { content: true, signal });
  await ensureParent(handle, real);
  if (spec.file === undefined) {
    await handle.transport.writeFileAtomic(real, Buffer.from(fileContent(spec.key, spec.value), 'utf8'), { mode: '0644' });
    return;
  }
  if (info!.type !== 'file' && info!.type !== 'absent') {
    throw new ProviderError(`cannot keep ${spec.key} in ${path} on ${hostLabel(handle)}: it is a ${info!.type}, not a file`);
  }
  const text = info!.type === 'file' ? (info!.content?.toString('utf8') ?? '') : '';
  const options = info!.type === 'file' ? { mode: info!.mode ?? '0644', ...ownerOf(info!) } : { mode: '0644' };
  await handle.transport.writeFileAtomic(real, Buffer.from(editSharedFile(text, spec.key, spec.value), 'utf8'), options);
}

async function applySysctl(handle: HostHandle, request: ApplyRequest<SysctlSpec, SysctlLive>, signal: AbortSignal): Promise<SysctlLive | null> {
  if (request.action === 'delete') {
    const key = request.prior?.key ?? request.live?.key;
    if (key === undefined) throw new Error(`cannot delete ${request.address}: no last applied spec names its key`);
    await removeSetting(handle, { key, file: request.prior?.file }, signal);
    return null;
  }
  const desired = request.desired;
  if (desired === null) throw new Error(`${request.action} of ${request.address} needs a desired spec`);
  const [current] = await readSysctls(handle, [desired], signal);
  if (!desired.persistOnly && current!.value !== desired.value) {
    await runChecked(handle, ['sysctl', '-w', '--', `${desired.key}=${desired.value}`], `setting ${desired.key} to "${desired.value}" (${request.address})`, {
      timeoutMs: TIMEOUT_MS,
      signal,
    });
  }
  if (desired.persist) await writeSetting(handle, desired, signal);
  else await removeSetting(handle, desired, signal);
  const prior = request.prior;
  if (prior !== null && (prior.key !== desired.key || fileOf(prior) !== fileOf(desired))) await removeSetting(handle, prior, signal);
  const [after] = await readSysctls(handle, [desired], signal);
  if (!desired.persistOnly && after!.value !== desired.value) {
    throw new ProviderError(
      `${desired.key} on ${hostLabel(handle)} reads "${after!.value}" after setting it to "${desired.value}" (${request.address}): ` +
        'the kernel rewrote the value; write it the way `sysctl` prints it',
    );
  }
  return after!;
}

/** Sysctls that keep their values in one shared file wait for those with an earlier key: one rewrite of the file at a time. */
function sharedFileOrder(resource: Resource<SysctlSpec>, sameTarget: readonly Resource[]): Address[] {
  const file = resource.spec.file;
  if (file === undefined) return [];
  return sameTarget
    .filter((r) => r.kind === 'Sysctl' && r.address !== resource.address)
    .filter((r) => {
      const other = r.spec as Partial<SysctlSpec> | null;
      return other?.file === file && typeof other.key === 'string' && other.key < resource.spec.key;
    })
    .map((r) => r.address);
}

export const sysctlProvider: ResourceProvider<SysctlSpec, SysctlLive, HostHandle> = {
  role: 'resource',
  kind: 'Sysctl',
  description: 'A kernel parameter on a Host: set now with sysctl -w and kept in /etc/sysctl.d/99-capstan-<key>.conf or a sysctl.d file of your choice.',
  schema: sysctlSchema,
  targetKind: 'Host',
  validate: (resource, sameTarget) => validateUnique(resource, sameTarget, (s) => s.key, (key) => `kernel parameter ${key}`, ['key']),
  implicitDependencies: sharedFileOrder,
  read: (handle, specs, ctx) => readSysctls(handle, specs, ctx.signal),
  diff: diffSysctl,
  apply: (handle, request, ctx) => applySysctl(handle, request, ctx.signal),
};
