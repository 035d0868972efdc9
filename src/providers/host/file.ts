import { isUtf8 } from 'node:buffer';
import { createHash, randomBytes } from 'node:crypto';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { digestOf, isSensitive, isSensitiveDigest, revealString, secretString, SENSITIVE_TEXT, type Sensitive } from '../../secrets/sensitive.js';
import type { SecretDigester } from '../../secrets/digest.js';
import { mergeVariables, variablesSchema } from '../../spec/variables.js';
import { describePathType, isSpecialPathType, type PathInfo, type PathType } from '../../transport/transport.js';
import {
  ProviderError,
  SpecFieldError,
  type ApplyRequest,
  type FieldChange,
  type InstanceFacts,
  type ProviderContext,
  type ResolveContext,
  type ResourceDiff,
  type ResourceProvider,
  type TemplateRequest,
  type TemplateSource,
} from '../provider.js';
import {
  accountReferences,
  createdAttributes,
  diffAttributes,
  groupField,
  liveAttributes,
  modeField,
  modeSchemaOf,
  ownerField,
  reconcileAttributes,
  reportUnresolvedAccounts,
  resolveOwnership,
  withResolvedMode,
  type LiveAttributes,
} from './attributes.js';
import type { HostHandle } from './host.js';
import {
  claimsOfPath,
  enclosingDirectory,
  ensureParent,
  errorCode,
  inspectConfined,
  providesPath,
  readPaths,
  realPathOf,
  specialFileError,
  specialFileRefusal,
  specPathField,
  specPathOf,
  stateField,
  typeRefusal,
  validatePathConflicts,
  type WithOptional,
} from './paths.js';

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

const repoPath = (what: string) =>
  z
    .string({ error: `${what} must be a path` })
    .min(1, { error: `${what} must not be empty` })
    .refine((s) => !s.startsWith('/'), { error: `${what} must be a path relative to the YAML file, inside the repository` })
    .refine((s) => !s.includes('\0'), { error: `${what} must not contain a NUL character` });

/** A Sensitive anywhere in `value` (a secret var, maybe inside a map or list). */
function holdsSensitive(value: unknown, depth = 0): boolean {
  if (isSensitive(value)) return true;
  if (depth > 64 || typeof value !== 'object' || value === null) return false;
  return Object.values(value).some((v) => holdsSensitive(v, depth + 1));
}

/** The fields that say what a File holds: exactly one with state: present, none with state: absent. */
const CONTENT_FIELDS = ['content', 'source', 'template', 'contentBase64'] as const;
/** Fields that only mean something for a file that is there. */
const PRESENT_ONLY = [...CONTENT_FIELDS, 'vars', 'mode', 'owner', 'group', 'sensitive'] as const;

