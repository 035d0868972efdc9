/**
 * `HostGroup`: what a group of targets shares. The group itself exists as soon
 * as a target lists it in `groups:`; a HostGroup document adds its variables and
 * how the apply engine rolls a change out over its members:
 *
 *   kind: HostGroup
 *   name: web
 *   spec:
 *     vars: { listen_port: 8080 }
 *     rollout: { batch: 2, maxFailures: 0, healthCheck: { http: { url: "http://{{ host.address }}:8080/healthz" } } }
 *
 * A HostGroup is inventory, not a resource: the spec layer reads it (it has no
 * target, no dependsOn, no live state), and it is never planned or applied.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { error, warning, type Diagnostic } from '../diag/diagnostic.js';
import { didYouMean, parseSpec, type LoadedDocument } from './envelope.js';
import type { RenderOutcome, RenderPool } from './render-pool.js';
import { baseAddress, type Address, type Resource } from './resource.js';
import type { StackBudget } from './stack-budget.js';
import { compileTemplate, describeTemplateFailure, TemplateError, type TemplateVars } from './template.js';
import { variablesSchema } from './variables.js';

export const HOST_GROUP_KIND = 'HostGroup';

// -- Parsed types -------------------------------------------------------------------

/** A number of hosts, or a share of the group's members. */
export type Quantity = { readonly kind: 'count'; readonly value: number } | { readonly kind: 'percent'; readonly value: number };

export interface HealthCheckTiming {
  /** Per attempt. */
  readonly timeoutMs: number;
  /** Attempts before the host counts as unhealthy (at least 1). */
  readonly retries: number;
  /** Pause between attempts. */
  readonly intervalMs: number;
}

/** A probe as written: strings may hold Liquid markup (`{{ host.address }}`), rendered per host by `renderHealthCheck`. */
export type HealthProbe =
  | { readonly type: 'http'; readonly url: string; readonly expectStatus: number }
  /** `address` undefined: the host's address (`{{ host.address }}`). */
  | { readonly type: 'tcp'; readonly port: number; readonly address: string | undefined }
  /** A string is rendered, then split at whitespace; a list is rendered element by element. Never a shell. */
  | { readonly type: 'command'; readonly command: string | readonly string[] };

export type HealthCheckSpec = HealthProbe & HealthCheckTiming;

export interface RolloutSpec {
  /** Hosts changed at a time. Default: 100% (all at once). */
  readonly batch: Quantity;
  /** Hosts allowed to fail over the whole rollout before it stops. Default: 0. */
  readonly maxFailures: Quantity;
  /** Checked on each host of a batch after its changes; undefined: no check. */
  readonly healthCheck: HealthCheckSpec | undefined;
}

export interface HostGroupSpec {
  readonly vars: Readonly<Record<string, unknown>>;
  /** undefined: no rollout settings (the engine's defaults, `DEFAULT_ROLLOUT`). */
  readonly rollout: RolloutSpec | undefined;
}

export const DEFAULT_ROLLOUT: RolloutSpec = Object.freeze({
  batch: Object.freeze({ kind: 'percent', value: 100 }),
  maxFailures: Object.freeze({ kind: 'count', value: 0 }),
  healthCheck: undefined,
});

/** Hosts per batch for a group of `members` hosts: a percentage rounds down, and is at least 1. */
export function batchSize(rollout: RolloutSpec | undefined, members: number): number {
  const batch = (rollout ?? DEFAULT_ROLLOUT).batch;
  if (members <= 0) return 0;
  const n = batch.kind === 'count' ? batch.value : Math.floor((members * batch.value) / 100);
  return Math.min(members, Math.max(1, n));
}

/** Failed hosts tolerated over a rollout of `members` hosts: a percentage rounds down. */
export function allowedFailures(rollout: RolloutSpec | undefined, members: number): number {
  const max = (rollout ?? DEFAULT_ROLLOUT).maxFailures;
  const n = max.kind === 'count' ? max.value : Math.floor((members * max.value) / 100);
  return Math.min(Math.max(0, members), n);
}

