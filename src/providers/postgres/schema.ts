/**
 * PostgresSchema: a schema in one database of a PostgresServer, and its owner.
 *
 * read   the schemas of the batch with one query per database.
 * apply  CREATE SCHEMA [AUTHORIZATION] / ALTER SCHEMA ... OWNER TO / DROP SCHEMA
 *        (RESTRICT: a schema that still holds objects is not dropped).
 */
import { z } from 'zod';
import type { Diagnostic } from '../../diag/diagnostic.js';
import type { Resource } from '../../spec/resource.js';
import { ProviderError, type ApplyRequest, type ResourceDiff, type ResourceProvider } from '../provider.js';
import { readPerDatabase } from './in-database.js';
import { identifierSchema, roleNameSchema } from './names.js';
import { databaseAddresses, duplicates, roleAddresses } from './references.js';
import { ident, PostgresError, type PostgresHandle } from './server.js';

export const postgresSchemaSchema = z.strictObject({
  name: identifierSchema('name')
    .refine((s) => !s.toLowerCase().startsWith('pg_'), { error: 'name must not start with "pg_" (reserved for system schemas)' })
    .meta({ description: 'The schema name, kept exactly; not starting with pg_.', examples: ['billing'] }),
  database: identifierSchema('database').meta({ description: 'The database the schema is in.', examples: ['app'] }),
  /** Absent: the role Capstan connects as owns it, and a later owner change is not managed. */
  owner: roleNameSchema('owner').optional().meta({ description: 'The owning role. Absent: the role Capstan connects as owns it, and a later owner change is not managed.', examples: ['app'] }),
}).meta({ examples: [{ name: 'billing', database: 'app', owner: 'app' }] });

export type PostgresSchemaSpec = z.infer<typeof postgresSchemaSchema>;

export interface PostgresSchemaLive {
  readonly name: string;
  readonly database: string;
  readonly owner: string;
}

async function readSchemas(handle: PostgresHandle, specs: readonly PostgresSchemaSpec[]): Promise<(PostgresSchemaLive | null)[]> {
  return readPerDatabase(handle, specs, async (database, group) => {
    const rows = await handle.query<{ name: string; owner: string }>(
      'SELECT n.nspname AS name, pg_get_userbyid(n.nspowner) AS owner FROM pg_namespace n WHERE n.nspname = ANY($1::text[])',
      [[...new Set(group.map((s) => s.name))]],
      database,
    );
    const byName = new Map(rows.map((r) => [r.name, r]));
    return group.map((s) => {
      const row = byName.get(s.name);
      return row ? { name: row.name, database, owner: row.owner } : null;
    });
  });
}

export function diffSchema(desired: PostgresSchemaSpec, live: PostgresSchemaLive | null): ResourceDiff {
  if (live === null) return { action: 'create', fields: desired.owner === undefined ? [] : [{ path: 'owner', before: null, after: desired.owner }] };
  if (desired.owner !== undefined && desired.owner !== live.owner) return { action: 'update', fields: [{ path: 'owner', before: live.owner, after: desired.owner }] };
  return { action: 'noop', fields: [] };
}

async function applySchema(handle: PostgresHandle, request: ApplyRequest<PostgresSchemaSpec, PostgresSchemaLive>): Promise<PostgresSchemaLive | null> {
  if (request.action === 'delete') {
    const spec = request.prior ?? (request.live && { name: request.live.name, database: request.live.database });
    if (!spec) throw new Error(`cannot delete ${request.address}: no last applied spec names its schema`);
    const [live] = await readSchemas(handle, [spec]);
    if (!live) return null;
    try {
      await handle.query(`DROP SCHEMA ${ident(spec.name)} RESTRICT`, [], spec.database);
    } catch (err) {
      if (err instanceof PostgresError && err.code === '2BP01') {
        throw new ProviderError(`refusing to drop schema ${spec.name} in database ${spec.database} (${request.address}): it still holds objects; drop or move them first`, { cause: err });
      }
      throw err;
    }
    return null;
  }
  const desired = request.desired;
  if (desired === null) throw new Error(`${request.action} of ${request.address} needs a desired spec`);
  const [current] = await readSchemas(handle, [desired]);
  const name = ident(desired.name);
  if (!current) {
    await handle.query(`CREATE SCHEMA ${name}${desired.owner === undefined ? '' : ` AUTHORIZATION ${ident(desired.owner)}`}`, [], desired.database);
  } else if (desired.owner !== undefined && desired.owner !== current.owner) {
    await handle.query(`ALTER SCHEMA ${name} OWNER TO ${ident(desired.owner)}`, [], desired.database);
  }
  const [after] = await readSchemas(handle, [desired]);
  return after ?? null;
}

function validateSchema(resource: Resource<PostgresSchemaSpec>, sameTarget: readonly Resource[]): Diagnostic[] {
  return duplicates(resource, sameTarget, (s) => `${s.database}/${s.name}`, `schema ${resource.spec.name} in database ${resource.spec.database}`, ['name']);
}

export const postgresSchemaProvider: ResourceProvider<PostgresSchemaSpec, PostgresSchemaLive, PostgresHandle> = {
  role: 'resource',
  kind: 'PostgresSchema',
  description: 'A schema in a PostgreSQL database, and its owner.',
  schema: postgresSchemaSchema,
  targetKind: 'PostgresServer',
  describe: (spec) => `schema ${spec.database}.${spec.name}`,
  validate: validateSchema,
  implicitDependencies: (resource, sameTarget) => [
    ...databaseAddresses(sameTarget, resource.spec.database),
    ...roleAddresses(sameTarget, [resource.spec.owner]),
  ],
  read: (handle, specs) => readSchemas(handle, specs),
  diff: (desired, live) => diffSchema(desired, live),
  apply: (handle, request) => applySchema(handle, request),
};
