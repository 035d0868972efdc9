/**
 * Exec: a command run on a Host when its guards say so, or when a resource
 * that notifies it changed.
 *
 * When does it run?
 *
 * - With guards (`creates`, `onlyIf`, `unless`): whenever every guard allows it
 *   — `creates` names a path that is absent, `onlyIf` exits 0, `unless` exits
 *   non-zero. `read` evaluates the guards, so a plan says whether it will run.
 * - Without guards: once when first applied, and again whenever the command
 *   (argv, shell, cwd, environment) changes: the spec is the trigger, as for
 *   Terraform's `terraform_data`. An unguarded command never runs on every
 *   pass, so the reconcile loop does not repeat it forever.
 * - `refreshOnly: true`: never by itself; only when notified (see `refresh`).
 *   Its plan is always a no-op; the engine turns it into a run when a resource
 *   that lists it in `notify:` changes.
 *
 * The command is an argument array run without a shell, unless `shell: true`
 * (then it is one string for /bin/sh -c). A command that outlives `timeout` is
 * killed, and the error names the host and the resource. `undo` (optional) runs
 * when the resource is deleted.
 */
import { z } from 'zod';
import { isSensitive, revealString, secretString, SENSITIVE_TEXT } from '../../secrets/sensitive.js';
import type { Address } from '../../spec/resource.js';
import type { HostHandle } from '../host/host.js';
import { inspectConfined, realPathOf, specPathSchema } from '../host/paths.js';
import { ProviderError, type ApplyRequest, type ResourceDiff, type ResourceProvider } from '../provider.js';
import { describeExit, formatDuration, hostLabel, sameValue, tail } from './command.js';

const DEFAULT_TIMEOUT_MS = 300_000;
const MAX_TIMEOUT_MS = 24 * 3600_000;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3600_000 };

const argvSchema = (what: string) =>
  z
    .array(z.string({ error: `each argument of ${what} must be a string` }).refine((a) => !a.includes('\0'), { error: `${what} must not contain a NUL character` }), {
      error: `${what} must be a list of arguments such as ["systemctl", "restart", "nginx"] (or one string with shell: true)`,
    })
    .min(1, { error: `${what} must name a program to run` })
    .refine((argv) => argv[0] !== '', { error: `the program of ${what} must not be empty` });

/** A program and its arguments, or, with `shell: true`, a string for /bin/sh -c. */
const commandSchema = (what: string) =>
  z.union([argvSchema(what), z.string({ error: `${what} must be a string` }).min(1, { error: `${what} must not be empty` })], {
    error: `${what} must be a list of arguments such as ["systemctl", "restart", "nginx"] (or one string with shell: true)`,
  });

/** `30` (seconds), `"30s"`, `"5m"`, `"1h"`, `"500ms"` → the canonical duration string (`"30s"`), so parsing twice gives the same. */
const timeoutSchema = z
  .union([z.number(), z.string()], { error: 'timeout must be a number of seconds or a duration such as "30s" or "5m"' })
  .transform((value, ctx) => {
    let ms: number;
    if (typeof value === 'number') ms = value * 1000;
    else {
      const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(value.trim());
      ms = m ? Number(m[1]) * UNITS[m[2]!]! : Number.NaN;
    }
    if (!Number.isFinite(ms) || ms < 1 || ms > MAX_TIMEOUT_MS) {
      ctx.addIssue({ code: 'custom', message: 'timeout must be a duration from 1ms to 24h, such as 30 (seconds), "30s" or "5m"' });
      return z.NEVER;
    }
    return formatDuration(Math.round(ms));
  });

/** The timeout of a parsed spec, in milliseconds. */
export function timeoutMs(spec: { readonly timeout: string }): number {
  const m = /^(\d+)(ms|s|m)$/.exec(spec.timeout);
  return m ? Number(m[1]) * UNITS[m[2]!]! : DEFAULT_TIMEOUT_MS;
}