// -- Schema -------------------------------------------------------------------------

const DURATION = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$/;
const UNIT_MS = [3_600_000, 60_000, 1000, 1] as const;
const MAX_DURATION_MS = 3_600_000;

/** Milliseconds in `500ms`, `5s`, `2m`, `1h`, `1m30s`; undefined when not one or zero. */
export function parseDuration(text: string): number | undefined {
  const m = DURATION.exec(text);
  if (!m || text === '') return undefined;
  let ms = 0;
  for (let i = 0; i < 4; i++) if (m[i + 1] !== undefined) ms += Number(m[i + 1]) * UNIT_MS[i]!;
  return ms > 0 && Number.isSafeInteger(ms) ? ms : undefined;
}

const duration = (what: string) =>
  z
    .string({ error: `${what} must be a duration such as 500ms, 5s or 2m` })
    .refine((s) => parseDuration(s) !== undefined, { error: `${what} must be a duration above zero, such as 500ms, 5s or 2m` })
    .refine((s) => (parseDuration(s) ?? 0) <= MAX_DURATION_MS, { error: `${what} must be at most 1h` })
    .transform((s) => parseDuration(s)!);

const PERCENT = /^(\d{1,3})%$/;

const quantity = (what: string, min: 0 | 1) => {
  const wording = min === 1 ? 'a positive whole number' : 'a whole number (0 or more)';
  const message = `${what} must be ${wording} of hosts, or a percentage from ${min}% to 100% such as "25%"`;
  return z
    .union(
      [
        z.number({ error: message }).int({ error: message }).min(min, { error: message }),
        z
          .string({ error: message })
          .regex(PERCENT, { error: message })
          .refine(
            (s) => {
              const m = PERCENT.exec(s);
              return m === null || (Number(m[1]) >= min && Number(m[1]) <= 100); // (no match: the regex reports it)
            },
            { error: message },
          ),
      ],
      { error: message },
    )
    .transform((v): Quantity => (typeof v === 'number' ? { kind: 'count', value: v } : { kind: 'percent', value: Number(v.slice(0, -1)) }));
};

/** Characters a health-check template may have: a URL, an address or a command, never a file. */
const MAX_HEALTH_TEMPLATE_CHARS = 64 * 1024;
/** Largest rendered health-check string. */
const MAX_HEALTH_OUTPUT_BYTES = 64 * 1024;

/** A string that may hold Liquid markup; its syntax is checked here, its variables per host. */
const templated = (what: string) =>
  z
    .string({ error: `${what} must be a string` })
    .min(1, { error: `${what} must not be empty` })
    .max(MAX_HEALTH_TEMPLATE_CHARS, { error: `${what} must be at most ${MAX_HEALTH_TEMPLATE_CHARS} characters` })
    .superRefine((s, ctx) => {
      try {
        compileTemplate(s, what);
      } catch (e) {
        if (!(e instanceof TemplateError)) throw e;
        ctx.addIssue({ code: 'custom', message: `${what} is not a valid template: ${e.message}` });
      }
    });

const port = z
  .number({ error: 'port must be a number' })
  .int({ error: 'port must be a whole number' })
  .min(1, { error: 'port must be from 1 to 65535' })
  .max(65535, { error: 'port must be from 1 to 65535' });

const httpProbeSchema = z.strictObject({
  /** An http:// or https:// URL once rendered for the host. */
  url: templated('url').meta({ description: 'The URL to GET, a Liquid template rendered per host (http:// or https:// once rendered).', examples: ['http://{{ host.address }}:{{ listen_port }}/healthz'] }),
  expectStatus: z
    .number({ error: 'expectStatus must be an HTTP status code' })
    .int({ error: 'expectStatus must be a whole number' })
    .min(100, { error: 'expectStatus must be from 100 to 599' })
    .max(599, { error: 'expectStatus must be from 100 to 599' })
    .default(200)
    .meta({ description: 'The HTTP status a healthy host answers.', examples: [204] }),
}).meta({ description: 'Check by HTTP: healthy when the URL answers expectStatus.' });

