/**
 * How Postgres resources find each other on one PostgresServer: a schema in a
 * database, a grant to a role, an owner. Used for implicit dependencies (a
 * schema waits for its database and its owner role; deletes run the other way)
 * and for validation of duplicates.
 */
import { error, type Diagnostic } from '../../diag/diagnostic.js';
import type { Address, Resource } from '../../spec/resource.js';

/** The addresses of the resources of `kind` on the same target whose spec matches. */
export function addressesOf(sameTarget: readonly Resource[], kind: string, matches: (spec: Record<string, unknown>) => boolean): Address[] {
  return sameTarget
    .filter((r) => r.kind === kind && typeof r.spec === 'object' && r.spec !== null && matches(r.spec as Record<string, unknown>))
    .map((r) => r.address);
}

/** PostgresRole resources named in `names`. */
export function roleAddresses(sameTarget: readonly Resource[], names: readonly (string | undefined)[]): Address[] {
  const wanted = new Set(names.filter((n): n is string => n !== undefined));
  return wanted.size === 0 ? [] : addressesOf(sameTarget, 'PostgresRole', (s) => wanted.has(s.name as string));
}

/** The PostgresDatabase resource named `name`. */
export function databaseAddresses(sameTarget: readonly Resource[], name: string | undefined): Address[] {
  return name === undefined ? [] : addressesOf(sameTarget, 'PostgresDatabase', (s) => s.name === name);
}

/** The PostgresSchema resource for `schema` in `database`. */
export function schemaAddresses(sameTarget: readonly Resource[], database: string, schema: string | undefined): Address[] {
  return schema === undefined ? [] : addressesOf(sameTarget, 'PostgresSchema', (s) => s.name === schema && s.database === database);
}

/** One error per other resource of the same kind on the target that manages the same object. */
export function duplicates<Spec>(
  resource: Resource<Spec>,
  sameTarget: readonly Resource[],
  identity: (spec: Spec) => string,
  describe: string,
  field: readonly (string | number)[],
): Diagnostic[] {
  const key = identity(resource.spec);
  const others = sameTarget.filter((r) => r.kind === resource.kind && r.address !== resource.address && identity(r.spec as Spec) === key);
  if (others.length === 0) return [];
  return [
    error(`${describe} is also managed by ${others.map((r) => r.address).join(', ')}`, {
      address: resource.address,
      source: resource.positionOf(['spec', ...field]),
    }),
  ];
}
