/**
 * Route: one IP route in a routing table of the Host.
 *
 * A route is identified, as the kernel does, by its table, destination and
 * metric; `via`, `dev` and `type` are what an update changes. A different
 * table, destination or metric is another route: the old one is deleted
 * (action `replace`).
 *
 * read   one `ip -j route show table all` for every route of the batch.
 * apply  `ip route replace` / `ip route del`.
 *
 * Routes live in the kernel (or the network namespace the Host's commands run
 * in), not under the Host's root. They do not persist across reboots: that is
 * the network configuration's job (a File for systemd-networkd or ifupdown).
 */
import { z } from 'zod';
import type { HostHandle } from '../host/host.js';
import { ProviderError, type ApplyRequest, type FieldChange, type ResourceDiff, type ResourceProvider } from '../provider.js';
import { hostLabel, runChecked, validateUnique } from './command.js';
import { canonicalAddress, formatPrefix, parsePrefix, type IpFamily } from './ip-address.js';

const TIMEOUT_MS = 30_000;
const INTERFACE = /^[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,14}$/;
const MAX_U32 = 2 ** 32 - 1;
const NAMED_TABLES: Record<string, number> = { main: 254, local: 255, default: 253 };
const ROUTE_TYPES = ['unicast', 'blackhole', 'unreachable', 'prohibit'] as const;
/** rtnetlink route types (`ip -N` prints them as numbers). */
const TYPE_NAMES: Record<string, string> = {
  '1': 'unicast',
  '2': 'local',
  '3': 'broadcast',
  '4': 'anycast',
  '5': 'multicast',
  '6': 'blackhole',
  '7': 'unreachable',
  '8': 'prohibit',
  '9': 'throw',
  '10': 'nat',
};
/** What the kernel gives a route added without a metric. */
const DEFAULT_METRIC: Record<IpFamily, number> = { ipv4: 0, ipv6: 1024 };

const u32 = (what: string) =>
  z
    .number({ error: `${what} must be a number` })
    .int({ error: `${what} must be a whole number` })
    .min(0, { error: `${what} must be from 0 to ${MAX_U32}` })
    .max(MAX_U32, { error: `${what} must be from 0 to ${MAX_U32}` });

export const routeSchema = z
  .strictObject({
    /** `default`, a network (`198.18.5.0/24`, `2001:db8::/64`) or a host (`198.18.6.7`). */
    destination: z
      .string({ error: 'destination must be "default" or an IP prefix such as "198.18.5.0/24"' })
      .meta({ description: '`default`, a network (198.18.5.0/24, 2001:db8::/64) or a host (198.18.6.7); the route is known by it and its table.', examples: ['198.18.5.0/24'] }),
    /** The gateway. */
    via: z.string({ error: 'via must be an IP address' }).optional().meta({ description: 'The gateway, an IP address of the same family as the destination.', examples: ['10.0.0.1'] }),
    dev: z
      .string({ error: 'dev must be an interface name' })
      .regex(INTERFACE, { error: 'dev must be an interface name such as "eth0" (at most 15 characters, not starting with "-")' })
      .optional()
      .meta({ description: 'The interface to send through; a unicast route needs via, dev or both.', examples: ['eth0'] }),
    /** A table number, or main, local or default. Default main. */
    table: z
      .union([u32('table'), z.enum(['main', 'local', 'default'])], { error: 'table must be a number or one of main, local, default' })
      .transform((t) => (typeof t === 'number' ? t : NAMED_TABLES[t]!))
      .refine((t) => t !== 0, { error: 'table 0 is not a routing table' })
      .default(254)
      .meta({ description: 'The routing table: a number, or main, local or default. Default main (254).', examples: [100, 'main'] }),
    metric: u32('metric').optional().meta({ description: 'Route metric (preference; lower wins); the kernel default when absent.', examples: [100] }),
    type: z
      .enum(ROUTE_TYPES, { error: `type must be one of ${ROUTE_TYPES.join(', ')}` })
      .default('unicast')
      .meta({ description: 'unicast (through via/dev), or blackhole, unreachable, prohibit (drop, with no via or dev).', examples: ['blackhole'] }),
    /** Needed only for `destination: default` without `via`. */
    family: z
      .enum(['ipv4', 'ipv6'], { error: 'family must be ipv4 or ipv6' })
      .optional()
      .meta({ description: 'IP family; read from destination or via, so needed only for `destination: default` without via.', examples: ['ipv6'] }),
  })
  .transform((spec, ctx) => {
    let family: IpFamily | undefined = spec.family;
    let destination = spec.destination;
    if (destination !== 'default') {
      const prefix = parsePrefix(destination);
      if ('error' in prefix) {
        ctx.addIssue({ code: 'custom', path: ['destination'], message: `destination ${prefix.error}` });
        return z.NEVER;
      }
      destination = prefix.length === 0 ? 'default' : formatPrefix(prefix);
      if (family !== undefined && family !== prefix.family) {
        ctx.addIssue({ code: 'custom', path: ['family'], message: `family ${family} does not match destination ${spec.destination}` });
      }
      family = prefix.family;
    }
    let via = spec.via;
    if (via !== undefined) {
      const gateway = canonicalAddress(via);
      if (gateway === null) {
        ctx.addIssue({ code: 'custom', path: ['via'], message: `via "${via}" is not an IP address` });
        return z.NEVER;
      }
      if (family !== undefined && gateway.family !== family) {
        ctx.addIssue({ code: 'custom', path: ['via'], message: `via ${via} is not an ${family} address like the destination` });
      }
      family = family ?? gateway.family;
      via = gateway.address;
    }
    if (spec.type === 'unicast' && via === undefined && spec.dev === undefined) {
      ctx.addIssue({ code: 'custom', path: ['via'], message: 'a unicast route needs via (a gateway), dev (an interface), or both' });
    }
    if (spec.type !== 'unicast' && (via !== undefined || spec.dev !== undefined)) {
      ctx.addIssue({ code: 'custom', path: ['type'], message: `a ${spec.type} route takes neither via nor dev` });
    }
    return {
      destination,
      table: spec.table,
      type: spec.type,
      family: family ?? ('ipv4' as IpFamily),
      ...(via !== undefined ? { via } : {}),
      ...(spec.dev !== undefined ? { dev: spec.dev } : {}),
      ...(spec.metric !== undefined ? { metric: spec.metric } : {}),
    };
  })
  .meta({ examples: [{ destination: '198.18.5.0/24', via: '10.0.0.1', dev: 'eth0', metric: 100 }] });