const tcpProbeSchema = z.strictObject({
  port: port.meta({ description: 'The TCP port that must accept a connection.', examples: [5432] }),
  /** Default: the host's address. */
  address: templated('address').optional().meta({ description: "The address to connect to, a template rendered per host; default: the host's address.", examples: ['{{ host.address }}'] }),
}).meta({ description: 'Check by TCP: healthy when the port accepts a connection.' });

const commandSchema = z.union([templated('command'), z.array(templated('each argument of command'), { error: 'command must be a string or a list of arguments' }).min(1, { error: 'command must not be empty' })], {
  error: 'command must be a string such as "systemctl is-active nginx" or a list of arguments',
});

const healthCheckSchema = z
  .strictObject({
    http: httpProbeSchema.optional(),
    tcp: tcpProbeSchema.optional(),
    command: commandSchema
      .optional()
      .meta({ description: 'Check by command, run on the host: healthy when it exits 0. A string or a list of arguments; templates rendered per host.', examples: [['systemctl', 'is-active', 'nginx']] }),
    timeout: duration('timeout').prefault('5s').meta({ description: 'Per attempt: 500ms, 5s, 2m, 1h, 1m30s (at most 1h).', examples: ['10s'] }),
    retries: z
      .number({ error: 'retries must be a number' })
      .int({ error: 'retries must be a whole number' })
      .min(1, { error: 'retries must be from 1 to 100 (attempts before the host counts as unhealthy)' })
      .max(100, { error: 'retries must be from 1 to 100 (attempts before the host counts as unhealthy)' })
      .default(3)
      .meta({ description: 'Attempts before the host counts as unhealthy (1 to 100).', examples: [5] }),
    interval: duration('interval').prefault('2s').meta({ description: 'Time between attempts.', examples: ['1s'] }),
  })
  .meta({ description: 'Checked on every host of a batch before the next batch starts: exactly one of http, tcp or command.' })
  .superRefine((check, ctx) => {
    const given = (['http', 'tcp', 'command'] as const).filter((k) => check[k] !== undefined);
    if (given.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        message:
          given.length === 0
            ? 'a healthCheck needs exactly one of http, tcp or command'
            : `a healthCheck takes exactly one of http, tcp and command, not ${given.join(' and ')}`,
      });
    }
  })
  .transform((check): HealthCheckSpec => {
    const timing = { timeoutMs: check.timeout, retries: check.retries, intervalMs: check.interval };
    if (check.http) return { type: 'http', url: check.http.url, expectStatus: check.http.expectStatus, ...timing };
    if (check.tcp) return { type: 'tcp', port: check.tcp.port, address: check.tcp.address, ...timing };
    return { type: 'command', command: check.command!, ...timing };
  });

const rolloutSchema = z
  .strictObject({
    batch: quantity('batch', 1)
      .prefault('100%')
      .meta({ description: 'Hosts changed at a time: a positive count, or a percentage of the members ("1%" to "100%", rounded down, at least 1).', examples: [2, '25%'] }),
    maxFailures: quantity('maxFailures', 0)
      .prefault(0)
      .meta({ description: 'Hosts allowed to fail over the whole rollout (a count, or "N%"); one more stops it.', examples: [1, '10%'] }),
    healthCheck: healthCheckSchema.optional(),
  })
  .meta({ description: 'How a change reaches the members: batch by batch, with a health check between batches (docs/fleet.md).' })
  .transform((r): RolloutSpec => ({ batch: r.batch, maxFailures: r.maxFailures, healthCheck: r.healthCheck }));

export const hostGroupSchema = z
  .strictObject({
    /** Template variables of every member; a member's own vars win. */
    vars: variablesSchema.default({}).meta({ description: "Template variables of every member; a member's own vars win.", examples: [{ listen_port: 8080, environment: 'production' }] }),
    rollout: rolloutSchema.optional(),
  })
  .transform((g): HostGroupSpec => ({ vars: g.vars, rollout: g.rollout }))
  .meta({ examples: [{ vars: { listen_port: 8080 }, rollout: { batch: 2, maxFailures: 0, healthCheck: { http: { url: 'http://{{ host.address }}:{{ listen_port }}/healthz' }, timeout: '5s', retries: 3 } } }] });

