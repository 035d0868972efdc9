/**
 * The fields of a kind, flattened for reading: every property of its spec at a
 * dotted path (`mode`, `rollout.healthCheck.http.url`, `rules[].name` for the
 * items of a list, `vars.<key>` for the values of a map), with its type, whether
 * it is required, its default, description and examples.
 *
 * Read from the kind's JSON Schema (`kindSpecJsonSchema`, the input side of its
 * zod schema), so the reference says exactly what `capstan schema` gives editors:
 * descriptions and examples come from `.meta({ description, examples })` on each
 * zod field, defaults from `.default()`.
 */
import { SECRET_REFERENCE_JSON_SCHEMA } from '../secrets/sensitive.js';

type JsonObject = Record<string, unknown>;

export interface FieldDoc {
  /** Dotted path inside `spec`. */
  readonly path: string;
  /** Human type: `string`, `integer`, `"a" \| "b"`, `list of string`, `map of string to object`, `object`. */
  readonly type: string;
  readonly required: boolean;
  readonly hasDefault: boolean;
  readonly default?: unknown;
  readonly description?: string;
  readonly examples: readonly unknown[];
  /** For a field of only some variants of a union: which, e.g. `when transport: ssh`, `in the form with latency`. */
  readonly when?: string;
  /** True when the field has fields of its own (listed after it, at `path.` or `path[].`). */
  readonly hasFields: boolean;
}

/** Every field of a spec schema, parents before their fields, in declaration order. */
export function flattenFields(root: JsonObject): FieldDoc[] {
  const walker = new Walker(root);
  const out: FieldDoc[] = [];
  walker.fieldsOf(root, '', undefined, out, new Set());
  return out;
}

const SECRET_TYPE = 'string | { secret: PATH }';

class Walker {
  constructor(private readonly root: JsonObject) {}

  resolve(node: JsonObject, seen: ReadonlySet<string>): { node: JsonObject; seen: Set<string> } {
    const next = new Set(seen);
    let current = node;
    for (let hops = 0; typeof current['$ref'] === 'string' && hops < 20; hops++) {
      const ref = current['$ref'];
      if (next.has(ref)) break;
      next.add(ref);
      const target = this.lookup(ref);
      if (!target) break;
      const { $ref: _ref, ...rest } = current;
      current = { ...target, ...rest };
    }
    return { node: current, seen: next };
  }

  private lookup(ref: string): JsonObject | undefined {
    if (ref === '#') return this.root;
    if (!ref.startsWith('#/')) return undefined;
    let node: unknown = this.root;
    for (const part of ref.slice(2).split('/')) node = (node as JsonObject | undefined)?.[part.replace(/~1/g, '/').replace(/~0/g, '~')];
    return node && typeof node === 'object' ? (node as JsonObject) : undefined;
  }

  /** The fields of an object-like node (properties, the variants of a union, the values of a map, list items). */
  fieldsOf(raw: JsonObject, prefix: string, when: string | undefined, out: FieldDoc[], seen: ReadonlySet<string>): void {
    const { node, seen: inner } = this.resolve(raw, seen);
    if (isSecretReference(node)) return;
    const variants = unionOf(node);
    if (variants && !isSecretUnion(variants)) {
      this.variantFields(variants, prefix, when, out, inner);
      return;
    }
    const properties = node['properties'];
    if (properties && typeof properties === 'object') {
      const required = new Set(Array.isArray(node['required']) ? (node['required'] as string[]) : []);
      for (const [key, child] of Object.entries(properties as JsonObject)) {
        this.field(child as JsonObject, join(prefix, key), required.has(key), when, out, inner);
      }
    }
    const values = mapValues(node);
    if (values && isObjectLike(this.resolve(values, inner).node)) this.fieldsOf(values, `${prefix}.<key>`, when, out, inner);
    const items = node['items'];
    if (node['type'] === 'array' && items && typeof items === 'object' && isObjectLike(this.resolve(items as JsonObject, inner).node)) {
      this.fieldsOf(items as JsonObject, `${prefix}[]`, when, out, inner);
    }
  }

  private field(raw: JsonObject, path: string, required: boolean, when: string | undefined, out: FieldDoc[], seen: ReadonlySet<string>): void {
    const { node: resolved, seen: inner } = this.resolve(raw, seen);
    const node = withNullableAnnotations(resolved, (n) => this.resolve(n, inner).node);
    const nested: FieldDoc[] = [];
    const recursive = typeof raw['$ref'] === 'string' && seen.has(raw['$ref']);
    if (!recursive) this.fieldsOf(node, path, when, nested, inner);
    out.push({
      path,
      type: this.typeOf(node, inner),
      required,
      hasDefault: 'default' in node,
      ...('default' in node ? { default: node['default'] } : {}),
      ...(typeof node['description'] === 'string' ? { description: node['description'] } : {}),
      examples: Array.isArray(node['examples']) ? node['examples'] : [],
      ...(when !== undefined ? { when } : {}),
      hasFields: nested.length > 0,
    });
    out.push(...nested);
  }

