/**
 * What the reference says about each kind: its summary, role, schema, fields and
 * example, read from the provider registry (and the spec layer's HostGroup).
 * Loads the providers of the kinds asked for only.
 */
import type { z } from 'zod';
import type { ProviderRegistry } from '../providers/registry.js';
import { kindSpecJsonSchema } from '../spec/json-schema.js';
import { HOST_GROUP_KIND, hostGroupDescription, hostGroupSchema } from '../spec/host-group.js';
import { flattenFields, type FieldDoc } from './fields.js';

export interface KindDoc {
  readonly kind: string;
  readonly description: string;
  /** A target other resources live on, a resource on a target, or inventory the spec layer reads (HostGroup). */
  readonly role: 'target' | 'resource' | 'inventory';
  /** For a resource: the kind of its target. */
  readonly targetKind?: string;
  /** For a resource: it may be written without a target (a declaration). */
  readonly targetOptional?: boolean;
  readonly schema: z.ZodType;
  readonly fields: readonly FieldDoc[];
  /** The first example spec of the kind (`.meta({ examples })` on its spec schema). */
  readonly example?: unknown;
}

/** Every kind a stack may use, sorted: the registry's and HostGroup. */
export function documentedKindNames(registry: ProviderRegistry): string[] {
  return [...registry.kinds(), HOST_GROUP_KIND].sort();
}

/** The kind named, case-insensitively (`file` is `File`), or undefined. */
export function findKindName(registry: ProviderRegistry, name: string): string | undefined {
  return documentedKindNames(registry).find((k) => k.toLowerCase() === name.toLowerCase());
}

/** The docs of these kinds (every kind when omitted), loading only their providers. */
export async function documentKinds(registry: ProviderRegistry, kinds: readonly string[] = documentedKindNames(registry)): Promise<KindDoc[]> {
  await registry.load(kinds);
  return kinds.map((kind) => {
    if (kind === HOST_GROUP_KIND) return kindDoc({ kind, description: hostGroupDescription, role: 'inventory', schema: hostGroupSchema });
    const provider = registry.get(kind);
    if (!provider) throw new Error(`no kind ${kind}`);
    return kindDoc(
      provider.role === 'resource'
        ? { kind, description: provider.description, role: 'resource', targetKind: provider.targetKind, targetOptional: provider.targetOptional === true, schema: provider.schema }
        : { kind, description: provider.description, role: 'target', schema: provider.schema },
    );
  });
}

function kindDoc(base: Omit<KindDoc, 'fields' | 'example'>): KindDoc {
  const examples = (base.schema.meta() as { examples?: unknown } | undefined)?.examples;
  const example = Array.isArray(examples) ? examples[0] : undefined;
  return { ...base, fields: flattenFields(kindSpecJsonSchema(base.schema)), ...(example !== undefined ? { example } : {}) };
}
