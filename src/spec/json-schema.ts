/**
 * One JSON Schema (draft 2020-12) for a Capstan document, for editors: point
 * yaml-language-server at the output of `capstan schema` and every document gets
 * completion and checking of its envelope and of the spec of its kind.
 *
 * Each kind's spec schema comes from its provider's zod schema (`z.toJSONSchema`,
 * input side: fields with defaults are optional). Definitions it generates are
 * hoisted into the root `$defs`, prefixed with the kind, and their `$ref`s rewritten.
 */
import { z } from 'zod';
import type { ProviderRegistry } from '../providers/registry.js';
import { describeSecretBranch } from '../secrets/sensitive.js';
import { ENVELOPE_KEYS, GROUP_PREFIX } from './envelope.js';
import { HOST_GROUP_KIND, hostGroupDescription, hostGroupSchema } from './host-group.js';
import { NAME_PATTERN } from './resource.js';

type JsonObject = Record<string, unknown>;

const NAME = NAME_PATTERN.source.slice(1, -1); // without ^ and $

/** What each top-level key of a document means (the JSON Schema and the reference say the same). */
export const ENVELOPE_DESCRIPTIONS = {
  kind: 'The resource kind.',
  name: 'Unique per kind in the stack.',
  target: `The target this resource lives on, by name; ${GROUP_PREFIX}NAME for every member of a group.`,
  dependsOn: 'Resources that must be applied first, as Kind/name.',
  notify: 'Resources to refresh (restart, re-run) after this one changes, as Kind/name; they run once, after it.',
  spec: "The kind's own fields.",
} as const satisfies Record<(typeof ENVELOPE_KEYS)[number], string>;

export function specJsonSchema(registry: ProviderRegistry): JsonObject {
  const defs: JsonObject = {};
  const kinds = registry.kinds();
  const perKind: JsonObject[] = [];

  for (const kind of kinds) {
    const provider = registry.get(kind)!;
    const defName = `${kind}Spec`;
    defs[defName] = { ...specSchemaOf(provider.schema, defName, defs), description: provider.description };
    const then: JsonObject = { properties: { spec: { $ref: `#/$defs/${defName}` } } };
    if (provider.role === 'resource') {
      if (!provider.targetOptional) then['required'] = ['target'];
    } else {
      // Targets have no target, no dependsOn and no notify.
      then['properties'] = { ...(then['properties'] as JsonObject), target: false, dependsOn: false, notify: false };
    }
    perKind.push({ if: { properties: { kind: { const: kind } }, required: ['kind'] }, then });
  }
  // HostGroup: inventory the spec layer reads itself; no target, no dependsOn, no notify.
  const groupDef = `${HOST_GROUP_KIND}Spec`;
  defs[groupDef] = { ...specSchemaOf(hostGroupSchema, groupDef, defs), description: hostGroupDescription };
  perKind.push({
    if: { properties: { kind: { const: HOST_GROUP_KIND } }, required: ['kind'] },
    then: { properties: { spec: { $ref: `#/$defs/${groupDef}` }, target: false, dependsOn: false, notify: false } },
  });

  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 'Capstan document',
    description: 'One resource or target of a Capstan stack.',
    type: 'object',
    required: ['kind', 'name'],
    additionalProperties: false,
    properties: {
      kind: {
        description: ENVELOPE_DESCRIPTIONS.kind,
        anyOf: [
          ...kinds.map((kind) => ({ const: kind, description: registry.get(kind)!.description })),
          { const: HOST_GROUP_KIND, description: hostGroupDescription },
        ],
      },
      name: { description: ENVELOPE_DESCRIPTIONS.name, type: 'string', pattern: NAME_PATTERN.source },
      target: {
        description: ENVELOPE_DESCRIPTIONS.target,
        type: 'string',
        pattern: `^(${GROUP_PREFIX})?${NAME}$`,
      },
      dependsOn: {
        description: ENVELOPE_DESCRIPTIONS.dependsOn,
        type: 'array',
        items: { type: 'string', pattern: `^[A-Z][A-Za-z0-9]*/${NAME}$` },
      },
      notify: {
        description: ENVELOPE_DESCRIPTIONS.notify,
        type: 'array',
        items: { type: 'string', pattern: `^[A-Z][A-Za-z0-9]*/${NAME}$` },
      },
      spec: { description: ENVELOPE_DESCRIPTIONS.spec, type: 'object' },
    } satisfies Record<(typeof ENVELOPE_KEYS)[number], unknown>,
    allOf: perKind,
    $defs: defs,
  };
}

/**
 * The JSON Schema of what users write for one kind's spec (secret fields accept
 * `{ secret: PATH }`), with each field's `.meta({ description, examples })`.
 */
export function kindSpecJsonSchema(schema: z.ZodType): JsonObject {
  return z.toJSONSchema(schema, { target: 'draft-2020-12', io: 'input', unrepresentable: 'any', override: describeInput }) as JsonObject;
}

function describeInput(ctx: { zodSchema: unknown; jsonSchema: Record<string, unknown> }): void {
  describeSecretBranch(ctx);
  // zod leaves out the examples of a field with a transform on the input side; ours are what users write.
  const examples = z.globalRegistry.get(ctx.zodSchema as z.ZodType)?.examples;
  if (Array.isArray(examples) && ctx.jsonSchema['examples'] === undefined) ctx.jsonSchema['examples'] = examples;
  // ...and the default of one whose value goes through a transform.
  const def = (ctx.zodSchema as { _zod?: { def?: { type?: string; defaultValue?: unknown } } })._zod?.def;
  if (def?.type === 'default' && ctx.jsonSchema['default'] === undefined) {
    const value = def.defaultValue;
    if (value === null || ['string', 'number', 'boolean'].includes(typeof value)) ctx.jsonSchema['default'] = value;
  }
}

function specSchemaOf(schema: z.ZodType, defName: string, defs: JsonObject): JsonObject {
  let generated: JsonObject;
  try {
    generated = kindSpecJsonSchema(schema);
  } catch (e) {
    // A schema zod cannot describe must not take the whole document schema down with it.
    return { type: 'object', $comment: `no JSON Schema for this spec: ${e instanceof Error ? e.message : String(e)}` };
  }
  const { $schema: _schema, $defs: nested, ...root } = generated;
  const rewrite = (ref: string): string => {
    if (ref === '#') return `#/$defs/${defName}`;
    const m = /^#\/\$defs\/([^/]+)(.*)$/.exec(ref);
    if (m) return `#/$defs/${defName}_${m[1]}${m[2]}`;
    if (ref.startsWith('#/')) return `#/$defs/${defName}${ref.slice(1)}`;
    return ref;
  };
  if (nested && typeof nested === 'object') {
    for (const [name, def] of Object.entries(nested as JsonObject)) defs[`${defName}_${name}`] = rewriteRefs(def, rewrite);
  }
  return rewriteRefs(root, rewrite) as JsonObject;
}

function rewriteRefs(value: unknown, rewrite: (ref: string) => string): unknown {
  if (Array.isArray(value)) return value.map((v) => rewriteRefs(v, rewrite));
  if (value === null || typeof value !== 'object') return value;
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(value as JsonObject)) out[k] = k === '$ref' && typeof v === 'string' ? rewrite(v) : rewriteRefs(v, rewrite);
  return out;
}
