/**
 * The resource name inside the spec.
 *
 * What these kinds generate depends on the resource's name (the `slo` label, the
 * rule file `capstan-slo-<name>.yml`, the dashboard folder), but the provider
 * contract hands `read` and `diff` the spec alone. So `resolve` records the name
 * in `spec.name`, where the spec hash covers it and the inventory keeps it for
 * deletes. When the loader passes the document's name to `resolve`, that is used;
 * otherwise the document is found again in its own file by kind and spec.
 * `validate` checks that `spec.name` equals the resource name.
 */
import { basename } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { z } from 'zod';
import { error, type Diagnostic } from '../../diag/diagnostic.js';
import { canonicalJson } from '../../plan/canonical.js';
import type { ResolveContext } from '../provider.js';
import type { Resource } from '../../spec/resource.js';

function withoutName(spec: unknown): unknown {
  if (typeof spec !== 'object' || spec === null) return spec;
  const { name: _name, ...rest } = spec as Record<string, unknown>;
  return rest;
}

export async function resolveName<S extends { name?: string | undefined }>(
  kind: string,
  schema: z.ZodType<S>,
  spec: S,
  from: { file: string; name?: unknown },
  ctx: ResolveContext,
): Promise<string> {
  if (typeof from.name === 'string') return from.name;
  if (spec.name !== undefined) return spec.name;
  const text = (await ctx.readFile(basename(from.file), from.file)).toString('utf8');
  const wanted = canonicalJson(withoutName(spec));
  const names: string[] = [];
  for (const doc of parseAllDocuments(text)) {
    const value: unknown = doc.toJS();
    if (typeof value !== 'object' || value === null) continue;
    const v = value as Record<string, unknown>;
    if (v['kind'] !== kind || typeof v['name'] !== 'string') continue;
    const parsed = schema.safeParse(v['spec']);
    if (parsed.success && canonicalJson(withoutName(parsed.data)) === wanted) names.push(v['name']);
  }
  const unique = [...new Set(names)];
  if (unique.length === 1) return unique[0]!;
  throw new Error(
    unique.length === 0
      ? `cannot find this ${kind} document in ${from.file} again to learn its name`
      : `${kind} documents ${unique.join(', ')} in ${from.file} have identical specs: give each its own spec.name`,
  );
}

export function validateName(resource: Resource<{ name?: string | undefined }>): Diagnostic[] {
  const name = resource.spec.name;
  if (name === undefined || name === resource.name) return [];
  let source = resource.source;
  try {
    source = resource.positionOf(['spec', 'name']);
  } catch {
    // keep the document's position
  }
  return [error(`spec.name ${name} differs from the resource name ${resource.name}`, { address: resource.address, source })];
}
