/**
 * The controller's configuration file (`capstan serve --config FILE`):
 *
 * ```yaml
 * listen: 127.0.0.1:7070
 * state: sqlite:/var/lib/capstan/state.db      # or postgres://...
 * stacks:
 *   - name: prod
 *     repo: /srv/git/infra.git                 # path or URL
 *     branch: main
 *     path: stacks/prod
 *     policy: auto                             # auto | approve | plan-only
 *     interval: 60s
 *     selfHeal: true
 *     webhookSecret: { env: CAPSTAN_WEBHOOK_SECRET }   # or { file: PATH }
 * audit: { retention: 90d, maxRows: 1000000 }  # the defaults
 * ```
 *
 * Every problem is reported at once, as `FILE:LINE:COL: message`. Relative
 * paths (a local repository, `sqlite:` state, a secret file, `cacheDir`) are
 * relative to the file's directory. Secrets are read here and wrapped in
 * `Secret`, which prints as `(redacted)` in logs and JSON.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { inspect } from 'node:util';
import { isMap, isNode, isScalar, LineCounter, parseDocument, type Document } from 'yaml';
import { z } from 'zod';
import { error as diagError, DiagnosticsError, type Diagnostic, type SourcePosition } from '../diag/diagnostic.js';
import { didYouMean, objectKeysAt } from '../spec/envelope.js';
import { NAME_PATTERN } from '../spec/resource.js';
import { describeSyntaxError } from '../spec/yaml-syntax-error.js';

export type Policy = 'auto' | 'approve' | 'plan-only';
export const POLICIES: readonly Policy[] = ['auto', 'approve', 'plan-only'];

/**
 * A secret value: readable through `reveal()` only; prints as `(redacted)`.
 * Given a function, the value is read at the first `reveal()` (which throws
 * when it cannot be read), so what never uses the secret never needs it.
 */
export class Secret {
  #value: string | (() => string);
  constructor(value: string | (() => string)) {
    this.#value = value;
  }
  reveal(): string {
    if (typeof this.#value === 'function') this.#value = this.#value();
    return this.#value;
  }
  toString(): string {
    return '(redacted)';
  }
  toJSON(): string {
    return '(redacted)';
  }
  [inspect.custom](): string {
    return 'Secret(redacted)';
  }
}

export interface StackConfig {
  readonly name: string;
  /** A URL, or an absolute local path. */
  readonly repo: string;
  /** Branch, tag or ref; `HEAD` follows the repository's default branch. */
  readonly branch: string;
  readonly path: string;
  readonly policy: Policy;
  readonly intervalMs: number;
  readonly driftIntervalMs: number;
  readonly selfHeal: boolean;
  readonly allowMassDelete: boolean;
  /** `prune: adopted`: delete adopted resources removed from the spec too (default: forget them). */
  readonly pruneAdopted: boolean;
  readonly parallelism: number;
  readonly webhookSecret: Secret | undefined;
  /** What policies see as `stack.labels` (docs/policies.md); `{}`: none. */
  readonly labels: Readonly<Record<string, string>>;
}

export interface ControllerConfig {
  readonly file: string;
  readonly listen: { readonly host: string; readonly port: number };
  readonly state: string;
  readonly cacheDir: string | undefined;
  /** Stacks reconciled at once. */
  readonly concurrency: number;
  /** A pass that takes longer is stopped (its apply through the AbortSignal) and retried with backoff. */
  readonly passTimeoutMs: number;
  /** On SIGTERM, how long applies in flight may run on before they are stopped. */
  readonly shutdownGraceMs: number;
  readonly trustProxy: boolean;
  /**
   * Webhook deliveries with a missing or wrong signature answered per source
   * address and minute (401), before 429. Signed deliveries are never limited:
   * the signature is checked first, and replays are caught by delivery id.
   */
  readonly webhookRateLimit: number;
  /**
   * Webhook requests one source address may have in flight (from its headers to
   * the answer); more are answered 429 before their body is read or any
   * signature checked, so forged deliveries cannot make the server compute
   * HMACs over large bodies without bound.
   */
  readonly webhookConcurrency: number;
  readonly webhookMaxBytes: number;
  /** Audit log retention, enforced by the server at start and hourly: by age and by row count (null: unbounded). */
  readonly audit: { readonly retentionMs: number | null; readonly maxRows: number | null };
  /** Load bounds for every stack (src/spec/stack-budget.ts); unset fields keep the loader's defaults. */
  readonly limits?: LoadLimits | undefined;
  readonly stacks: readonly StackConfig[];
  /** The age identity that decrypts the stacks' secrets: a file (absolute), or an environment variable holding the key. */
  readonly identity?: { readonly file: string } | { readonly env: string } | undefined;
}

/** `limits:` of the serve config: what one stack's load may spend. */
export interface LoadLimits {
  /** Template render time summed over a stack (default 30 s). */
  readonly renderTimeMs?: number | undefined;
  /** One template render (default 2 s). */
  readonly renderTimeEachMs?: number | undefined;
  /** Size of all instances' specs of a stack (default 256 MiB). */
  readonly renderedBytes?: number | undefined;
  /** All YAML files of a stack together (default 64 MiB). */
  readonly yamlBytes?: number | undefined;
}

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `500ms`, `60s`, `5m`, `1h`, `30d`, or a number of seconds. */
export function parseDuration(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value * 1_000 : undefined;
  const m = DURATION.exec(value.trim());
  if (!m) return undefined;
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

const duration = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const ms = parseDuration(value);
  if (ms === undefined || ms <= 0) {
    ctx.addIssue({ code: 'custom', message: `"${value}" is not a duration: use e.g. 500ms, 60s, 5m, 1h` });
    return z.NEVER;
  }
  return ms;
});