export const fileSchema = z
  .strictObject({
    path: specPathField('The file: an absolute path on the host (below its root); missing parent directories are created (0755).', '/etc/motd'),
    state: stateField('a regular file with this content'),
    /** UTF-8 text, or `{ secret: PATH }` (an age file of the repository; the File is then sensitive). */
    content: secretString('content must be a string or { secret: PATH }')
      .optional()
      .meta({
        description: 'The file\'s text (UTF-8), or { secret: PATH } (an age-encrypted file of the repository; the File is then sensitive).',
        examples: ['Welcome to web-1\n', { secret: 'secrets/api-token.age' }],
      }),
    /** Bytes that are not UTF-8 text, base64-encoded; `resolve` puts a binary `source` here. */
    contentBase64: z
      .string({ error: 'contentBase64 must be a string' })
      .regex(BASE64, { error: 'contentBase64 must be standard base64 (A-Z a-z 0-9 + /, "=" padding)' })
      .optional()
      .meta({ description: 'Bytes that are not UTF-8 text, base64-encoded (standard alphabet, "=" padding).', examples: ['AAH/'] }),
    /** A file of the repository, relative to the YAML document; read into `content` at load time. */
    source: repoPath('source')
      .optional()
      .meta({ description: 'A file of the repository, relative to the YAML document (never outside the repository); read at load time.', examples: ['files/nginx.conf'] }),
    /**
     * A Liquid template in the repository, relative to the YAML document; read at
     * load time and rendered into `content` for each host with its variables.
     */
    template: repoPath('template')
      .optional()
      .meta({ description: 'A Liquid template of the repository, relative to the YAML document; rendered for each host with its variables.', examples: ['templates/motd.liquid'] }),
    /** Variables for `template` only; they win over the host's. */
    vars: variablesSchema
      .optional()
      .meta({
        description: "Variables for template only; they win over the host's and its groups'. A value may be { secret: PATH }: a template that reads a secret variable is sensitive.",
        examples: [{ port: 8080 }],
      }),
    mode: modeField('Mode of the file, or "preserve" (with source: the mode of the repository file); 0644 when Capstan creates it and mode is omitted', modeSchemaOf({ preserve: true })),
    owner: ownerField(),
    group: groupField(),
    /**
     * The content is a secret: it is carried as a Sensitive, diffs show `(sensitive)`,
     * and plans, live state and the store hold only its keyed digest.
     */
    sensitive: z
      .boolean({ error: 'sensitive must be true or false' })
      .optional()
      .meta({ description: 'The content is a secret: diffs show (sensitive); plans, live state and the store hold only its keyed digest.', examples: [true] }),
    /**
     * Unset: the content is kept up to date, an object of another type is a
     * plan error. true: that object is replaced too. false: the file is written
     * once, when the path is empty, and its content is never compared again.
     */
    force: z
      .boolean({ error: 'force must be true or false' })
      .optional()
      .meta({
        description:
          'Omitted: the content is kept as the spec says, and an object of another type at the path (a directory, a link) is a plan error. true: that object is replaced as well. false: create once, never overwrite (a seed file the service then owns: its content is not compared once it exists; mode, owner and group still are).',
        examples: [false, true],
      }),
    backup: z
      .boolean({ error: 'backup must be true or false' })
      .default(false)
      .meta({
        description: 'Before replacing a regular file, keep its old content beside it as PATH.<UTC timestamp>~ with the same mode and owner.',
        examples: [true],
      }),
  })
  .superRefine((spec, ctx) => {
    if (spec.state === 'absent') {
      for (const field of PRESENT_ONLY) {
        if (spec[field] !== undefined) ctx.addIssue({ code: 'custom', path: [field], message: `${field} is for state: present; a File with state: absent takes path and force only` });
      }
      return;
    }
    const given = CONTENT_FIELDS.filter((k) => spec[k] !== undefined);
    if (given.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        message:
          given.length === 0
            ? 'a File needs exactly one of content, source or template (or state: absent)'
            : `a File takes exactly one of content, source, template and contentBase64, not ${given.join(' and ')}`,
      });
    }
    if (spec.sensitive === false && isSensitive(spec.content)) {
      ctx.addIssue({ code: 'custom', path: ['sensitive'], message: 'content is a secret: it cannot be sensitive: false' });
    }
    if (spec.sensitive === false && spec.vars !== undefined && holdsSensitive(spec.vars)) {
      ctx.addIssue({ code: 'custom', path: ['sensitive'], message: 'vars hold a secret: a template rendered with it is a secret, it cannot be sensitive: false' });
    }
    if (spec.vars !== undefined && spec.template === undefined) {
      ctx.addIssue({ code: 'custom', path: ['vars'], message: 'vars are for a template: add template:, or remove vars' });
    }
    if (spec.mode === 'preserve' && spec.source === undefined) {
      ctx.addIssue({ code: 'custom', path: ['mode'], message: 'mode: preserve takes the mode of a repository file: it needs source:' });
    }
  })
  .meta({ examples: [{ path: '/etc/nginx/conf.d/app.conf', content: 'server { listen 8080; }\n', mode: '0644', owner: 'root', group: 'root', backup: true }] });