export const hostGroupDescription =
  'Variables and rollout settings (batch size, failure budget, health check) shared by the hosts of a group; inventory, never applied.';

// -- Rendering per host ---------------------------------------------------------------

export type RenderedProbe =
  | { readonly type: 'http'; readonly url: string; readonly expectStatus: number }
  | { readonly type: 'tcp'; readonly address: string; readonly port: number }
  | { readonly type: 'command'; readonly argv: readonly string[] };

/** A health check with its templates rendered for one host: what the engine runs. */
export type RenderedHealthCheck = RenderedProbe & HealthCheckTiming;

/** A health check that does not render for a host: a template error, or a rendered value that is not usable. */
export class HealthCheckRenderError extends Error {
  constructor(
    message: string,
    /** The field at fault, relative to `healthCheck`, e.g. `['http', 'url']`. */
    readonly path: readonly (string | number)[],
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'HealthCheckRenderError';
  }
}

const HOST_ADDRESS_TEMPLATE = '{{ host.address }}';
// Shell syntax a string command would need a shell for; there is none.
const SHELL_SYNTAX = /[|&;<>()$`\\"'*?~#!]/;
const ADDRESS = /^[A-Za-z0-9_][A-Za-z0-9_.:-]*$/;

/** One template string of a health check: its text, the field it is in (relative to `healthCheck`), its name in errors. */
export interface HealthCheckTemplate {
  readonly text: string;
  readonly path: readonly (string | number)[];
  readonly name: string;
}

/** The template strings `check` renders per host, in a fixed order (what `finishHealthCheck` takes back). */
export function healthCheckTemplates(check: HealthCheckSpec): HealthCheckTemplate[] {
  const at = (text: string, path: readonly (string | number)[], name = `healthCheck.${path.join('.')}`): HealthCheckTemplate => ({ text, path, name });
  switch (check.type) {
    case 'http':
      return [at(check.url, ['http', 'url'])];
    case 'tcp':
      // Without an address: the host's own, and a target without one is told so at load time.
      return [at(check.address ?? HOST_ADDRESS_TEMPLATE, check.address === undefined ? ['tcp'] : ['tcp', 'address'], 'healthCheck.tcp.address')];
    case 'command':
      return typeof check.command === 'string' ? [at(check.command, ['command'])] : check.command.map((arg, i) => at(arg, ['command', i]));
  }
}

/** The health check for one host from its rendered templates (in `healthCheckTemplates` order). Throws `HealthCheckRenderError`. */
export function finishHealthCheck(check: HealthCheckSpec, rendered: readonly string[], targetName?: string): RenderedHealthCheck {
  const timing: HealthCheckTiming = { timeoutMs: check.timeoutMs, retries: check.retries, intervalMs: check.intervalMs };
  const onHost = targetName === undefined ? '' : ` for host ${targetName}`;
  switch (check.type) {
    case 'http': {
      const url = rendered[0]!;
      let parsed: URL | undefined;
      try {
        parsed = new URL(url);
      } catch {
        parsed = undefined;
      }
      if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) {
        throw new HealthCheckRenderError(`healthCheck.http.url renders to ${JSON.stringify(url)}${onHost}: not an http:// or https:// URL`, ['http', 'url']);
      }
      return { type: 'http', url, expectStatus: check.expectStatus, ...timing };
    }
    case 'tcp': {
      const path = check.address === undefined ? ['tcp'] : ['tcp', 'address'];
      const address = rendered[0]!.trim();
      if (!ADDRESS.test(address)) {
        throw new HealthCheckRenderError(`healthCheck.tcp.address renders to ${JSON.stringify(address)}${onHost}: not a host name or IP address`, path);
      }
      return { type: 'tcp', address, port: check.port, ...timing };
    }
    case 'command': {
      let argv: string[];
      if (typeof check.command === 'string') {
        const text = rendered[0]!;
        if (SHELL_SYNTAX.test(text)) {
          throw new HealthCheckRenderError(
            `healthCheck.command renders to ${JSON.stringify(text)}${onHost}: it has quotes or shell syntax, and no shell runs it; write it as a list of arguments`,
            ['command'],
          );
        }
        argv = text.split(/\s+/).filter((a) => a !== '');
      } else {
        argv = [...rendered];
      }
      if (argv.length === 0 || argv[0] === '') {
        throw new HealthCheckRenderError(`healthCheck.command renders to no program${onHost}`, ['command']);
      }
      return { type: 'command', argv, ...timing };
    }
  }
}