const secretRef = z.union([z.strictObject({ env: z.string().min(1) }), z.strictObject({ file: z.string().min(1) })], {
  error: 'a secret is { env: VARIABLE } or { file: PATH }',
});

const stackSchema = z.strictObject({
  name: z.string().regex(NAME_PATTERN, 'a stack name is lowercase letters, digits, ".", "_" and "-"'),
  repo: z
    .string()
    .min(1)
    .refine((r) => !r.startsWith('-'), 'a repository must not start with "-"'),
  branch: z
    .string()
    .min(1)
    .refine((r) => !r.startsWith('-'), 'a branch must not start with "-"')
    .default('HEAD'),
  path: z.string().default('.'),
  policy: z.enum(POLICIES as [Policy, ...Policy[]]).default('auto'),
  interval: duration.default(60_000),
  driftInterval: duration.default(300_000),
  selfHeal: z.boolean().default(false),
  allowMassDelete: z.boolean().default(false),
  prune: z.enum(['adopted']).optional(),
  parallelism: z.number().int().positive().default(10),
  webhookSecret: secretRef.optional(),
  labels: z.record(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._/-]*$/, 'a label name is letters, digits, ".", "_", "/" and "-"'), z.string()).default({}),
});

const configSchema = z
  .strictObject({
    listen: z.string().default('127.0.0.1:7070'),
    state: z.string().min(1),
    cacheDir: z.string().optional(),
    concurrency: z.number().int().positive().default(4),
    passTimeout: duration.default(30 * 60_000),
    shutdownGrace: duration.default(30_000),
    trustProxy: z.boolean().default(false),
    webhookRateLimit: z.number().int().positive().default(120),
    webhookConcurrency: z.number().int().positive().default(4),
    webhookMaxBytes: z.number().int().positive().default(1024 * 1024),
    audit: z
      .strictObject({
        retention: z.union([z.literal('forever'), duration]).default(90 * 86_400_000),
        maxRows: z.union([z.literal('unlimited'), z.number().int().positive()]).default(1_000_000),
      })
      .default({ retention: 90 * 86_400_000, maxRows: 1_000_000 }),
    limits: z
      .strictObject({
        renderTime: duration.optional(),
        renderTimeEach: duration.optional(),
        renderedBytes: z.number().int().positive().optional(),
        yamlBytes: z.number().int().positive().optional(),
      })
      .default({}),
    stacks: z.array(stackSchema).min(1, 'configure at least one stack'),
    identity: secretRef.optional(),
  })
  .superRefine((config, ctx) => {
    const seen = new Map<string, number>();
    config.stacks.forEach((s, i) => {
      if (seen.has(s.name)) ctx.addIssue({ code: 'custom', path: ['stacks', i, 'name'], message: `stack "${s.name}" is configured twice` });
      seen.set(s.name, i);
    });
  });

