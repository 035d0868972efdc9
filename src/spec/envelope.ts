/**
 * The envelope every document shares (`kind`, `name`, `target`, `dependsOn`,
 * `spec`), then the provider's own schema on `spec`. Each problem becomes a
 * diagnostic at the position of the offending YAML node.
 */
import type { z } from 'zod';
import { error, type Diagnostic } from '../diag/diagnostic.js';
import type { ParsedDocument } from './parse-yaml.js';
import { baseAddress, KIND_PATTERN, NAME_PATTERN, parseAddress, type PositionLookup, type ResourceDocument } from './resource.js';

export const ENVELOPE_KEYS = ['kind', 'name', 'target', 'dependsOn', 'notify', 'spec'] as const;
export const GROUP_PREFIX = 'group:';

/**
 * A document whose kind and name are valid. Other envelope keys may be invalid
 * (see `EnvelopeResult.valid`): such a document is still checked as far as it can
 * be, so that one pass reports every problem, but it never becomes a resource.
 */
export interface LoadedDocument extends ResourceDocument {
  /** 0-based index of the document in its file. */
  readonly index: number;
  /** For each `dependsOn` entry kept, its index in the YAML list (invalid entries are left out). */
  readonly dependsOnAt: readonly number[];
  /** For each `notify` entry kept, its index in the YAML list. */
  readonly notifyAt: readonly number[];
  readonly keyPositionOf: PositionLookup;
}

export type EnvelopeKey = (typeof ENVELOPE_KEYS)[number];

export interface EnvelopeResult {
  /** Present when kind and name are valid. */
  readonly document: LoadedDocument | undefined;
  /** True when the envelope has no error at all. */
  readonly valid: boolean;
  /** Keys whose value was invalid and has been dropped (`target`) or replaced by `{}` (`spec`). */
  readonly invalidKeys: ReadonlySet<EnvelopeKey>;
  readonly diagnostics: Diagnostic[];
}

export function readEnvelope(parsed: ParsedDocument): EnvelopeResult {
  const v = parsed.value;
  const diagnostics: Diagnostic[] = [];
  const invalidKeys = new Set<EnvelopeKey>();
  const at = (key: string) => parsed.positionOf([key]);

  const kind = v['kind'];
  const name = v['name'];
  const kindOk = typeof kind === 'string' && KIND_PATTERN.test(kind);
  const nameOk = typeof name === 'string' && NAME_PATTERN.test(name);
  const address = kindOk && nameOk ? baseAddress(kind, name) : undefined;
  const fail = (summary: string, key: EnvelopeKey, detail?: string) => {
    invalidKeys.add(key);
    diagnostics.push(error(summary, { address, source: at(key), detail }));
  };

  if (kind === undefined) fail('missing required key "kind"', 'kind', 'the resource kind, e.g. kind: File');
  else if (typeof kind !== 'string') fail(`kind must be a string, not ${describe(kind)}`, 'kind');
  else if (!kindOk) fail(`kind ${JSON.stringify(kind)} must be PascalCase`, 'kind', `e.g. ${pascal(kind)}`);

  if (name === undefined) fail('missing required key "name"', 'name', 'lowercase letters, digits, ".", "_" and "-"');
  else if (typeof name !== 'string') {
    fail(`name must be a string, not ${describe(name)}`, 'name', typeof name === 'number' ? `quote it: name: "${String(name)}"` : undefined);
  } else if (!nameOk) {
    fail(
      `name ${JSON.stringify(name)} is not valid`,
      'name',
      'lowercase letters, digits, ".", "_" and "-", starting and ending with a letter or digit',
    );
  }

  let target: string | undefined;
  const rawTarget = v['target'];
  if (rawTarget !== undefined) {
    if (typeof rawTarget !== 'string') fail(`target must be a string, not ${describe(rawTarget)}`, 'target');
    else {
      const targetName = rawTarget.startsWith(GROUP_PREFIX) ? rawTarget.slice(GROUP_PREFIX.length) : rawTarget;
      if (NAME_PATTERN.test(targetName)) target = rawTarget;
      else fail(`target ${JSON.stringify(rawTarget)} is not a valid name`, 'target', 'a target name, or group:NAME for every member of a group');
    }
  }

  const readAddresses = (key: 'dependsOn' | 'notify', example: string): { addresses: string[]; at: number[] } => {
    const addresses: string[] = [];
    const positions: number[] = [];
    const list = v[key];
    if (list === undefined || list === null) return { addresses, at: positions };
    if (!Array.isArray(list)) {
      fail(`${key} must be a list of addresses`, key, typeof list === 'string' ? `write ${key}: [${list}]` : undefined);
      return { addresses, at: positions };
    }
    list.forEach((entry: unknown, i) => {
      const bad = (summary: string, detail?: string) => {
        invalidKeys.add(key);
        diagnostics.push(error(summary, { address, source: parsed.positionOf([key, i]), detail }));
      };
      const parsedEntry = typeof entry === 'string' ? parseAddress(entry) : undefined;
      if (typeof entry !== 'string') bad(`${key} entries must be strings, not ${describe(entry)}`);
      else if (!parsedEntry) bad(`${key} ${JSON.stringify(entry)} is not an address`, `write Kind/name, e.g. ${example}`);
      else if (parsedEntry.instance !== undefined) {
        bad(
          `${key} ${JSON.stringify(entry)} names an instance`,
          `write ${baseAddress(parsedEntry.kind, parsedEntry.name)}: the instance on the same target is chosen automatically`,
        );
      } else {
        addresses.push(entry);
        positions.push(i);
      }
    });
    return { addresses, at: positions };
  };
  const { addresses: dependsOn, at: dependsOnAt } = readAddresses('dependsOn', 'Directory/app');
  const { addresses: notify, at: notifyAt } = readAddresses('notify', 'Exec/reload-nginx');

  let spec = v['spec'];
  if (spec === undefined || spec === null) spec = {};
  else if (typeof spec !== 'object' || Array.isArray(spec)) {
    fail(`spec must be a map, not ${describe(spec)}`, 'spec');
    spec = {};
  }

  for (const key of Object.keys(v)) {
    if ((ENVELOPE_KEYS as readonly string[]).includes(key)) continue;
    const hint = didYouMean(key, ENVELOPE_KEYS);
    diagnostics.push(
      error(`unknown key ${JSON.stringify(key)}${hint ? ` (did you mean "${hint}"?)` : ''}`, {
        address,
        source: parsed.keyPositionOf([key]),
        detail: `a document has only ${ENVELOPE_KEYS.join(', ')}; the kind's own fields go under spec`,
      }),
    );
  }

  const valid = diagnostics.length === 0;
  if (!kindOk || !nameOk) return { document: undefined, valid, invalidKeys, diagnostics };
  return {
    valid,
    invalidKeys,
    diagnostics,
    document: {
      kind,
      name,
      target,
      dependsOn,
      dependsOnAt,
      notify,
      notifyAt,
      spec,
      source: parsed.source,
      positionOf: parsed.positionOf,
      keyPositionOf: parsed.keyPositionOf,
      index: parsed.index,
    },
  };
}