/** The defaulted fields are optional: a spec stored before they existed lacks them (absent means the default). */
export type FileSpec = WithOptional<z.infer<typeof fileSchema>, 'state' | 'backup'>;

/** Why a live file's `content` is null although the file exists. */
export type ContentOmitted = 'too-large' | 'binary' | 'sensitive';

export interface FileLive extends LiveAttributes {
  readonly path: string;
  /** `file`, or what occupies the path instead (to be replaced). */
  readonly type: Exclude<PathType, 'absent'>;
  readonly size: number | null;
  readonly sha256: string | null;
  /** The file's text when it is UTF-8, at most 1 MiB and not sensitive. */
  readonly content: string | null;
  readonly contentOmitted: ContentOmitted | null;
  /**
   * For a sensitive file: the keyed digest of its bytes (`sha256` is null then, an
   * unkeyed hash of a secret being a leak); absent otherwise.
   */
  readonly contentDigest?: string | null;
}

/** The content is a secret: written inline with `sensitive: true`, or a `{ secret: PATH }`. */
export function isSensitiveFile(spec: FileSpec): boolean {
  return spec.sensitive === true || isSensitive(spec.content) || isSensitiveDigest(spec.content);
}

const DEFAULT_MODE = '0644';
const MODE_OPTIONS = { directory: false, defaultMode: DEFAULT_MODE };

/** Template texts read at resolve time, by the resolved spec they belong to (rendered per instance by the engine's render pool). */
const templateSources = new WeakMap<FileSpec, TemplateSource>();
/** How the content rendered from a sensitive template is sealed, by the resolved spec. */
const sealers = new WeakMap<FileSpec, (value: string) => Sensitive<string>>();

/** Reads `spec.template`; every failure names the template field. Parsing and rendering happen in the render pool. */
async function resolveTemplate(spec: FileSpec & { template: string }, from: { file: string }, ctx: ResolveContext): Promise<FileSpec> {
  // The name errors show: the template's path in the repository.
  const shown = path.posix.normalize(path.posix.join(path.posix.dirname(from.file.split(path.sep).join('/')), spec.template));
  let data: Buffer;
  try {
    data = await ctx.readFile(spec.template, from.file);
  } catch (err) {
    throw new SpecFieldError(`cannot read template ${spec.template}: ${err instanceof Error ? err.message : String(err)}`, ['template'], { cause: err });
  }
  if (!isUtf8(data)) throw new SpecFieldError(`template ${shown} is not UTF-8 text`, ['template']);
  const resolved: FileSpec = { ...spec };
  templateSources.set(resolved, { name: shown, text: data.toString('utf8') });
  if (spec.sensitive === true && !ctx.seal) throw new SpecFieldError('sensitive: true needs a loader that seals secrets', ['sensitive']);
  // Kept for every template: one that reads a secret variable is sealed whatever `sensitive` says.
  if (ctx.seal) sealers.set(resolved, ctx.seal);
  return resolved;
}

/** The template of one instance, with the host's variables (then the File's own). */
function fileTemplates(spec: FileSpec, instance: InstanceFacts): TemplateRequest[] {
  if (spec.template === undefined) return [];
  const source = templateSources.get(spec);
  if (!source) throw new SpecFieldError(`template ${spec.template} was not read: the spec must be resolved before it is instantiated`, ['template']);
  return [{ source, vars: mergeVariables(instance.vars, spec.vars), specPath: ['template'] }];
}