export type RouteSpec = z.infer<typeof routeSchema>;

export interface RouteLive {
  readonly family: IpFamily;
  readonly destination: string;
  readonly table: number;
  readonly metric: number;
  readonly type: string;
  readonly via: string | null;
  readonly dev: string | null;
  readonly protocol: string | null;
}

function effectiveMetric(spec: RouteSpec): number {
  return spec.metric ?? DEFAULT_METRIC[spec.family];
}

/** The kernel's key of a route: two specs with the same key are the same route. */
export function routeKey(spec: RouteSpec): string {
  return `${spec.family} table ${spec.table} ${spec.destination} metric ${effectiveMetric(spec)}`;
}

interface IpRouteJson {
  readonly type?: string;
  readonly dst?: string;
  readonly gateway?: string;
  readonly dev?: string;
  readonly table?: string;
  readonly metric?: number;
  readonly protocol?: string;
}

export function parseRoutes(stdout: string): RouteLive[] {
  const text = stdout.trim();
  const rows = (text === '' ? [] : JSON.parse(text)) as IpRouteJson[];
  const routes: RouteLive[] = [];
  for (const row of rows) {
    if (row.dst === undefined) continue;
    let family: IpFamily;
    let destination = row.dst;
    if (destination === 'default') {
      family = row.gateway !== undefined && row.gateway.includes(':') ? 'ipv6' : 'ipv4';
    } else {
      const prefix = parsePrefix(destination);
      if ('error' in prefix) continue;
      family = prefix.family;
      destination = prefix.length === 0 ? 'default' : formatPrefix(prefix);
    }
    routes.push({
      family,
      destination,
      table: row.table === undefined ? 254 : Number(row.table),
      metric: row.metric ?? DEFAULT_METRIC[family],
      type: TYPE_NAMES[row.type ?? '1'] ?? row.type ?? 'unicast',
      via: row.gateway !== undefined ? (canonicalAddress(row.gateway)?.address ?? row.gateway) : null,
      dev: row.dev ?? null,
      protocol: row.protocol ?? null,
    });
  }
  return routes;
}

function liveKey(route: RouteLive): string {
  return `${route.family} table ${route.table} ${route.destination} metric ${route.metric}`;
}

/** One `ip -j route show table all` (both families, every table) for the whole batch. */
async function readRoutes(handle: HostHandle, specs: readonly RouteSpec[], signal: AbortSignal): Promise<(RouteLive | null)[]> {
  if (specs.length === 0) return [];
  const result = await runChecked(handle, ['ip', '-j', '-N', 'route', 'show', 'table', 'all'], 'reading routes', {
    timeoutMs: TIMEOUT_MS,
    signal,
  });
  let routes: RouteLive[];
  try {
    routes = parseRoutes(result.stdout);
  } catch (err) {
    throw new ProviderError(`reading routes on ${hostLabel(handle)}: ip printed something that is not JSON`, { cause: err });
  }
  const byKey = new Map<string, RouteLive>();
  for (const r of routes) if (!byKey.has(liveKey(r))) byKey.set(liveKey(r), r);
  return specs.map((s) => byKey.get(routeKey(s)) ?? null);
}

