/**
 * Loading a stack: every `*.yaml`/`*.yml` under a directory becomes validated,
 * expanded resource instances, or diagnostics saying exactly where and why not.
 * All problems are collected in one pass; `loadStack` throws only when the
 * directory itself cannot be read.
 *
 *   files ─► parse-yaml ─► envelope ─► resolve-secrets ─► checkDocuments ─► resolve ─► checkReferences
 *         ─► expand ─► variables per target ─► checkHostGroups ─► instantiate
 *         ─► checkGraph ─► LoadedStack (+ specHash)
 */
import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readSync, statSync, type Dirent } from 'node:fs';
import { readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { error, sortDiagnostics, warning, type Diagnostic } from '../diag/diagnostic.js';
import type { ResolveContext } from '../providers/provider.js';
import { ProviderError, SpecFieldError } from '../providers/provider.js';
import type { ProviderRegistry } from '../providers/registry.js';
import { readEnvelope } from './envelope.js';
import { expandResources, targetResource, TargetIndex, type CheckedResourceDocument, type CheckedTargetDocument } from './expand.js';
import { checkHostGroups, healthCheckRenderer, type HostGroupSpec } from './host-group.js';
import type { Policy } from '../policy/policy.js';
import { instantiateResources } from './instantiate.js';
import { MAX_ALIAS_COUNT, MAX_DOCUMENTS, MAX_FILE_BYTES, parseYamlDocuments } from './parse-yaml.js';
import { sharedRenderPool, type RenderPool } from './render-pool.js';
import { MAX_STACK_RENDER_TIME_MS, MAX_STACK_RENDERED_BYTES, MAX_STACK_YAML_BYTES, StackBudget, yamlBudgetDiagnostic } from './stack-budget.js';
import { Keyring } from '../secrets/keyring.js';
import { isSensitive, type Sensitive } from '../secrets/sensitive.js';
import { createResolveContext, ResolveFileError } from './resolve-context.js';
import { explainRefusedSecrets, resolveSecrets } from './resolve-secrets.js';
import { baseAddress, type Address, type Resource } from './resource.js';
import { RENDER_TIME_LIMIT_MS } from './template.js';
import { checkDocuments, checkGraph, checkReferences, type DeclaredDocument } from './validate.js';
import { targetVariables, type Variables } from './variables.js';

export interface LoadOptions {
  /** Largest YAML file, and largest file `resolve` may read (default 16 MiB). */
  readonly maxFileBytes?: number;
  /** Most YAML documents in the whole stack (default 100,000). */
  readonly maxDocuments?: number;
  /** Alias expansions allowed per document (default 100). */
  readonly maxAliasCount?: number;
  // Stack-wide budgets (src/spec/stack-budget.ts): over one, the stack is invalid with one diagnostic.
  /** All YAML files of the stack together, in bytes (default 64 MiB); checked before parsing. */
  readonly maxStackYamlBytes?: number | undefined;
  /** Template render time summed over the whole stack, in ms (default 30 s). */
  readonly maxRenderTimeMs?: number | undefined;
  /** Size of all instances' specs together, rendered templates included (default 256 MiB). */
  readonly maxRenderedBytes?: number | undefined;
  /** Milliseconds one template render may take (default 2 s). */
  readonly renderTimeLimitMs?: number | undefined;
  /** Where templates render (default: the process's shared pool). */
  readonly renderPool?: RenderPool | undefined;
  /**
   * Decrypts `{ secret: PATH }` references and digests secret values (default: no
   * identity, so a reference is an error; inline `sensitive: true` values still work).
   */
  readonly keyring?: Keyring | undefined;
}

export interface LoadedStack {
  /** Absolute path of the directory loaded. */
  readonly repoDir: string;
  /** Every YAML file read, relative to `repoDir` with `/` separators, sorted. */
  readonly files: string[];
  readonly targets: Resource[];
  /**
   * Resource instances after expansion, spec parsed by the provider's schema,
   * resolved and instantiated (templates rendered), in document order; documents
   * with errors of their own (or on a target with errors) are left out.
   */
  readonly resources: Resource[];
  /**
   * HostGroup documents without errors, by group name. A group that targets list
   * without a HostGroup document is not here: it has no vars and no rollout settings.
   */
  readonly hostGroups: Readonly<Record<string, HostGroupSpec>>;
  /** Policy documents without errors, compiled, in document order: every plan is checked against them. */
  readonly policies: readonly Policy[];
  /**
   * Members of every group, by group name: target addresses sorted by name (valid targets only).
   */
  readonly groupMembers: Readonly<Record<string, readonly Address[]>>;
  /**
   * Template variables of every valid target, by target address (`Host/web-1`): its
   * groups' vars in the order it lists them, then its own vars, then the builtins
   * (`host.name`, `host.address`, `host.groups`). Frozen.
   */
  readonly varsByTarget: Readonly<Record<Address, Variables>>;
  /** Sorted by file, line, column. The stack is usable only when none is an error. */
  readonly diagnostics: Diagnostic[];
  /** sha256 (hex) of the canonical JSON of every target and resource. */
  readonly specHash: string;
}

/** Resolves run at the same time. */
const CONCURRENCY = 32;
/** Files read between two turns of the event loop. */
const READ_BATCH = 256;

export async function loadStack(dir: string, registry: ProviderRegistry, options: LoadOptions = {}): Promise<LoadedStack> {
  const repoDir = path.resolve(dir);
  const maxFileBytes = options.maxFileBytes ?? MAX_FILE_BYTES;
  const maxDocuments = options.maxDocuments ?? MAX_DOCUMENTS;
  const maxAliasCount = options.maxAliasCount ?? MAX_ALIAS_COUNT;
  const diagnostics: Diagnostic[] = [];

  const listing = await listYamlFiles(repoDir);
  diagnostics.push(...listing.diagnostics);
  const files = listing.files;
  const overYamlBudget = yamlBudgetDiagnostic(await yamlSizes(repoDir, files), options.maxStackYamlBytes ?? MAX_STACK_YAML_BYTES);
  if (overYamlBudget) diagnostics.push(overYamlBudget);

  // Read and parse in file order: the document budget is spent deterministically.
  const declared: DeclaredDocument[] = [];
  let documentsLeft = maxDocuments;
  for (let i = 0; i < files.length && documentsLeft > 0 && !overYamlBudget; i++) {
    // Let the event loop breathe (a controller serves HTTP while it loads).
    if (i > 0 && i % READ_BATCH === 0) await new Promise((resolve) => setImmediate(resolve));
    const file = files[i]!;
    const read = readYamlText(repoDir, file, maxFileBytes);
    if (typeof read !== 'string') {
      diagnostics.push(read);
      continue;
    }
    const parsed = parseYamlDocuments(read, file, { maxDocuments: documentsLeft, documentLimit: maxDocuments, maxAliasCount, maxBytes: maxFileBytes });
    documentsLeft -= parsed.count;
    diagnostics.push(...parsed.diagnostics);
    for (const broken of parsed.broken) declared.push({ ...broken, doc: undefined, valid: false, invalidKeys: new Set() });
    for (const p of parsed.documents) {
      const envelope = readEnvelope(p);
      diagnostics.push(...envelope.diagnostics);
      const doc = envelope.document;
      if (doc) declared.push({ kind: doc.kind, name: doc.name, source: p.source, doc, valid: envelope.valid, invalidKeys: envelope.invalidKeys });
    }
    if (parsed.limitReached) break;
  }

  await registry.load(declared.map((d) => d.kind));
  const context = createResolveContext(repoDir, { maxFileBytes, keyring: options.keyring ?? Keyring.none() });
  const secrets = await resolveSecrets(declared, context, options.keyring ?? Keyring.none());
  diagnostics.push(...secrets.diagnostics);
  const parsed = checkDocuments(secrets.declared, registry);
  diagnostics.push(...explainRefusedSecrets(parsed.diagnostics, secrets.references));
  const checked = { ...parsed, targets: sealDeclaredFields(parsed.targets, context.seal), resources: sealDeclaredFields(parsed.resources, context.seal) };

  // Every target whose spec parsed serves lookups, so that the resources on it are checked too;
  // only valid ones are targets of the stack.
  const allTargets = checked.targets.map(targetResource);
  const targets = allTargets.filter((_, i) => checked.targets[i]!.valid);
  const index = new TargetIndex(allTargets, registry);
  const documents = await resolveAll(checked.resources, context, diagnostics);

  const references = checkReferences(documents, index, checked.declared, checked.invalidTargetKinds, registry);
  diagnostics.push(...references.diagnostics);
  const expanded = expandResources(
    documents.filter((d) => references.targetResolved.has(d) || (d.doc.target === undefined && d.provider.targetOptional)),
    index,
  );

  // Variables: every HostGroup whose spec parsed lends its vars, so that templates are checked
  // against them even when the HostGroup has another error (which already makes the stack unusable).
  const groupVars: Record<string, Variables> = {};
  const hostGroups: Record<string, HostGroupSpec> = {};
  for (const g of checked.hostGroups) {
    groupVars[g.doc.name] = g.spec.vars;
    if (g.valid) hostGroups[g.doc.name] = g.spec;
  }
  const varsByTarget = targetVariables(targets, registry, groupVars);
  // Templates (health checks, then resources) render in the pool, within the stack's budgets.
  const budget = new StackBudget({
    renderTime: options.maxRenderTimeMs ?? MAX_STACK_RENDER_TIME_MS,
    renderedBytes: options.maxRenderedBytes ?? MAX_STACK_RENDERED_BYTES,
  });
  const pool = options.renderPool ?? sharedRenderPool();
  const healthChecks = healthCheckRenderer(pool, budget, options.renderTimeLimitMs ?? RENDER_TIME_LIMIT_MS);
  diagnostics.push(...(await checkHostGroups(checked.hostGroups, index, varsByTarget, checked.invalidTargetKinds.size > 0, healthChecks)));
  const instantiated = await instantiateResources(expanded, targets, registry, varsByTarget, {
    pool,
    budget,
    renderTimeLimitMs: options.renderTimeLimitMs,
  });
  diagnostics.push(...instantiated.diagnostics);
  const instances = instantiated.instances;
  diagnostics.push(...checkGraph(allTargets, instances, registry));

  // Resources of the stack: instances of documents without errors of their own, on valid targets.
  // Those the graph checks find fault with (a cycle, a provider's check) stay: the errors already
  // make the stack unusable, and the graph layer can still show them.
  const validDocuments = new Set(
    documents.filter((d) => d.valid && !references.invalid.has(d)).map((d) => baseAddress(d.doc.kind, d.doc.name)),
  );
  const validTargets = new Set(targets.map((t) => t.address));
  const resources = instances.filter(
    (r) => validDocuments.has(baseAddress(r.kind, r.name)) && (r.target === undefined || validTargets.has(r.target)) && !instantiated.failed.has(r.address),
  );

  return {
    repoDir,
    files,
    targets,
    resources,
    hostGroups,
    policies: checked.policies,
    groupMembers: groupMembers(targets, index),
    varsByTarget,
    diagnostics: sortDiagnostics(diagnostics),
    specHash: withHostGroups(specHash([...targets, ...resources]), hostGroups),
  };
}

/** Valid targets of every group, sorted by name. */
function groupMembers(targets: readonly Resource[], index: TargetIndex): Record<string, Address[]> {
  const valid = new Set(targets.map((t) => t.address));
  const out: Record<string, Address[]> = {};
  for (const group of index.groups().sort()) {
    const members = index.group(group).filter((t) => valid.has(t.address));
    if (members.length > 0) out[group] = members.map((t) => t.address);
  }
  return out;
}

/**
 * The stack's hash, covering HostGroup documents too (their rollout settings steer
 * the apply); a stack without HostGroups keeps the hash of its resources alone.
 */
function withHostGroups(resourcesHash: string, hostGroups: Readonly<Record<string, HostGroupSpec>>): string {
  if (Object.keys(hostGroups).length === 0) return resourcesHash;
  return createHash('sha256').update(resourcesHash).update('\0HostGroup\0').update(canonicalJson(hostGroups)).digest('hex');
}

/**
 * Plain strings in the fields a provider declares sensitive (a password written
 * inline) are sealed like `{ secret: PATH }` values: from here on they print as
 * `(sensitive)` and serialise as a keyed digest.
 */
function sealDeclaredFields<T extends CheckedResourceDocument | CheckedTargetDocument>(
  documents: readonly T[],
  seal: ((value: string) => Sensitive<string>) | undefined,
): T[] {
  return documents.map((d) => {
    const fields = d.provider.sensitiveFields;
    if (!fields || !seal || !d.specOk || d.spec === null || typeof d.spec !== 'object') return d;
    const spec = { ...(d.spec as Record<string, unknown>) };
    for (const f of fields) if (typeof spec[f] === 'string') spec[f] = seal(spec[f]);
    return { ...d, spec };
  });
}

/**
 * Runs each provider's `resolve` once per document whose spec parsed. A failure is
 * a diagnostic and leaves the document without a usable spec. Order is kept.
 */
async function resolveAll(
  documents: readonly CheckedResourceDocument[],
  context: ResolveContext,
  diagnostics: Diagnostic[],
): Promise<CheckedResourceDocument[]> {
  const results: CheckedResourceDocument[] = [...documents];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < documents.length) {
      const i = next++;
      const checked = documents[i]!;
      const resolve = checked.provider.resolve;
      if (!resolve || !checked.specOk) continue;
      const requested: string[] = [];
      const tracking: ResolveContext = {
        repoDir: context.repoDir,
        ...(context.seal ? { seal: context.seal } : {}),
        readFile: (relativePath, fromFile) => {
          requested.push(relativePath);
          return context.readFile(relativePath, fromFile);
        },
        ...(context.listFiles
          ? {
              listFiles: (relativeDir: string, fromFile: string) => {
                requested.push(relativeDir);
                return context.listFiles!(relativeDir, fromFile);
              },
            }
          : {}),
      };
      try {
        const spec: unknown = await resolve.call(checked.provider, checked.spec, { file: checked.doc.source.file }, tracking);
        results[i] = { ...checked, spec };
      } catch (e) {
        const { doc } = checked;
        const culprit = e instanceof ResolveFileError ? e.requestedPath : requested[requested.length - 1];
        const where = e instanceof SpecFieldError ? [...e.specPath] : culprit === undefined ? undefined : pathOfString(doc.spec, culprit);
        const message =
          e instanceof ResolveFileError || e instanceof ProviderError
            ? e.message
            : `${doc.kind} could not resolve its spec: ${e instanceof Error ? e.message : String(e)}`;
        diagnostics.push(error(message, { address: baseAddress(doc.kind, doc.name), source: doc.positionOf(['spec', ...(where ?? [])]) }));
        results[i] = { ...checked, spec: undefined, specOk: false, valid: false };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, documents.length) }, worker));
  return results;
}