/** The instance's spec: the rendered template into `content`. */
function instantiateFile(spec: FileSpec, _instance: InstanceFacts, rendered: readonly string[], readSecret: readonly boolean[] = []): FileSpec {
  if (spec.template === undefined) return spec;
  const content = rendered[0];
  if (content === undefined) throw new SpecFieldError(`template ${spec.template} was not rendered`, ['template']);
  const { template: _template, vars: _vars, ...rest } = spec;
  const secret = readSecret[0] === true;
  if (secret && spec.sensitive === false) {
    throw new SpecFieldError(`template ${spec.template} reads a secret variable: its output is a secret, it cannot be sensitive: false`, ['sensitive']);
  }
  if (!secret && spec.sensitive !== true) return { ...rest, content };
  const seal = sealers.get(spec);
  if (!seal) throw new SpecFieldError(`template ${spec.template} reads a secret: it needs a loader that seals secrets`, ['template']);
  return { ...rest, content: seal(content) };
}

/** Inline or source content marked `sensitive: true` becomes a Sensitive, so no plan or store sees it. */
function sealContent(spec: FileSpec, ctx: ResolveContext): FileSpec {
  if (spec.sensitive !== true || typeof spec.content !== 'string') return spec;
  if (!ctx.seal) throw new SpecFieldError('sensitive: true needs a loader that seals secrets', ['sensitive']);
  return { ...spec, content: ctx.seal(spec.content) };
}

function desiredBytes(spec: FileSpec): Buffer {
  if (spec.content !== undefined) return Buffer.from(revealString(spec.content), 'utf8');
  if (spec.contentBase64 !== undefined) return Buffer.from(spec.contentBase64, 'base64');
  throw new Error(`File ${spec.path} has no content: its source must be resolved before planning`);
}

const digests = new WeakMap<FileSpec, string>();

function desiredSha256(spec: FileSpec): string {
  let digest = digests.get(spec);
  if (digest === undefined) {
    digest = createHash('sha256').update(desiredBytes(spec)).digest('hex');
    digests.set(spec, digest);
  }
  return digest;
}

function toLive(path: string, info: PathInfo, sensitive: boolean, digester: SecretDigester | undefined): FileLive | null {
  if (info.type === 'absent') return null;
  let content: string | null = null;
  let contentOmitted: ContentOmitted | null = null;
  if (info.type === 'file') {
    if (sensitive) contentOmitted = 'sensitive';
    else if (info.content === null) contentOmitted = 'too-large';
    else if (!isUtf8(info.content)) contentOmitted = 'binary';
    else content = info.content.toString('utf8');
  }
  const sha256 = info.type === 'file' ? info.sha256 : null;
  return {
    path,
    type: info.type,
    size: info.size,
    sha256: sensitive ? null : sha256,
    content,
    contentOmitted,
    ...(sensitive ? { contentDigest: sha256 !== null && digester ? digester.digestOfSha256(sha256) : null } : {}),
    ...liveAttributes(info),
  };
}

function describeBytes(size: number | null, sha256: string | null): string {
  return `(${size ?? '?'} bytes, sha256 ${sha256 ?? '?'})`;
}

function contentChange(desired: FileSpec, live: FileLive | null): FieldChange {
  const before = live === null || live.type !== 'file' ? null : live;
  if (isSensitiveFile(desired)) {
    return { path: 'content', before: before ? SENSITIVE_TEXT : null, after: SENSITIVE_TEXT, sensitive: true };
  }
  if (typeof desired.content === 'string') {
    return { path: 'content', format: 'text', before: before?.content ?? null, after: desired.content };
  }
  return {
    path: 'content',
    before: before ? (before.content ?? describeBytes(before.size, before.sha256)) : null,
    after: describeBytes(desiredBytes(desired).length, desiredSha256(desired)),
  };
}

function omittedReason(desired: FileSpec, live: FileLive): string | undefined {
  if (isSensitiveFile(desired) || desired.content === undefined || live.content !== null) return undefined;
  if (live.contentOmitted === 'too-large') return 'live content not shown: the file is larger than 1 MiB';
  if (live.contentOmitted === 'binary') return 'live content not shown: the file is not UTF-8 text';
  return undefined;
}

/**
 * A sensitive file compares keyed digests (the live one read with this run's key;
 * the desired one a Sensitive's, or a stored spec's digest in drift checks).
 */
