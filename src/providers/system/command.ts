/**
 * Running the host's own tools (dpkg, useradd, sysctl, nft, ip) through the
 * Host's transport, and turning their failures into user-facing messages that
 * name the host. Everything goes through `HostTransport.exec` with an argument
 * array, so the same code runs locally and over SSH.
 */
import { error, type Diagnostic } from '../../diag/diagnostic.js';
import type { Resource } from '../../spec/resource.js';
import type { ExecResult } from '../../transport/transport.js';
import type { HostHandle } from '../host/host.js';
import { ProviderError } from '../provider.js';
import { isSensitive } from '../../secrets/sensitive.js';

export interface RunOptions {
  readonly timeoutMs: number;
  readonly signal?: AbortSignal | undefined;
  readonly input?: string | Buffer | undefined;
  readonly env?: Readonly<Record<string, string>> | undefined;
  readonly cwd?: string | undefined;
  /** Exit codes that are not failures (default: only 0). */
  readonly okExitCodes?: readonly number[] | undefined;
}

/** The last `max` characters of a command's error output, trimmed, for messages. */
export function tail(text: string, max = 2000): string {
  const trimmed = text.trim();
  return trimmed.length <= max ? trimmed : `...${trimmed.slice(-max)}`;
}

/** `exit 2`, `killed by SIGKILL`, `timed out after 5s`. */
export function describeExit(result: ExecResult, timeoutMs: number): string {
  if (result.timedOut) return `timed out after ${formatDuration(timeoutMs)} and was killed`;
  if (result.exitCode === null) return `was killed by ${result.signal ?? 'a signal'}`;
  return `exited with status ${result.exitCode}`;
}

export function formatDuration(ms: number): string {
  if (ms % 60_000 === 0 && ms >= 60_000) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** Where a message should say something happened: `Host/web-1`, or `Host/web-1 (root /srv/x)`. */
export function hostLabel(handle: HostHandle): string {
  return handle.root === '/' ? handle.address : `${handle.address} (root ${handle.root})`;
}

/**
 * Runs a program and resolves with its result when its exit status is one of
 * `okExitCodes`; otherwise rejects with a ProviderError naming `what`, the host,
 * the exit status and the tail of its error output.
 */
export async function runChecked(handle: HostHandle, argv: readonly string[], what: string, options: RunOptions): Promise<ExecResult> {
  const result = await handle.transport.exec(argv, {
    timeoutMs: options.timeoutMs,
    signal: options.signal,
    input: options.input,
    env: options.env,
    cwd: options.cwd,
  });
  const ok = options.okExitCodes ?? [0];
  if (!result.timedOut && result.exitCode !== null && ok.includes(result.exitCode)) return result;
  throw commandError(handle, what, argv, result, options.timeoutMs);
}

export function commandError(handle: HostHandle, what: string, argv: readonly string[], result: ExecResult, timeoutMs: number): ProviderError {
  const output = tail(result.stderr) || tail(result.stdout);
  return new ProviderError(
    `${what} on ${hostLabel(handle)} failed: ${argv[0] ?? '?'} ${describeExit(result, timeoutMs)}${output ? `: ${output}` : ''}`,
  );
}

/**
 * A resource that claims the same live object (a user name, a sysctl key, an
 * nftables table) as another resource on the same target: one error per
 * duplicate, on the resource being validated.
 */
export function validateUnique<Spec>(
  resource: Resource<Spec>,
  sameTarget: readonly Resource[],
  identity: (spec: Spec) => string | undefined,
  describe: (key: string) => string,
  field: readonly (string | number)[],
): Diagnostic[] {
  const key = identity(resource.spec);
  if (key === undefined) return [];
  const others = sameTarget.filter(
    (r) => r.kind === resource.kind && r.address !== resource.address && identity(r.spec as Spec) === key,
  );
  if (others.length === 0) return [];
  return [
    error(`${describe(key)} is also managed by ${others.map((r) => r.address).join(', ')}`, {
      address: resource.address,
      source: resource.positionOf(['spec', ...field]),
    }),
  ];
}

/** True when two JSON-like values are equal (arrays in order, objects by key). */
export function sameValue(a: unknown, b: unknown): boolean {
  return canonical(a) === canonical(b);
}

/** Deterministic JSON: object keys sorted, `undefined` members dropped. */
export function canonical(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  // A Sensitive compares by its digest (its JSON form), never by its value.
  if (isSensitive(value)) return value.toJSON();
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const member = (value as Record<string, unknown>)[key];
      if (member !== undefined) out[key] = sortKeys(member);
    }
    return out;
  }
  return value;
}