export function diffRoute(desired: RouteSpec, live: RouteLive | null, prior: RouteSpec | null): ResourceDiff {
  const moved = prior !== null && routeKey(prior) !== routeKey(desired);
  const identity: FieldChange[] = [];
  if (moved) {
    if (prior.destination !== desired.destination) identity.push({ path: 'destination', before: prior.destination, after: desired.destination });
    if (prior.table !== desired.table) identity.push({ path: 'table', before: prior.table, after: desired.table });
    if (effectiveMetric(prior) !== effectiveMetric(desired)) {
      identity.push({ path: 'metric', before: effectiveMetric(prior), after: effectiveMetric(desired) });
    }
  }
  const reason = moved ? `${routeKey(prior)} is another route: it is deleted` : undefined;
  const fields: FieldChange[] = [...identity];
  if (live === null) {
    if (desired.type !== 'unicast') fields.push({ path: 'type', before: null, after: desired.type });
    if (desired.via !== undefined) fields.push({ path: 'via', before: null, after: desired.via });
    if (desired.dev !== undefined) fields.push({ path: 'dev', before: null, after: desired.dev });
    return moved ? { action: 'replace', fields, reason } : { action: 'create', fields };
  }
  if (live.type !== desired.type) fields.push({ path: 'type', before: live.type, after: desired.type });
  if ((desired.via ?? null) !== live.via) fields.push({ path: 'via', before: live.via, after: desired.via ?? null });
  // Without dev, the kernel picks the interface from the gateway: not a difference.
  if (desired.dev !== undefined && desired.dev !== live.dev) fields.push({ path: 'dev', before: live.dev, after: desired.dev });
  if (moved) return { action: 'replace', fields, reason };
  return { action: fields.length > 0 ? 'update' : 'noop', fields };
}

function routeArgs(spec: RouteSpec): string[] {
  const args = spec.type === 'unicast' ? [spec.destination] : [spec.type, spec.destination];
  if (spec.via !== undefined) args.push('via', spec.via);
  if (spec.dev !== undefined) args.push('dev', spec.dev);
  args.push('table', String(spec.table), 'metric', String(effectiveMetric(spec)));
  return args;
}

function familyFlag(family: IpFamily): string {
  return family === 'ipv4' ? '-4' : '-6';
}

async function deleteRoute(handle: HostHandle, spec: RouteSpec, address: string, signal: AbortSignal): Promise<void> {
  const argv = ['ip', familyFlag(spec.family), 'route', 'del', spec.destination, 'table', String(spec.table), 'metric', String(effectiveMetric(spec))];
  const result = await handle.transport.exec(argv, { timeoutMs: TIMEOUT_MS, signal });
  // "No such process": already gone.
  if (result.exitCode === 0 || /No such process/.test(result.stderr)) return;
  await runChecked(handle, argv, `deleting route ${routeKey(spec)} (${address})`, { timeoutMs: TIMEOUT_MS, signal });
}

async function applyRoute(handle: HostHandle, request: ApplyRequest<RouteSpec, RouteLive>, signal: AbortSignal): Promise<RouteLive | null> {
  if (request.action === 'delete') {
    const spec = request.prior;
    if (spec === null) throw new Error(`cannot delete ${request.address}: no last applied spec names its route`);
    await deleteRoute(handle, spec, request.address, signal);
    return null;
  }
  const desired = request.desired;
  if (desired === null) throw new Error(`${request.action} of ${request.address} needs a desired spec`);
  await runChecked(handle, ['ip', familyFlag(desired.family), 'route', 'replace', ...routeArgs(desired)], `setting route ${routeKey(desired)} (${request.address})`, {
    timeoutMs: TIMEOUT_MS,
    signal,
  });
  if (request.prior !== null && routeKey(request.prior) !== routeKey(desired)) await deleteRoute(handle, request.prior, request.address, signal);
  const [after] = await readRoutes(handle, [desired], signal);
  return after ?? null;
}

export const routeProvider: ResourceProvider<RouteSpec, RouteLive, HostHandle> = {
  role: 'resource',
  kind: 'Route',
  description: 'An IP route in a routing table of a Host (destination, via, dev, table, metric); ip route replace and del.',
  schema: routeSchema,
  targetKind: 'Host',
  validate: (resource, sameTarget) =>
    validateUnique(
      resource,
      sameTarget,
      (s) => routeKey(s),
      (key) => `route ${key}`,
      ['destination'],
    ),
  read: (handle, specs, ctx) => readRoutes(handle, specs, ctx.signal),
  diff: diffRoute,
  apply: (handle, request, ctx) => applyRoute(handle, request, ctx.signal),
};