function sameContent(desired: FileSpec, live: FileLive): boolean {
  if (!isSensitiveFile(desired)) return live.sha256 === desiredSha256(desired);
  const want = digestOf(desired.content);
  return want !== undefined && live.contentDigest != null && live.contentDigest === want;
}

/** A File with state: absent whose path is still occupied: a file (or a link, with force) goes. */
function diffAbsent(desired: FileSpec, live: FileLive | null): ResourceDiff {
  if (live === null) return { action: 'noop', fields: [] };
  const fields: FieldChange[] = [{ path: 'state', before: 'present', after: 'absent' }];
  if (live.type === 'file') return { action: 'update', fields, reason: `removes the file ${desired.path} ${describeBytes(live.size, live.sha256)}` };
  const refused =
    live.type === 'symlink'
      ? typeRefusal(desired, live.type, 'a regular file', { removing: true })
      : {
          message: `${desired.path} is ${describePathType(live.type)}, not a regular file: a File with state: absent removes a file (or, with force: true, a symbolic link) only${live.type === 'directory' ? '; use a Directory with state: absent' : ''}`,
          field: ['path'],
        };
  return { action: 'update', fields, reason: `removes the ${live.type} at ${desired.path}`, ...(refused ? { refusal: refused } : {}) };
}

export function diffFile(desired: FileSpec, live: FileLive | null, prior: FileSpec | null): ResourceDiff {
  if (desired.state === 'absent') return diffAbsent(desired, live);
  const moved = prior !== null && prior.state !== 'absent' && prior.path !== desired.path;
  const pathField: FieldChange[] = moved ? [{ path: 'path', before: prior.path, after: desired.path }] : [];
  const movedReason = moved ? `path changed from ${prior.path}` : undefined;
  if (live === null) {
    const fields = [...pathField, contentChange(desired, null), ...createdAttributes(withResolvedMode(desired, null, MODE_OPTIONS))];
    return moved ? { action: 'replace', fields, reason: movedReason } : { action: 'create', fields };
  }
  if (live.type !== 'file') {
    const refusal = live.type === 'directory' ? ' (refused at apply unless the directory is empty)' : '';
    const refused = typeRefusal({ ...desired, force: desired.force === true }, live.type, 'a regular file', { removing: false });
    return {
      action: 'replace',
      fields: [...pathField, { path: 'type', before: live.type, after: 'file' }, contentChange(desired, null), ...createdAttributes(withResolvedMode(desired, null, MODE_OPTIONS))],
      reason: `${desired.path} is ${describePathType(live.type)}, not a file${refusal}`,
      ...(isSpecialPathType(live.type) ? specialFileRefusal(desired.path, live.type, 'a file') : refused ? { refusal: refused } : {}),
    };
  }
  const fields = [...pathField];
  let reason = movedReason;
  // force: false: a file that exists keeps its content (created once, then the service's).
  if (desired.force !== false && !sameContent(desired, live)) {
    fields.push(contentChange(desired, live));
    const omitted = omittedReason(desired, live);
    if (omitted) reason = reason ? `${reason}; ${omitted}` : omitted;
  }
  fields.push(...diffAttributes(withResolvedMode(desired, live.mode, MODE_OPTIONS), live));
  if (moved) return { action: 'replace', fields, reason };
  if (fields.length === 0) return { action: 'noop', fields };
  return reason ? { action: 'update', fields, reason } : { action: 'update', fields };
}