  /** Fields of a union's object variants, merged by path; a field only some variants have says which. */
  private variantFields(variants: JsonObject[], prefix: string, when: string | undefined, out: FieldDoc[], seen: ReadonlySet<string>): void {
    const merged = new Map<string, { field: FieldDoc; whens: string[]; types: string[]; required: boolean }>();
    const objects = variants.map((v) => this.resolve(v, seen).node).filter(isObjectLike);
    objects.forEach((variant, i) => {
      const label = discriminatorOf(variant, objects) ?? requiredLabel(variant) ?? `in variant ${i + 1}`;
      const fields: FieldDoc[] = [];
      this.fieldsOf(variant, prefix, undefined, fields, seen);
      for (const f of fields) {
        const m = merged.get(f.path);
        if (!m) {
          merged.set(f.path, { field: f, whens: [label], types: [f.type], required: f.required });
          continue;
        }
        m.whens.push(label);
        if (!m.types.includes(f.type)) m.types.push(f.type);
        m.required &&= f.required;
        m.field = {
          ...m.field,
          ...(m.field.description === undefined && f.description !== undefined ? { description: f.description } : {}),
          examples: [...m.field.examples, ...f.examples.filter((e) => !m.field.examples.some((x) => JSON.stringify(x) === JSON.stringify(e)))],
          hasFields: m.field.hasFields || f.hasFields,
        };
      }
    });
    for (const { field, whens, types, required } of merged.values()) {
      const everywhere = whens.length === objects.length;
      const own = everywhere ? field.when : [field.when, whens.join(' or ')].filter(Boolean).join('; ');
      const combined = [when, own].filter(Boolean).join('; ');
      const { when: _when, ...rest } = field;
      // Required means required in every variant that has the field; `when` says which those are.
      out.push({ ...rest, type: types.join(' | '), required, ...(combined ? { when: combined } : {}) });
    }
  }

  typeOf(raw: JsonObject, seen: ReadonlySet<string>): string {
    const { node, seen: inner } = this.resolve(raw, seen);
    if (isSecretReference(node)) return '{ secret: PATH }';
    if ('const' in node) return JSON.stringify(node['const']);
    if (Array.isArray(node['enum'])) return (node['enum'] as unknown[]).map((v) => JSON.stringify(v)).join(' | ');
    const variants = unionOf(node);
    if (variants) {
      if (isSecretUnion(variants)) return SECRET_TYPE;
      const types: string[] = [];
      for (const v of variants) {
        const t = this.typeOf(v, inner);
        if (!types.includes(t)) types.push(t);
      }
      return types.join(' | ');
    }
    const type = node['type'];
    if (Array.isArray(type)) return type.join(' | ');
    if (type === 'array') {
      const items = node['items'];
      return items && typeof items === 'object' ? `list of ${parenthesise(this.typeOf(items as JsonObject, inner))}` : 'list';
    }
    if (type === 'object' || node['properties']) {
      const values = mapValues(node);
      if (values && !node['properties']) return `map of ${parenthesise(this.typeOf(values, inner))}`;
      return 'object';
    }
    if (typeof type === 'string') return type;
    return 'any';
  }
}

/** `X | null` says what X says (zod puts `.meta` of a nullable field's value inside the union). */
function withNullableAnnotations(node: JsonObject, resolve: (n: JsonObject) => JsonObject): JsonObject {
  const variants = unionOf(node);
  if (!variants || variants.length !== 2) return node;
  const values = variants.map(resolve).filter((v) => v['type'] !== 'null');
  if (values.length !== 1) return node;
  const [value] = values as [JsonObject];
  return {
    ...(typeof value['description'] === 'string' ? { description: value['description'] } : {}),
    ...(Array.isArray(value['examples']) ? { examples: value['examples'] } : {}),
    ...node,
  };
}

function join(prefix: string, key: string): string {
  return prefix === '' ? key : `${prefix}.${key}`;
}

function parenthesise(type: string): string {
  return type.includes(' | ') ? `(${type})` : type;
}

function unionOf(node: JsonObject): JsonObject[] | undefined {
  const v = node['oneOf'] ?? node['anyOf'];
  return Array.isArray(v) ? (v as JsonObject[]) : undefined;
}

function mapValues(node: JsonObject): JsonObject | undefined {
  const v = node['additionalProperties'];
  return v && typeof v === 'object' ? (v as JsonObject) : undefined;
}

function isObjectLike(node: JsonObject): boolean {
  if (isSecretReference(node)) return false;
  if (node['properties'] && typeof node['properties'] === 'object') return true;
  const variants = unionOf(node);
  return variants !== undefined && !isSecretUnion(variants) && variants.some((v) => v['properties'] !== undefined || v['$ref'] !== undefined);
}

function isSecretUnion(variants: JsonObject[]): boolean {
  return variants.some(isSecretReference);
}

/** `{ secret: PATH }` (SECRET_REFERENCE_JSON_SCHEMA, perhaps with the field's own description): one value, not fields. */
function isSecretReference(node: JsonObject): boolean {
  const properties = node['properties'];
  return (
    properties !== null &&
    typeof properties === 'object' &&
    JSON.stringify(Object.keys(properties)) === JSON.stringify(Object.keys(SECRET_REFERENCE_JSON_SCHEMA.properties)) &&
    JSON.stringify(node['required']) === JSON.stringify(SECRET_REFERENCE_JSON_SCHEMA.required)
  );
}

/** `in the form with KEY` for a variant of a plain union, after its first required field. */
function requiredLabel(variant: JsonObject): string | undefined {
  const required = variant['required'];
  return Array.isArray(required) && typeof required[0] === 'string' ? `in the form with ${required[0]}` : undefined;
}

/** `when key: value` of a property that has a different constant in each variant (a discriminated union). */
function discriminatorOf(variant: JsonObject, all: JsonObject[]): string | undefined {
  const properties = (variant['properties'] ?? {}) as Record<string, JsonObject>;
  for (const [key, prop] of Object.entries(properties)) {
    if (!('const' in prop)) continue;
    const others = all.filter((v) => v !== variant).map((v) => ((v['properties'] ?? {}) as Record<string, JsonObject>)[key]);
    if (others.every((o) => o !== undefined && 'const' in o && o['const'] !== prop['const'])) return `when ${key}: ${String(prop['const'])}`;
  }
  return undefined;
}