export type SpecParseResult<Spec> = { readonly ok: true; readonly spec: Spec } | { readonly ok: false; readonly diagnostics: Diagnostic[] };

/** Parses `doc.spec` with a provider's schema; every zod issue becomes a diagnostic at its node. */
export function parseSpec<Spec>(schema: z.ZodType<Spec>, doc: LoadedDocument): SpecParseResult<Spec> {
  const address = baseAddress(doc.kind, doc.name);
  let result: ReturnType<z.ZodType<Spec>['safeParse']>;
  try {
    result = schema.safeParse(doc.spec);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    return { ok: false, diagnostics: [error(`the ${doc.kind} schema failed: ${message}`, { address, source: doc.positionOf(['spec']) })] };
  }
  if (result.success) return { ok: true, spec: result.data };
  const diagnostics: Diagnostic[] = [];
  for (const issue of result.error.issues) {
    diagnostics.push(...issueDiagnostics(issue as ZodIssueLike, [], schema, doc, address));
  }
  return { ok: false, diagnostics };
}

/** The parts of a zod 4 issue this module reads. */
interface ZodIssueLike {
  readonly code: string;
  readonly path: readonly PropertyKey[];
  readonly message: string;
  readonly keys?: readonly string[];
  readonly errors?: readonly (readonly ZodIssueLike[])[];
  readonly expected?: string;
}