async function applyFile(
  handle: HostHandle,
  request: ApplyRequest<FileSpec, FileLive>,
  ctx: ProviderContext,
): Promise<FileLive | null> {
  const { signal, digester } = ctx;
  const { transport } = handle;
  if (request.action === 'delete') {
    const path = request.prior?.path ?? request.live?.path;
    if (path === undefined) throw new Error(`cannot delete ${request.address}: no last applied spec names its path`);
    // A File with state: absent made nothing to delete.
    if (request.prior?.state === 'absent') return null;
    const [info] = await inspectConfined(handle, [path], { content: false, signal });
    // Only a file (or a link in its place) is removed; a directory that took the path is not ours.
    if (info!.type === 'file' || info!.type === 'symlink') {
      await transport.remove(realPathOf(handle.root, path), { type: info!.type });
    }
    return null;
  }

  const desired = request.desired;
  if (desired === null) throw new Error(`${request.action} of ${request.address} needs a desired spec`);
  if (desired.state === 'absent') return applyAbsent(handle, desired, signal);
  const oldPath = request.prior !== null && request.prior.state !== 'absent' && request.prior.path !== desired.path ? request.prior.path : null;
  const [info, oldInfo] = await inspectConfined(handle, oldPath ? [desired.path, oldPath] : [desired.path], {
    content: true,
    signal,
  });
  const real = realPathOf(handle.root, desired.path);
  const bytes = desiredBytes(desired);
  const ids = await resolveOwnership(handle, desired);

  if (info!.type !== 'file' && info!.type !== 'absent' && !isSpecialPathType(info!.type) && desired.force !== true) {
    // The plan refused this without force: true; an object that appeared since is refused here.
    throw new ProviderError(typeRefusal({ ...desired, force: false }, info!.type, 'a regular file', { removing: false })!.message);
  }
  if (info!.type === 'directory') {
    try {
      await transport.remove(real, { type: 'directory' });
    } catch (err) {
      const code = errorCode(err);
      if (code === 'ENOTEMPTY' || code === 'EEXIST') {
        throw new ProviderError(
          `cannot replace ${desired.path} on ${handle.address} with a file: it is a directory that is not empty`,
          { cause: err },
        );
      }
      throw err;
    }
  } else if (isSpecialPathType(info!.type)) {
    throw specialFileError(handle, desired.path, info!.type);
  }

  const kept = info!.type === 'file' ? info! : null;
  const wanted = withResolvedMode(desired, kept?.mode ?? null, MODE_OPTIONS);
  if (kept === null || (desired.force !== false && kept.sha256 !== desiredSha256(desired))) {
    if (kept !== null && desired.backup === true) {
      const backup = await backupFile(handle, desired.path, signal);
      ctx.note?.(`kept the replaced content of ${desired.path} as ${backup}`);
    }
    // Unmanaged attributes of the file being replaced carry over to the new one.
    await ensureParent(handle, real);
    await transport.writeFileAtomic(real, bytes, {
      mode: wanted.mode ?? kept?.mode ?? DEFAULT_MODE,
      uid: ids.uid ?? kept?.uid ?? undefined,
      gid: ids.gid ?? kept?.gid ?? undefined,
    });
  } else {
    await reconcileAttributes(handle, real, info!, wanted, ids, { mode: true });
  }

  if (oldPath !== null && (oldInfo?.type === 'file' || oldInfo?.type === 'symlink')) {
    await transport.remove(realPathOf(handle.root, oldPath), { type: oldInfo.type });
  }
  const [after] = await inspectConfined(handle, [desired.path], { content: true, signal, accountNames: true });
  return toLive(desired.path, after!, isSensitiveFile(desired), digester);
}

async function applyAbsent(handle: HostHandle, desired: FileSpec, signal: AbortSignal): Promise<null> {
  const [info] = await inspectConfined(handle, [desired.path], { content: false, signal });
  const type = info!.type;
  if (type === 'absent') return null;
  if (type !== 'file' && (type !== 'symlink' || desired.force !== true)) {
    throw new ProviderError(`refusing to remove ${desired.path} on ${handle.address}: it is ${describePathType(type)}, not a regular file`);
  }
  await handle.transport.remove(realPathOf(handle.root, desired.path), { type });
  return null;
}

/** `20261203T184712.345Z`: a backup's suffix, sortable, unique per millisecond. */
function backupStamp(now: Date): string {
  return now.toISOString().replace(/[-:]/g, '');
}