export interface ConfigLoadOptions {
  /**
   * `check` (the default, for `capstan serve`): every secret is read now and a
   * missing one is a diagnostic. `lazy` (for commands that need only part of
   * the file, e.g. `capstan token` needs the state URL): a secret is read when
   * it is first revealed, and throws then if it cannot be.
   */
  readonly secrets?: 'check' | 'lazy';
}

export async function loadControllerConfig(file: string, env: NodeJS.ProcessEnv = process.env, options: ConfigLoadOptions = {}): Promise<ControllerConfig> {
  const absolute = path.resolve(file);
  let text: string;
  try {
    text = await readFile(absolute, 'utf8');
  } catch (err) {
    throw new DiagnosticsError([diagError(`cannot read the configuration: ${(err as Error).message}`, { source: { file, line: 1, col: 1 } })]);
  }
  return parseControllerConfig(text, file, env, options);
}

export async function parseControllerConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env, options: ConfigLoadOptions = {}): Promise<ControllerConfig> {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const at = (offset: number | undefined): SourcePosition => {
    const pos = lines.linePos(offset ?? 0);
    return { file, line: pos.line, col: pos.col };
  };
  const diagnostics: Diagnostic[] = [];
  const syntax = describeSyntaxError(doc.errors, text, at);
  if (syntax) throw new DiagnosticsError([syntax]);

  const parsed = configSchema.safeParse(doc.toJS() ?? {});
  if (!parsed.success) {
    for (const issue of parsed.error.issues) diagnostics.push(...issueDiagnostics(issue, doc, at));
    throw new DiagnosticsError(diagnostics);
  }
  const raw = parsed.data;
  const dir = path.dirname(path.resolve(file));
  const listen = parseListen(raw.listen);
  if (!listen) diagnostics.push(diagError(`listen: "${raw.listen}" is not HOST:PORT`, { source: at(offsetOf(doc, ['listen'])) }));

  const stacks: StackConfig[] = raw.stacks.map((s, i) => {
    let webhookSecret: Secret | undefined;
    if (s.webhookSecret) {
      const ref = s.webhookSecret;
      const source = at(offsetOf(doc, ['stacks', i, 'webhookSecret']));
      if (options.secrets === 'lazy') {
        webhookSecret = new Secret(() => {
          const value = readSecret(ref, dir, env);
          if (typeof value === 'string') return value;
          throw new DiagnosticsError([diagError(`stacks.${i}.webhookSecret: ${value.problem}`, { source })]);
        });
      } else {
        const value = readSecret(ref, dir, env);
        if (typeof value === 'string') webhookSecret = new Secret(value);
        else diagnostics.push(diagError(`stacks.${i}.webhookSecret: ${value.problem}`, { source }));
      }
    }
    return {
      name: s.name,
      repo: localOrUrl(s.repo, dir),
      branch: s.branch,
      path: s.path,
      policy: s.policy,
      intervalMs: s.interval,
      driftIntervalMs: s.driftInterval,
      selfHeal: s.selfHeal,
      allowMassDelete: s.allowMassDelete,
      pruneAdopted: s.prune === 'adopted',
      parallelism: s.parallelism,
      webhookSecret,
      labels: s.labels,
    };
  });
  if (diagnostics.length > 0) throw new DiagnosticsError(diagnostics);
  return {
    file: path.resolve(file),
    listen: listen!,
    state: raw.state.startsWith('sqlite:') && !raw.state.startsWith('sqlite::memory:') ? sqliteRelativeTo(raw.state, dir) : raw.state,
    cacheDir: raw.cacheDir === undefined ? undefined : path.resolve(dir, raw.cacheDir),
    concurrency: raw.concurrency,
    passTimeoutMs: raw.passTimeout,
    shutdownGraceMs: raw.shutdownGrace,
    limits: { renderTimeMs: raw.limits.renderTime, renderTimeEachMs: raw.limits.renderTimeEach, renderedBytes: raw.limits.renderedBytes, yamlBytes: raw.limits.yamlBytes },
    trustProxy: raw.trustProxy,
    webhookRateLimit: raw.webhookRateLimit,
    webhookConcurrency: raw.webhookConcurrency,
    webhookMaxBytes: raw.webhookMaxBytes,
    audit: {
      retentionMs: raw.audit.retention === 'forever' ? null : raw.audit.retention,
      maxRows: raw.audit.maxRows === 'unlimited' ? null : raw.audit.maxRows,
    },
    stacks,
    identity: raw.identity === undefined ? undefined : 'file' in raw.identity ? { file: path.resolve(dir, raw.identity.file) } : { env: raw.identity.env },
  };
}