/** Where in a raw spec a string value appears (depth first), to point an error at it. */
function pathOfString(value: unknown, wanted: string, depth = 0): (string | number)[] | undefined {
  if (value === wanted) return [];
  if (depth > 64 || value === null || typeof value !== 'object') return undefined;
  const entries: [string | number, unknown][] = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
  for (const [key, child] of entries) {
    const rest = pathOfString(child, wanted, depth + 1);
    if (rest) return [key, ...rest];
  }
  return undefined;
}

interface Listing {
  readonly files: string[];
  readonly diagnostics: Diagnostic[];
}

/**
 * Every `*.yaml`/`*.yml` under `repoDir`, sorted. Skips dot-folders, dot-files
 * (`.gitlab-ci.yml` and the like are not Capstan documents) and `node_modules`.
 * A symlinked file is read when it stays inside the repository; a symlinked
 * directory is not followed.
 */
export async function listYamlFiles(repoDir: string): Promise<Listing> {
  const files: string[] = [];
  const diagnostics: Diagnostic[] = [];
  const realRoot = await realpath(repoDir);
  const pending = [''];
  while (pending.length > 0) {
    const rel = pending.pop()!;
    let entries: Dirent[];
    try {
      entries = await readdir(path.join(repoDir, rel), { withFileTypes: true });
    } catch (e) {
      if (rel === '') throw e;
      diagnostics.push(error(`cannot read directory: ${(e as Error).message}`, { source: { file: rel, line: 1, col: 1 } }));
      continue;
    }
    for (const entry of entries) {
      if (entry.name.startsWith('.') || entry.name === 'node_modules') continue;
      const relPath = rel === '' ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory()) {
        pending.push(relPath);
        continue;
      }
      const yaml = /\.ya?ml$/.test(entry.name);
      if (entry.isSymbolicLink()) {
        const where = { file: relPath, line: 1, col: 1 };
        let real: string;
        let isDirectory: boolean;
        try {
          real = await realpath(path.join(repoDir, relPath));
          isDirectory = (await stat(real)).isDirectory();
        } catch (e) {
          if (yaml) diagnostics.push(error(`broken symlink: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { source: where }));
          continue;
        }
        if (isDirectory) {
          diagnostics.push(warning('symlinked directory not followed', { source: where }));
          continue;
        }
        if (!yaml) continue;
        const inside = path.relative(realRoot, real);
        if (inside === '..' || inside.startsWith(`..${path.sep}`) || path.isAbsolute(inside)) {
          diagnostics.push(error('symlink leads out of the repository: not read', { source: where }));
          continue;
        }
      } else if (!yaml || !entry.isFile()) {
        continue;
      }
      files.push(relPath);
    }
  }
  files.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return { files, diagnostics };
}

/** The size of each YAML file (0 when it cannot be read: reading it reports why). */
async function yamlSizes(repoDir: string, files: readonly string[]): Promise<{ file: string; size: number }[]> {
  const sizes: { file: string; size: number }[] = [];
  for (let i = 0; i < files.length; i++) {
    if (i > 0 && i % READ_BATCH === 0) await new Promise((resolve) => setImmediate(resolve));
    let size = 0;
    try {
      size = statSync(`${repoDir}${path.sep}${files[i]!}`).size;
    } catch {
      // reported when the file is read
    }
    sizes.push({ file: files[i]!, size });
  }
  return sizes;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The file's text, or a diagnostic. Never reads more than the size fstat gave
 * plus one byte. Synchronous on purpose: for thousands of small files, four
 * direct system calls each cost a fraction of the promise API's round trips
 * through the thread pool; the caller yields to the event loop between batches.
 */
export function readYamlText(repoDir: string, file: string, maxBytes: number): string | Diagnostic {
  const where = { file, line: 1, col: 1 };
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO behind a symlink must not hang the load.
    fd = openSync(`${repoDir}${path.sep}${file}`, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    return error(`cannot read file: ${(e as Error).message}`, { source: where });
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) return error('not a regular file', { source: where });
    const size = stats.size;
    if (size > maxBytes) return error(`file is ${size} bytes, over the limit of ${maxBytes}`, { source: where });
    // One byte more than the size: reading it means the file grew since fstat.
    const buffer = Buffer.allocUnsafe(size + 1);
    let length = 0;
    for (;;) {
      const wanted = buffer.length - length;
      const bytesRead = readSync(fd, buffer, length, wanted, length);
      length += bytesRead;
      // A short read of a regular file is its end.
      if (bytesRead < wanted || length === buffer.length) break;
    }
    if (length > size) return error('file changed while it was read: load again', { source: where });
    try {
      const text = utf8.decode(buffer.subarray(0, length));
      return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
    } catch {
      return error('file is not valid UTF-8', { source: where });
    }
  } catch (e) {
    return error(`cannot read file: ${(e as Error).message}`, { source: where });
  } finally {
    closeSync(fd);
  }
}

/** sha256 over what the stack declares: address, kind, target, dependsOn, notify and spec of each target and resource. */
export function specHash(resources: readonly Resource[]): string {
  const entries = resources
    .map((r) => ({ address: r.address, kind: r.kind, target: r.target ?? null, dependsOn: [...r.dependsOn].sort(), ...(r.notify?.length ? { notify: [...r.notify].sort() } : {}), spec: r.spec }))
    .sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  // The canonical JSON of the array, fed entry by entry: the same digest as one string,
  // without building one (a large stack's would exceed V8's longest string).
  const hash = createHash('sha256').update('[');
  entries.forEach((entry, i) => hash.update(i === 0 ? canonicalJson(entry) : `,${canonicalJson(entry)}`));
  return hash.update(']').digest('hex');
}

/**
 * JSON with object keys sorted at every level, so equal values always give equal
 * text. `undefined` members are left out as JSON does; non-finite numbers and
 * bigints become strings, binary data base64, so no two distinct values collide
 * with `null`.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      return Number.isFinite(value) ? JSON.stringify(value) : JSON.stringify(String(value));
    case 'bigint':
      return JSON.stringify(value.toString());
    case 'object':
      break;
    default:
      return 'null';
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  // A secret counts by its keyed digest, never its value.
  if (isSensitive(value)) return canonicalJson(value.toJSON());
  if (ArrayBuffer.isView(value)) return JSON.stringify(Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64'));
  if (value instanceof Map) return canonicalJson(Object.fromEntries(value));
  if (value instanceof Set) return canonicalJson([...value]);
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined && typeof obj[k] !== 'function')
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
}