/**
 * Copies the file at `specPath` to `PATH.<UTC timestamp>~` beside it, with its
 * mode, owner and times (`cp -p` to a temporary name, then a rename: a backup
 * is complete or absent). Returns the backup's spec path.
 */
export async function backupFile(handle: HostHandle, specPath: string, signal: AbortSignal): Promise<string> {
  const real = realPathOf(handle.root, specPath);
  const backup = `${real}.${backupStamp(new Date())}~`;
  const temp = path.posix.join(path.posix.dirname(real), `.${path.posix.basename(real)}.capstan-backup-${randomBytes(4).toString('hex')}`);
  const copied = await handle.transport.exec(['cp', '-p', '--', real, temp], { timeoutMs: 120_000, signal });
  if (copied.exitCode !== 0) {
    await handle.transport.remove(temp, { type: 'file' }).catch(() => false);
    throw new ProviderError(`cannot back up ${specPath} on ${handle.address} before replacing it: cp failed: ${copied.stderr.trim() || `exit ${copied.exitCode}`}`);
  }
  await handle.transport.rename(temp, backup);
  return specPathOf(handle.root, backup);
}

/** `mode: preserve`: the mode of the repository file `source` names (after `readFile` has confined and read it). */
async function sourceMode(spec: FileSpec & { source: string }, from: { file: string }, ctx: ResolveContext): Promise<string> {
  const file = path.resolve(path.dirname(path.resolve(ctx.repoDir, from.file)), spec.source);
  try {
    return ((await stat(file)).mode & 0o7777).toString(8).padStart(4, '0');
  } catch (err) {
    throw new SpecFieldError(`mode: preserve: cannot read the mode of ${spec.source}: ${err instanceof Error ? err.message : String(err)}`, ['mode'], { cause: err });
  }
}

export const fileProvider: ResourceProvider<FileSpec, FileLive, HostHandle> = {
  role: 'resource',
  kind: 'File',
  description:
    'A regular file on a Host: its content (inline, from a repository file, or a Liquid template rendered per host), mode and owner; written atomically. With state: absent, the file must not exist.',
  schema: fileSchema,
  targetKind: 'Host',
  describe: (spec) => spec.path,
  async resolve(spec, from, ctx) {
    if (spec.template !== undefined) return resolveTemplate({ ...spec, template: spec.template }, from, ctx);
    if (spec.source === undefined) return sealContent(spec, ctx);
    const source = spec.source;
    let data: Buffer;
    try {
      data = await ctx.readFile(source, from.file);
    } catch (err) {
      throw new ProviderError(`cannot read source ${source}: ${err instanceof Error ? err.message : String(err)}`, {
        cause: err,
      });
    }
    // Only once readFile has confined the path to the repository.
    if (spec.mode === 'preserve') spec = { ...spec, mode: await sourceMode({ ...spec, source }, from, ctx) };
    const { source: _source, ...rest } = spec;
    if (spec.sensitive === true && !isUtf8(data)) {
      throw new SpecFieldError(`source ${spec.source} is not UTF-8 text: sensitive: true takes text content only`, ['source']);
    }
    return sealContent(isUtf8(data) ? { ...rest, content: data.toString('utf8') } : { ...rest, contentBase64: data.toString('base64') }, ctx);
  },
  templates: fileTemplates,
  instantiate: instantiateFile,
  claims: claimsOfPath,
  validate: (resource, sameTarget) => validatePathConflicts(resource, sameTarget),
  implicitDependencies: (resource, sameTarget) => enclosingDirectory(resource, sameTarget),
  provides: providesPath,
  references: accountReferences,
  async read(handle, specs, ctx) {
    await reportUnresolvedAccounts(handle, specs, ctx);
    return readPaths(handle, specs, ctx, { content: true }, (spec, info) => toLive(spec.path, info, isSensitiveFile(spec), ctx.digester));
  },
  diff: diffFile,
  apply: applyFile,
};
