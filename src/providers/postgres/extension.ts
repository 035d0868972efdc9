/**
 * PostgresExtension: an extension installed in one database (CREATE EXTENSION),
 * at a version and in a schema.
 *
 * read   the extensions of the batch with one query per database.
 * apply  CREATE EXTENSION / ALTER EXTENSION ... UPDATE TO / SET SCHEMA /
 *        DROP EXTENSION (RESTRICT: not while other objects depend on it).
 *
 * `version` and `schema` are managed only when set; without `version` an
 * extension is created at its default version and never updated.
 */
import { z } from 'zod';
import type { Diagnostic } from '../../diag/diagnostic.js';
import type { Resource } from '../../spec/resource.js';
import { ProviderError, type ApplyRequest, type FieldChange, type ResourceDiff, type ResourceProvider } from '../provider.js';
import { readPerDatabase } from './in-database.js';
import { identifierSchema } from './names.js';
import { databaseAddresses, duplicates, schemaAddresses } from './references.js';
import { ident, literal, PostgresError, type PostgresHandle } from './server.js';

export const postgresExtensionSchema = z.strictObject({
  name: identifierSchema('name').meta({ description: 'The extension, as CREATE EXTENSION names it.', examples: ['pg_trgm'] }),
  database: identifierSchema('database').meta({ description: 'The database it is installed in.', examples: ['app'] }),
  version: z
    .string({ error: 'version must be a string such as "1.6"' })
    .regex(/^[A-Za-z0-9_.-]+$/, { error: 'version must be a version such as "1.6" (letters, digits, ".", "_", "-")' })
    .optional()
    .meta({ description: "The version to install or update to (ALTER EXTENSION ... UPDATE); absent: the server's default version, and later versions are not managed.", examples: ['1.6'] }),
  schema: identifierSchema('schema').optional().meta({ description: "The schema its objects go in; absent: the extension's default.", examples: ['public'] }),
}).meta({ examples: [{ name: 'pg_trgm', database: 'app', version: '1.6', schema: 'public' }] });

export type PostgresExtensionSpec = z.infer<typeof postgresExtensionSchema>;

export interface PostgresExtensionLive {
  readonly name: string;
  readonly database: string;
  readonly version: string;
  readonly schema: string;
}

async function readExtensions(handle: PostgresHandle, specs: readonly PostgresExtensionSpec[]): Promise<(PostgresExtensionLive | null)[]> {
  return readPerDatabase(handle, specs, async (database, group) => {
    const rows = await handle.query<{ name: string; version: string; schema: string }>(
      `SELECT e.extname AS name, e.extversion AS version, n.nspname AS schema
         FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
        WHERE e.extname = ANY($1::text[])`,
      [[...new Set(group.map((s) => s.name))]],
      database,
    );
    const byName = new Map(rows.map((r) => [r.name, r]));
    return group.map((s) => {
      const row = byName.get(s.name);
      return row ? { name: row.name, database, version: row.version, schema: row.schema } : null;
    });
  });
}

export function diffExtension(desired: PostgresExtensionSpec, live: PostgresExtensionLive | null): ResourceDiff {
  if (live === null) {
    const fields: FieldChange[] = [];
    if (desired.version !== undefined) fields.push({ path: 'version', before: null, after: desired.version });
    if (desired.schema !== undefined) fields.push({ path: 'schema', before: null, after: desired.schema });
    return { action: 'create', fields };
  }
  const fields: FieldChange[] = [];
  if (desired.version !== undefined && desired.version !== live.version) fields.push({ path: 'version', before: live.version, after: desired.version });
  if (desired.schema !== undefined && desired.schema !== live.schema) fields.push({ path: 'schema', before: live.schema, after: desired.schema });
  return { action: fields.length > 0 ? 'update' : 'noop', fields };
}

async function applyExtension(handle: PostgresHandle, request: ApplyRequest<PostgresExtensionSpec, PostgresExtensionLive>): Promise<PostgresExtensionLive | null> {
  if (request.action === 'delete') {
    const spec = request.prior ?? (request.live && { name: request.live.name, database: request.live.database });
    if (!spec) throw new Error(`cannot delete ${request.address}: no last applied spec names its extension`);
    const [live] = await readExtensions(handle, [spec]);
    if (!live) return null;
    try {
      await handle.query(`DROP EXTENSION ${ident(spec.name)} RESTRICT`, [], spec.database);
    } catch (err) {
      if (err instanceof PostgresError && err.code === '2BP01') {
        throw new ProviderError(`refusing to drop extension ${spec.name} in database ${spec.database} (${request.address}): other objects depend on it`, { cause: err });
      }
      throw err;
    }
    return null;
  }
  const desired = request.desired;
  if (desired === null) throw new Error(`${request.action} of ${request.address} needs a desired spec`);
  const [current] = await readExtensions(handle, [desired]);
  const name = ident(desired.name);
  if (!current) {
    const options = [
      ...(desired.schema === undefined ? [] : [`SCHEMA ${ident(desired.schema)}`]),
      ...(desired.version === undefined ? [] : [`VERSION ${literal(desired.version)}`]),
    ];
    await handle.query(`CREATE EXTENSION ${name}${options.length > 0 ? ` WITH ${options.join(' ')}` : ''}`, [], desired.database);
  } else {
    await handle.transaction(desired.database, async (query) => {
      if (desired.version !== undefined && desired.version !== current.version) await query(`ALTER EXTENSION ${name} UPDATE TO ${literal(desired.version)}`);
      if (desired.schema !== undefined && desired.schema !== current.schema) await query(`ALTER EXTENSION ${name} SET SCHEMA ${ident(desired.schema)}`);
    });
  }
  const [after] = await readExtensions(handle, [desired]);
  return after ?? null;
}

function validateExtension(resource: Resource<PostgresExtensionSpec>, sameTarget: readonly Resource[]): Diagnostic[] {
  return duplicates(resource, sameTarget, (s) => `${s.database}/${s.name}`, `extension ${resource.spec.name} in database ${resource.spec.database}`, ['name']);
}

export const postgresExtensionProvider: ResourceProvider<PostgresExtensionSpec, PostgresExtensionLive, PostgresHandle> = {
  role: 'resource',
  kind: 'PostgresExtension',
  description: 'A PostgreSQL extension installed in a database, at a version and in a schema.',
  schema: postgresExtensionSchema,
  targetKind: 'PostgresServer',
  describe: (spec) => `extension ${spec.name} in ${spec.database}`,
  validate: validateExtension,
  implicitDependencies: (resource, sameTarget) => [
    ...databaseAddresses(sameTarget, resource.spec.database),
    ...schemaAddresses(sameTarget, resource.spec.database, resource.spec.schema),
  ],
  read: (handle, specs) => readExtensions(handle, specs),
  diff: (desired, live) => diffExtension(desired, live),
  apply: (handle, request) => applyExtension(handle, request),
};
