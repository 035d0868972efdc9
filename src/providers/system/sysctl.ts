/**
 * Sysctl: a kernel parameter, set now and (with `persist`, the default) kept
 * across reboots in `<root>/etc/sysctl.d/99-capstan-<key>.conf`.
 *
 * read   one `sysctl <key>...` for every key of the batch, and one `inspect`
 *        for their files.
 * apply  `sysctl -w key=value`, then the file, written atomically.
 *
 * The value is the kernel's, so a Host with a root still changes the kernel it
 * runs on (or its network namespace); only the file lives under the root.
 * Deleting a Sysctl removes its file and leaves the running value alone: the
 * value it had before Capstan set it is not known.
 */
import { z } from 'zod';
import type { HostHandle } from '../host/host.js';
import { ensureParent, inspectConfined, realPathOf } from '../host/paths.js';
import { ProviderError, type ApplyRequest, type FieldChange, type ResourceDiff, type ResourceProvider } from '../provider.js';
import { hostLabel, runChecked, tail, validateUnique } from './command.js';

// Dotted names under /proc/sys: `net.ipv4.ip_forward`, `net.ipv4.conf.veth-a.forwarding`.
const KEY = /^[a-z][a-z0-9_]*(?:\.[A-Za-z0-9_@:+-]+)+$/;
const TIMEOUT_MS = 30_000;

export const sysctlSchema = z.strictObject({
  key: z
    .string({ error: 'key must be a string such as "net.ipv4.ip_forward"' })
    .max(200, { error: 'key is too long' })
    .regex(KEY, { error: 'key must be a dotted kernel parameter name such as "net.ipv4.ip_forward"' }),
  /** A number, or a string; several numbers are separated by spaces (`"32768 60999"`). */
  value: z
    .union([z.string(), z.number()], { error: 'value must be a string or a number' })
    .transform((v) => normaliseValue(String(v)))
    .refine((v) => v !== '', { error: 'value must not be empty' })
    .refine((v) => !/[\n\r\0=]/.test(v), { error: 'value must not contain a line break or "="' }),
  persist: z.boolean({ error: 'persist must be true or false' }).default(true),
});

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
  const infos = await inspectConfined(handle, keys.map(persistPath), { content: true, signal });
  const files = new Map(keys.map((k, i) => [k, infos[i]!]));
  return specs.map((s) => {
    const info = files.get(s.key)!;
    const text = info.type === 'file' && info.content !== null ? info.content.toString('utf8') : null;
    const persisted = info.type === 'absent' ? null : text === null ? `(${info.type})` : parseFile(text, s.key);
    const value = values.get(s.key)!;
    return {
      key: s.key,
      value,
      persisted: info.type === 'absent' ? null : (persisted ?? '(not set in the file)'),
      persistedExact: text !== null && persisted !== null && text === fileContent(s.key, persisted),
    };
  });
}

export function diffSysctl(desired: SysctlSpec, live: SysctlLive | null, prior: SysctlSpec | null): ResourceDiff {
  const fields: FieldChange[] = [];
  const rekeyed = prior !== null && prior.key !== desired.key && prior.persist;
  if (rekeyed) fields.push({ path: 'key', before: prior.key, after: desired.key });
  if (live === null || live.value !== desired.value) fields.push({ path: 'value', before: live?.value ?? null, after: desired.value });
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
  // Nothing of Capstan's exists yet: the file is what gets created.
  if (desired.persist && (live === null || live.persisted === null)) return { action: 'create', fields };
  return { action: 'update', fields };
}

async function removeFile(handle: HostHandle, key: string, signal: AbortSignal): Promise<void> {
  const [info] = await inspectConfined(handle, [persistPath(key)], { content: false, signal });
  if (info!.type === 'file' || info!.type === 'symlink') await handle.transport.remove(realPathOf(handle.root, persistPath(key)), { type: info!.type });
}

async function applySysctl(handle: HostHandle, request: ApplyRequest<SysctlSpec, SysctlLive>, signal: AbortSignal): Promise<SysctlLive | null> {
  if (request.action === 'delete') {
    const key = request.prior?.key ?? request.live?.key;
    if (key === undefined) throw new Error(`cannot delete ${request.address}: no last applied spec names its key`);
    await removeFile(handle, key, signal);
    return null;
  }
  const desired = request.desired;
  if (desired === null) throw new Error(`${request.action} of ${request.address} needs a desired spec`);
  const [current] = await readSysctls(handle, [desired], signal);
  if (current!.value !== desired.value) {
    await runChecked(handle, ['sysctl', '-w', '--', `${desired.key}=${desired.value}`], `setting ${desired.key} to "${desired.value}" (${request.address})`, {
      timeoutMs: TIMEOUT_MS,
      signal,
    });
  }
  const path = persistPath(desired.key);
  if (desired.persist) {
    const real = realPathOf(handle.root, path);
    await inspectConfined(handle, [path], { content: false, signal });
    await ensureParent(handle, real);
    await handle.transport.writeFileAtomic(real, Buffer.from(fileContent(desired.key, desired.value), 'utf8'), { mode: '0644' });
  } else {
    await removeFile(handle, desired.key, signal);
  }
  if (request.prior !== null && request.prior.key !== desired.key) await removeFile(handle, request.prior.key, signal);
  const [after] = await readSysctls(handle, [desired], signal);
  if (after!.value !== desired.value) {
    throw new ProviderError(
      `${desired.key} on ${hostLabel(handle)} reads "${after!.value}" after setting it to "${desired.value}" (${request.address}): ` +
        'the kernel rewrote the value; write it the way `sysctl` prints it',
    );
  }
  return after!;
}

export const sysctlProvider: ResourceProvider<SysctlSpec, SysctlLive, HostHandle> = {
  role: 'resource',
  kind: 'Sysctl',
  description: 'A kernel parameter on a Host: set now with sysctl -w and kept in /etc/sysctl.d/99-capstan-<key>.conf.',
  schema: sysctlSchema,
  targetKind: 'Host',
  validate: (resource, sameTarget) => validateUnique(resource, sameTarget, (s) => s.key, (key) => `kernel parameter ${key}`, ['key']),
  read: (handle, specs, ctx) => readSysctls(handle, specs, ctx.signal),
  diff: diffSysctl,
  apply: (handle, request, ctx) => applySysctl(handle, request, ctx.signal),
};