export function parseListen(listen: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(listen.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65_535) return undefined;
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

function readSecret(ref: { env: string } | { file: string }, dir: string, env: NodeJS.ProcessEnv): string | { problem: string } {
  if ('env' in ref) {
    const value = env[ref.env];
    return value ? value : { problem: `the environment variable ${ref.env} is not set or empty` };
  }
  const file = path.resolve(dir, ref.file);
  try {
    const value = readFileSyncTrimmed(file);
    return value ? value : { problem: `the secret file ${file} is empty` };
  } catch (err) {
    return { problem: `cannot read the secret file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
  }
}

function readFileSyncTrimmed(file: string): string {
  return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
}

/** URLs and scp-like `host:path` stay as written; local paths become absolute, relative to the config file. */
function localOrUrl(repo: string, dir: string): string {
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(repo)) return repo;
  const colon = repo.indexOf(':');
  const slash = repo.indexOf('/');
  if (colon > 1 && (slash === -1 || colon < slash)) return repo;
  return path.resolve(dir, repo);
}

function sqliteRelativeTo(url: string, dir: string): string {
  let file = url.slice('sqlite:'.length);
  if (file.startsWith('//')) file = file.slice(2);
  return file === '' ? url : `sqlite:${path.resolve(dir, file)}`;
}

/** One zod issue as diagnostics: an unknown key or value gets the closest known one as a hint, like spec errors do. */
function issueDiagnostics(issue: z.core.$ZodIssue, doc: Document, at: (offset: number | undefined) => SourcePosition): Diagnostic[] {
  const where = issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
  if (issue.code === 'unrecognized_keys') {
    const schemaPath = issue.path.filter((k): k is string | number => typeof k === 'string' || typeof k === 'number');
    const known = objectKeysAt(configSchema, schemaPath);
    return issue.keys.map((key) => {
      const hint = didYouMean(key, known);
      return diagError(`${where}unknown key "${key}"${hint ? ` (did you mean "${hint}"?)` : ''}`, {
        source: at(offsetOf(doc, [...issue.path, key], 'key')),
        detail: known.length > 0 ? `known keys: ${known.join(', ')}` : undefined,
      });
    });
  }
  if (issue.code === 'invalid_value') {
    const value = doc.getIn(issue.path.filter((k): k is string | number => typeof k === 'string' || typeof k === 'number'));
    const options = issue.values.filter((v): v is string => typeof v === 'string');
    const hint = typeof value === 'string' ? didYouMean(value, options) : undefined;
    if (options.length > 0) {
      return [
        diagError(`${where}${JSON.stringify(value)} is not one of ${options.join(', ')}${hint ? ` (did you mean "${hint}"?)` : ''}`, {
          source: at(offsetOf(doc, issue.path)),
        }),
      ];
    }
  }
  return [diagError(where + issue.message, { source: at(offsetOf(doc, issue.path)) })];
}

/** Offset of the YAML node at `issuePath`, or of its nearest existing parent. */
function offsetOf(doc: Document, issuePath: readonly PropertyKey[], node: 'value' | 'key' = 'value'): number | undefined {
  const keys = issuePath.filter((k): k is string | number => typeof k === 'string' || typeof k === 'number');
  if (node === 'key' && keys.length > 0) {
    const parent = keys.length === 1 ? doc.contents : doc.getIn(keys.slice(0, -1), true);
    if (isMap(parent)) {
      const pair = parent.items.find((p) => isScalar(p.key) && String(p.key.value) === String(keys[keys.length - 1]));
      if (pair && isNode(pair.key) && pair.key.range) return pair.key.range[0];
    }
  }
  for (let n = keys.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(keys.slice(0, n), true);
    if (isNode(node) && node.range) return node.range[0];
  }
  return 0;
}
