/**
 * Template variables per target, in the order of precedence (later wins):
 *
 *   1. each group's `vars` (HostGroup documents), in the order the target lists its groups
 *   2. the target's own `vars`
 *   3. a resource's own `vars` (File templates; applied by the provider)
 *
 * and the target's builtins (`host.name`, `host.address`, `host.groups` for a
 * Host), whose names are reserved: no `vars:` may define them. The merge is
 * shallow: a later `vars:` replaces a top-level key whole (a map or a list is
 * not merged with the earlier one).
 */
import { z } from 'zod';
import type { ProviderRegistry } from '../providers/registry.js';
import type { Address, Resource } from './resource.js';

/** A top-level variable name: what a template can write as `{{ name }}`. */
export const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Names the targets define themselves (the Host's builtins). */
export const RESERVED_VARIABLES: readonly string[] = ['host'];

export type Variables = Readonly<Record<string, unknown>>;

/** `vars:` of a Host, a HostGroup or a resource: a map whose keys are variable names, not reserved ones. */
export const variablesSchema = z.record(z.string(), z.unknown(), { error: 'vars must be a map of names to values' }).superRefine((vars, ctx) => {
  for (const key of Object.keys(vars)) {
    if (RESERVED_VARIABLES.includes(key)) {
      ctx.addIssue({
        code: 'custom',
        path: [key],
        message: `vars.${key} is reserved: ${key}.name, ${key}.address and ${key}.groups are set by Capstan`,
      });
    } else if (!VARIABLE_NAME.test(key)) {
      ctx.addIssue({
        code: 'custom',
        path: [key],
        message: `variable name ${JSON.stringify(key)} is not valid: letters, digits and "_", not starting with a digit`,
      });
    }
  }
});

/** Shallow merge: each later map replaces the earlier value of a key whole. */
export function mergeVariables(...layers: readonly (Variables | undefined)[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const layer of layers) {
    if (!layer) continue;
    for (const [key, value] of Object.entries(layer)) out[key] = value;
  }
  return out;
}

/**
 * The variables of every target: its groups' vars in the order it lists its
 * groups, then its own, then its builtins. `groupVars` holds the vars of every
 * group that has a HostGroup document; other groups add nothing.
 */
export function targetVariables(
  targets: readonly Resource[],
  registry: ProviderRegistry,
  groupVars: Readonly<Record<string, Variables>>,
): Record<Address, Variables> {
  const out: Record<Address, Variables> = {};
  for (const target of targets) {
    const provider = registry.target(target.kind);
    if (!provider) continue;
    const groups = provider.groupsOf(target.spec);
    const own = provider.variables?.(target);
    const fromGroups = groups.map((g) => (Object.hasOwn(groupVars, g) ? groupVars[g] : undefined));
    out[target.address] = Object.freeze(mergeVariables(...fromGroups, own?.vars, own?.builtins));
  }
  return out;
}