export const execSchema = z
  .strictObject({
    command: commandSchema('command').meta({
      description: 'The program and its arguments (run without a shell), or with `shell: true` one string for /bin/sh -c. A change of the command (or shell, cwd, environment) runs it again.',
      examples: [['systemctl', 'reload', 'nginx']],
    }),
    /** Run `command` (a string) with /bin/sh -c. Off unless asked: argument arrays need no quoting. */
    shell: z
      .boolean({ error: 'shell must be true or false' })
      .default(false)
      .meta({ description: 'Run `command` (then one string) with /bin/sh -c. Off unless asked: argument arrays need no quoting.', examples: [true] }),
    /** Working directory, a path below the Host's root (default: the root). */
    cwd: specPathSchema.optional().meta({ description: "Working directory, a path below the Host's root (default: the root).", examples: ['/srv/app'] }),
    /** Run only while this path (below the Host's root) does not exist. */
    creates: specPathSchema.optional().meta({ description: "Guard: run only while this path (below the Host's root) does not exist.", examples: ['/srv/app/.migrated'] }),
    /** Run only when this command exits 0. */
    onlyIf: commandSchema('onlyIf').optional().meta({ description: 'Guard: run only when this command exits 0 (a list of arguments, or a string with shell: true).', examples: [['test', '-f', '/srv/app/pending']] }),
    /** Run only when this command exits non-zero. */
    unless: commandSchema('unless').optional().meta({ description: 'Guard: run only when this command exits non-zero.', examples: [['systemctl', 'is-active', '--quiet', 'app']] }),
    /** Seconds, or a duration ("30s", "5m"); the command is killed after it. Default 5m. */
    timeout: timeoutSchema
      .default(formatDuration(DEFAULT_TIMEOUT_MS))
      .meta({ description: 'Seconds, or a duration (500ms, 30s, 5m, 1h; at most 24h): the command is killed after it and the resource fails.', examples: ['30s'] }),
    environment: z
      .record(z.string(), secretString('environment values must be strings or { secret: PATH }'), {
        error: (issue) => (issue.code === 'invalid_type' ? 'environment must be a map of variable names to strings' : undefined),
      })
      .superRefine((env, ctx) => {
        for (const name of Object.keys(env)) {
          if (!ENV_NAME.test(name)) {
            ctx.addIssue({
              code: 'custom',
              path: [name],
              message: `environment variable names are letters, digits and "_", not starting with a digit: "${name}"`,
            });
          }
        }
      })
      .optional()
      .meta({ description: 'Environment variables of the command (and of its guards and undo); values may be secrets.', examples: [{ RAILS_ENV: 'production', DB_PASSWORD: { secret: 'secrets/db.age' } }] }),
    /** Run only when notified by a resource that changed (`notify: [Exec/<name>]`). */
    refreshOnly: z
      .boolean({ error: 'refreshOnly must be true or false' })
      .default(false)
      .meta({ description: 'Run only when notified by a resource that changed (`notify: [Exec/<name>]` on it), never by itself.', examples: [true] }),
    /** A command run when the resource is deleted from the spec. */
    undo: commandSchema('undo').optional().meta({ description: 'A command run when the resource is deleted from the spec.', examples: [['rm', '-f', '/srv/app/.migrated']] }),
  })
  .superRefine((spec, ctx) => {
    for (const key of ['command', 'onlyIf', 'unless', 'undo'] as const) {
      const value = spec[key];
      if (typeof value === 'string' && !spec.shell) {
        ctx.addIssue({
          code: 'custom',
          path: [key],
          message: `${key} is a string: write it as a list of arguments, or set shell: true to run it with /bin/sh -c`,
        });
      }
      if (Array.isArray(value) && spec.shell) {
        ctx.addIssue({ code: 'custom', path: [key], message: `with shell: true, ${key} must be one string for /bin/sh -c` });
      }
    }
  })
  .meta({ examples: [{ command: ['/srv/app/bin/migrate', '--apply'], cwd: '/srv/app', creates: '/srv/app/.migrated', timeout: '5m', environment: { APP_ENV: 'production' } }] });

export type ExecSpec = z.infer<typeof execSchema>;

export interface ExecLive {
  /** Whether the `creates` path exists; null when the spec has no `creates` (or it was not needed). */
  readonly creates: 'present' | 'absent' | null;
  /** Exit status of `onlyIf`; null when there is none, or an earlier guard already said no. */
  readonly onlyIf: number | null;
  /** Exit status of `unless`; null when there is none, or an earlier guard already said no. */
  readonly unless: number | null;
  /** Every guard allows the command to run (true when there are none). */
  readonly guardsAllow: boolean;
}

/** The environment as the command gets it: secrets revealed, only here, on the way to the transport. */
function environmentOf(spec: ExecSpec): Record<string, string> | undefined {
  if (spec.environment === undefined) return undefined;
  return Object.fromEntries(Object.entries(spec.environment).map(([k, v]) => [k, revealString(v)]));
}