function issueDiagnostics(
  issue: ZodIssueLike,
  base: readonly (string | number)[],
  schema: z.ZodType,
  doc: LoadedDocument,
  address: string,
): Diagnostic[] {
  const path = [...base, ...issue.path.map((p) => (typeof p === 'number' ? p : String(p)))];
  const specPath = ['spec', ...path];
  if (issue.code === 'unrecognized_keys' && issue.keys) {
    const known = objectKeysAt(schema, path);
    return issue.keys.map((key) => {
      const hint = didYouMean(key, known);
      return error(`${formatPath([...specPath, key])}: unknown key${hint ? ` (did you mean "${hint}"?)` : ''}`, {
        address,
        source: doc.keyPositionOf([...specPath, key]),
        detail: known.length > 0 ? `known keys: ${known.join(', ')}` : undefined,
      });
    });
  }
  if (issue.code === 'invalid_union' && issue.errors && issue.errors.length > 0) {
    // Report the branch that got furthest: one that failed only on the value's own type is the worst match.
    const branches = issue.errors.filter((b) => !(b.length === 1 && b[0]!.path.length === 0 && b[0]!.code === 'invalid_type'));
    if (branches.length === 0) {
      const expected = [...new Set(issue.errors.map((b) => b[0]?.expected).filter((e): e is string => !!e))];
      return [
        error(`${formatPath(specPath)}: ${expected.length > 0 ? `expected ${expected.join(' or ')}` : issue.message}, got ${describe(valueAt(doc.spec, path))}`, {
          address,
          source: doc.positionOf(specPath),
        }),
      ];
    }
    const best = [...branches].sort((a, b) => a.length - b.length)[0]!;
    return best.flatMap((inner) => issueDiagnostics(inner, path, schema, doc, address));
  }
  let message = issue.message;
  if (issue.code === 'invalid_type' && valueAt(doc.spec, path) === undefined) {
    message = `required${issue.expected ? ` (${issue.expected})` : ''}`;
  }
  return [error(`${formatPath(specPath)}: ${message}`, { address, source: doc.positionOf(specPath) })];
}

function valueAt(value: unknown, path: readonly (string | number)[]): unknown {
  let v = value;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[seg];
  }
  return v;
}

/** `spec.listen[0].port` */
export function formatPath(path: readonly (string | number)[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

interface SchemaDef {
  readonly type: string;
  readonly innerType?: unknown;
  readonly in?: unknown;
  readonly shape?: Record<string, unknown>;
  readonly element?: unknown;
  readonly valueType?: unknown;
  readonly options?: readonly unknown[];
  readonly getter?: () => unknown;
}

function defOf(schema: unknown): SchemaDef | undefined {
  const def = (schema as { def?: unknown } | null | undefined)?.def;
  return def && typeof def === 'object' && typeof (def as { type?: unknown }).type === 'string' ? (def as SchemaDef) : undefined;
}

/** Candidate schemas at `path` after unwrapping optional, default, pipe, union... (best effort, for hints only). */
function schemasAt(schema: unknown, path: readonly (string | number)[], depth = 0): unknown[] {
  if (depth > 32) return [];
  const def = defOf(schema);
  if (!def) return [];
  switch (def.type) {
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
    case 'readonly':
    case 'catch':
    case 'nonoptional':
      return schemasAt(def.innerType, path, depth + 1);
    case 'pipe':
      return schemasAt(def.in, path, depth + 1);
    case 'lazy':
      return def.getter ? schemasAt(def.getter(), path, depth + 1) : [];
    case 'union':
      return (def.options ?? []).flatMap((o) => schemasAt(o, path, depth + 1));
  }
  if (path.length === 0) return [schema];
  const [head, ...rest] = path;
  if (def.type === 'object' && typeof head === 'string' && def.shape) return schemasAt(def.shape[head], rest, depth + 1);
  if (def.type === 'array') return schemasAt(def.element, rest, depth + 1);
  if (def.type === 'record') return schemasAt(def.valueType, rest, depth + 1);
  return [];
}

/** The keys an object schema at `path` accepts (for "unknown key" hints). */
export function objectKeysAt(schema: unknown, path: readonly (string | number)[]): string[] {
  const keys = new Set<string>();
  for (const s of schemasAt(schema, path)) {
    const def = defOf(s);
    if (def?.type === 'object' && def.shape) for (const k of Object.keys(def.shape)) keys.add(k);
  }
  return [...keys].sort();
}

/** The closest candidate when it is close enough to be a likely typo. */
export function didYouMean(word: string, candidates: readonly string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[-_]/g, '');
  const w = norm(word);
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(w, norm(c));
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  const allowed = Math.max(1, Math.floor(word.length / 3));
  return best !== undefined && bestDistance <= allowed && best !== word ? best : undefined;
}

/** Edit distance counting a swap of two neighbours as one edit (optimal string alignment). */
function editDistance(a: string, b: string): number {
  // Hints are for typos in short words; a huge key must not cost quadratic time.
  if (a.length > 64 || b.length > 64) return Math.max(a.length, b.length);
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  return `${typeof value === 'number' ? 'the number' : typeof value === 'boolean' ? 'the boolean' : typeof value} ${String(value)}`;
}

function pascal(kind: string): string {
  return kind
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((p) => p[0]!.toUpperCase() + p.slice(1))
    .join('');
}