/**
 * Health checks the loader rendered (in the render pool), by check and by the
 * variables object of the host: the plan's `renderHealthCheck` finds them here
 * instead of rendering again on the event loop.
 */
const renderedAtLoad = new WeakMap<HealthCheckSpec, WeakMap<object, RenderedHealthCheck>>();

/**
 * Renders the probe of `check` with one host's variables (see `LoadedStack.varsByTarget`):
 * what the loader rendered for that host when there is one, else here and now.
 * Throws `HealthCheckRenderError`; a stack that loaded without errors renders for every member.
 */
export function renderHealthCheck(check: HealthCheckSpec, vars: TemplateVars, targetName?: string): RenderedHealthCheck {
  const known = renderedAtLoad.get(check)?.get(vars);
  if (known) return known;
  const rendered = healthCheckTemplates(check).map(({ text, path, name }) => {
    try {
      return compileTemplate(text, name).render(vars, { maxOutputBytes: MAX_HEALTH_OUTPUT_BYTES });
    } catch (e) {
      if (!(e instanceof TemplateError)) throw e;
      throw new HealthCheckRenderError(describeTemplateFailure(e, { targetName, vars }), path, { cause: e });
    }
  });
  return finishHealthCheck(check, rendered, targetName);
}

/** Renders `check` for one host in the render pool within the stack's budget; undefined when the budget stopped it. */
async function renderHealthCheckInPool(check: HealthCheckSpec, vars: TemplateVars, targetName: string, render: RenderInPool): Promise<RenderedHealthCheck | undefined> {
  const rendered: string[] = [];
  for (const t of healthCheckTemplates(check)) {
    const outcome = await render(t, vars);
    if (outcome === undefined) return undefined;
    if (!outcome.ok) {
      const f = outcome.failure;
      const err = new TemplateError(f.file, f.line, f.col, f.reason, f.undefinedVariable);
      throw new HealthCheckRenderError(describeTemplateFailure(err, { targetName, vars }), t.path, { cause: err });
    }
    if (outcome.readSecret) {
      // A probe's URL and command show in plans and logs: a secret has no place there.
      throw new HealthCheckRenderError(`${t.name}: a health check cannot read a secret variable (host ${targetName})`, t.path);
    }
    rendered.push(outcome.output);
  }
  const done = finishHealthCheck(check, rendered, targetName);
  let byVars = renderedAtLoad.get(check);
  if (!byVars) renderedAtLoad.set(check, (byVars = new WeakMap()));
  byVars.set(vars, done);
  return done;
}

/** Renders one health-check template off the event loop; undefined when a budget is spent. */
export type RenderInPool = (template: HealthCheckTemplate, vars: TemplateVars) => Promise<RenderOutcome | undefined>;

/** The `RenderInPool` of a load: the stack's pool and budget. */
export function healthCheckRenderer(pool: RenderPool, budget: StackBudget, renderTimeLimitMs: number): RenderInPool {
  const ids = new Map<string, string>();
  return async (template, vars) => {
    if (budget.exceeded) return undefined;
    const timeLimitMs = Math.min(renderTimeLimitMs, budget.left('renderTime'));
    if (timeLimitMs <= 0) {
      budget.exhaust('renderTime');
      return undefined;
    }
    let id = ids.get(template.text);
    if (id === undefined) ids.set(template.text, (id = `healthCheck:${randomUUID()}`));
    const outcome = await pool.render({ templateId: id, name: template.name, text: template.text, vars, maxOutputBytes: MAX_HEALTH_OUTPUT_BYTES, timeLimitMs });
    budget.charge('renderTime', `HostGroup (${template.name})`, outcome.ms);
    if (!outcome.ok && outcome.failure.limit === 'time' && timeLimitMs < renderTimeLimitMs) {
      budget.exhaust('renderTime');
      return undefined;
    }
    return outcome;
  };
}