/** Output shown in errors, with every secret value of the environment masked (a command may echo it). */
function scrubbed(spec: ExecSpec, text: string): string {
  let out = text;
  for (const v of Object.values(spec.environment ?? {})) {
    if (!isSensitive(v)) continue;
    const value = revealString(v);
    if (value !== '') out = out.split(value).join(SENSITIVE_TEXT);
  }
  return out;
}

function hasGuards(spec: ExecSpec): boolean {
  return spec.creates !== undefined || spec.onlyIf !== undefined || spec.unless !== undefined;
}

function argvOf(command: string | readonly string[]): string[] {
  return typeof command === 'string' ? ['/bin/sh', '-c', command] : [...command];
}

/** The command as a person would type it, for plans and messages. */
export function displayCommand(command: string | readonly string[]): string {
  if (typeof command === 'string') return command;
  return command.map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`)).join(' ');
}

interface RunContext {
  readonly handle: HostHandle;
  readonly spec: ExecSpec;
  readonly signal: AbortSignal;
  /** Who is running it, for messages: the resource address, or `a guard of ...`. */
  readonly who: string;
}

async function runCommand(run: RunContext, command: string | readonly string[], what: string): Promise<number> {
  const { handle, spec, signal } = run;
  const argv = argvOf(command);
  const cwd = spec.cwd !== undefined ? realPathOf(handle.root, spec.cwd) : handle.realRoot;
  let result;
  try {
    result = await handle.transport.exec(argv, { timeoutMs: timeoutMs(spec), signal, env: environmentOf(spec), cwd });
  } catch (err) {
    throw new ProviderError(
      `${what} of ${run.who} on ${hostLabel(handle)} could not start (${displayCommand(command)}): ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
  if (result.timedOut || result.exitCode === null) {
    throw new ProviderError(`${what} of ${run.who} on ${hostLabel(handle)} ${describeExit(result, timeoutMs(spec))}: ${displayCommand(command)}`);
  }
  return result.exitCode;
}

/** Evaluates the guards of a batch: one inspect for every `creates`, then the guard commands of specs still in question. */
async function readExecs(handle: HostHandle, specs: readonly ExecSpec[], signal: AbortSignal): Promise<ExecLive[]> {
  const paths = [...new Set(specs.flatMap((s) => (s.creates !== undefined ? [s.creates] : [])))];
  const infos = paths.length > 0 ? await inspectConfined(handle, paths, { content: false, signal }) : [];
  const exists = new Map(paths.map((p, i) => [p, infos[i]!.type !== 'absent']));
  const results = new Map<ExecSpec, Promise<ExecLive>>();
  const evaluate = async (spec: ExecSpec): Promise<ExecLive> => {
    const creates = spec.creates !== undefined ? (exists.get(spec.creates) ? 'present' : 'absent') : null;
    if (creates === 'present') return { creates, onlyIf: null, unless: null, guardsAllow: false };
    const run: RunContext = { handle, spec, signal, who: `the Exec "${displayCommand(spec.command)}"` };
    const onlyIf = spec.onlyIf !== undefined ? await runCommand(run, spec.onlyIf, 'onlyIf') : null;
    if (onlyIf !== null && onlyIf !== 0) return { creates, onlyIf, unless: null, guardsAllow: false };
    const unless = spec.unless !== undefined ? await runCommand(run, spec.unless, 'unless') : null;
    return { creates, onlyIf, unless, guardsAllow: unless === null || unless !== 0 };
  };
  // The same spec object twice in a batch is evaluated once.
  return Promise.all(
    specs.map((s) => {
      let found = results.get(s);
      if (!found) {
        found = evaluate(s);
        results.set(s, found);
      }
      return found;
    }),
  );
}

function guardReason(desired: ExecSpec, live: ExecLive): string {
  const reasons: string[] = [];
  if (live.creates === 'absent') reasons.push(`${desired.creates} does not exist`);
  if (live.onlyIf === 0) reasons.push('onlyIf exited 0');
  if (live.unless !== null && live.unless !== 0) reasons.push(`unless exited ${live.unless}`);
  return reasons.join(', ');
}

/** The parts of a spec that make an unguarded command run again when they change. */
function trigger(spec: ExecSpec): unknown {
  return { command: spec.command, shell: spec.shell, cwd: spec.cwd ?? null, environment: spec.environment ?? {} };
}