// -- Load-time checks -----------------------------------------------------------------

/** A HostGroup document whose spec parsed. */
export interface CheckedHostGroup {
  readonly doc: LoadedDocument;
  readonly spec: HostGroupSpec;
  /** No error in the document. */
  readonly valid: boolean;
}

/** Parses a HostGroup document; a target, dependsOn or notify is an error. */
export function checkHostGroupDocument(doc: LoadedDocument, envelopeValid: boolean, invalidTarget: boolean): { group: CheckedHostGroup | undefined; diagnostics: Diagnostic[] } {
  const address = baseAddress(doc.kind, doc.name);
  const diagnostics: Diagnostic[] = [];
  if (doc.target !== undefined || invalidTarget) {
    diagnostics.push(
      error(`a HostGroup has no target: it describes the group "${doc.name}" itself`, {
        address,
        source: doc.positionOf(['target']),
        detail: 'remove target:; hosts join the group with groups: in their Host spec',
      }),
    );
  }
  for (const key of ['dependsOn', 'notify'] as const) {
    if (doc[key].length === 0) continue;
    diagnostics.push(error(`a HostGroup cannot have ${key}: it is not applied`, { address, source: doc.positionOf([key]), detail: `remove ${key}:` }));
  }
  const parsed = parseSpec(hostGroupSchema, doc);
  if (!parsed.ok) return { group: undefined, diagnostics: [...diagnostics, ...parsed.diagnostics] };
  return { group: { doc, spec: parsed.spec, valid: envelopeValid && diagnostics.length === 0 }, diagnostics };
}

export interface GroupLookup {
  /** Targets (of any kind, valid or not) that list this group. */
  group(name: string): readonly Resource[];
  groups(): string[];
}

/**
 * Every HostGroup against the targets: a group no target lists is a warning, and
 * a health check must render for every valid member with its variables.
 */
export async function checkHostGroups(
  groups: readonly CheckedHostGroup[],
  targets: GroupLookup,
  varsByTarget: Readonly<Record<Address, TemplateVars>>,
  groupsUnknown: boolean,
  render: RenderInPool,
): Promise<Diagnostic[]> {
  const diagnostics: Diagnostic[] = [];
  for (const { doc, spec } of groups) {
    const address = baseAddress(doc.kind, doc.name);
    const members = targets.group(doc.name);
    if (members.length === 0) {
      // When a target's spec is invalid its groups are unknown: it may be a member.
      if (!groupsUnknown) {
        const hint = didYouMean(doc.name, targets.groups());
        diagnostics.push(
          warning(`HostGroup ${doc.name} is not used: no host lists it in groups:${hint ? ` (did you mean "${hint}"?)` : ''}`, {
            address,
            source: doc.positionOf(['name']),
            detail: `add groups: [${doc.name}] to a Host, or remove this HostGroup`,
          }),
        );
      }
      continue;
    }
    const check = spec.rollout?.healthCheck;
    if (!check) continue;
    for (const member of members) {
      const vars = varsByTarget[member.address];
      if (vars === undefined) continue; // an invalid target: its own error is reported
      try {
        if ((await renderHealthCheckInPool(check, vars, member.name, render)) === undefined) break; // a budget is spent: it says so
      } catch (e) {
        if (!(e instanceof HealthCheckRenderError)) throw e;
        diagnostics.push(error(e.message, { address, source: doc.positionOf(['spec', 'rollout', 'healthCheck', ...e.path]) }));
      }
    }
  }
  return diagnostics;
}