export function diffExec(desired: ExecSpec, live: ExecLive | null, prior: ExecSpec | null): ResourceDiff {
  if (desired.refreshOnly) return { action: 'noop', fields: [] };
  const run = [{ path: 'run', before: null, after: displayCommand(desired.command) }];
  const action = prior === null ? 'create' : 'update';
  if (hasGuards(desired)) {
    if (live === null || live.guardsAllow) {
      return { action, fields: run, reason: live === null ? 'guards not evaluated' : `will run: ${guardReason(desired, live)}` };
    }
    return { action: 'noop', fields: [] };
  }
  if (prior === null) return { action, fields: run, reason: 'will run: never run by Capstan' };
  if (!sameValue(trigger(prior), trigger(desired))) return { action, fields: run, reason: 'will run: the command changed' };
  return { action: 'noop', fields: [] };
}

async function runMain(handle: HostHandle, spec: ExecSpec, address: Address, signal: AbortSignal, why?: string): Promise<ExecLive> {
  const argv = argvOf(spec.command);
  const cwd = spec.cwd !== undefined ? realPathOf(handle.root, spec.cwd) : handle.realRoot;
  let result;
  try {
    result = await handle.transport.exec(argv, { timeoutMs: timeoutMs(spec), signal, env: environmentOf(spec), cwd });
  } catch (err) {
    throw new ProviderError(`${address} on ${hostLabel(handle)} could not start ${displayCommand(spec.command)}: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }
  if (result.timedOut || result.exitCode !== 0) {
    const output = tail(scrubbed(spec, result.stderr)) || tail(scrubbed(spec, result.stdout));
    throw new ProviderError(
      `${address} on ${hostLabel(handle)}${why ? ` (${why})` : ''}: ${displayCommand(spec.command)} ${describeExit(result, timeoutMs(spec))}` +
        (output ? `: ${output}` : ''),
    );
  }
  const [after] = await readExecs(handle, [spec], signal);
  if (hasGuards(spec) && after!.guardsAllow && !spec.refreshOnly) {
    throw new ProviderError(
      `${address} on ${hostLabel(handle)}: ${displayCommand(spec.command)} succeeded, but its guards still say it should run ` +
        `(${guardReason(spec, after!)}): the command does not do what its guard checks, so every run would repeat it`,
    );
  }
  return after!;
}

async function applyExec(handle: HostHandle, request: ApplyRequest<ExecSpec, ExecLive>, signal: AbortSignal): Promise<ExecLive | null> {
  if (request.action === 'delete') {
    const prior = request.prior;
    if (prior?.undo !== undefined) {
      const code = await runCommand({ handle, spec: prior, signal, who: request.address }, prior.undo, 'undo');
      if (code !== 0) {
        throw new ProviderError(`undo of ${request.address} on ${hostLabel(handle)} exited with status ${code}: ${displayCommand(prior.undo)}`);
      }
    }
    return null;
  }
  const desired = request.desired;
  if (desired === null) throw new Error(`${request.action} of ${request.address} needs a desired spec`);
  return refreshOrRun(handle, desired, request.address, signal);
}

/**
 * Runs the command for `apply` or for a notification. A planned run was
 * decided by the plan; a notified one (or a handler's) still respects the
 * guards: when they say no, it does not run.
 */
async function refreshOrRun(handle: HostHandle, spec: ExecSpec, address: Address, signal: AbortSignal, notifiedBy?: readonly Address[]): Promise<ExecLive> {
  if ((notifiedBy !== undefined || spec.refreshOnly) && hasGuards(spec)) {
    const [now] = await readExecs(handle, [spec], signal);
    if (!now!.guardsAllow) return now!;
  }
  const why = notifiedBy !== undefined && notifiedBy.length > 0 ? `notified by ${notifiedBy.join(', ')}` : undefined;
  return runMain(handle, spec, address, signal, why);
}

export const execProvider: ResourceProvider<ExecSpec, ExecLive, HostHandle> & Required<Pick<ResourceProvider<ExecSpec, ExecLive, HostHandle>, 'refresh'>> = {
  role: 'resource',
  kind: 'Exec',
  description:
    'A command run on a Host when its guards (creates, onlyIf, unless) say so, when its command changes, or, with refreshOnly, when a resource that notifies it changes.',
  schema: execSchema,
  targetKind: 'Host',
  read: (handle, specs, ctx) => readExecs(handle, specs, ctx.signal),
  diff: diffExec,
  apply: (handle, request, ctx) => applyExec(handle, request, ctx.signal),
  // Without undo, a delete runs nothing: the command's effects stay, Capstan only stops tracking it.
  forgetsOnDelete: (prior) => prior.undo === undefined,
  refresh: (handle, request, ctx) => refreshOrRun(handle, request.desired, request.address, ctx.signal, request.notifiedBy),
};
