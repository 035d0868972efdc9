/**
 * PostgresGrant: the exact privileges one role holds on a database, a schema,
 * every table / sequence / function in a schema, or — with `defaultsFor` — on
 * the tables / sequences / functions a role will create in a schema (ALTER
 * DEFAULT PRIVILEGES FOR ROLE ... IN SCHEMA ...).
 *
 * read   one query per database for every grant of the batch in it: the ACLs
 *        (pg_database, pg_namespace, pg_class, pg_proc, pg_default_acl)
 *        exploded with aclexplode and counted per privilege, so a privilege
 *        held on only some tables of a schema shows as `partial`.
 * apply  REVOKE ALL then GRANT the listed privileges, in one transaction; a
 *        delete revokes them all.
 *
 * Privileges are exact: one held beyond the list (granted by hand) is revoked.
 * Grants are made without GRANT OPTION; the grantee cannot be PUBLIC.
 */
import { z } from 'zod';
import type { Diagnostic } from '../../diag/diagnostic.js';
import type { Resource } from '../../spec/resource.js';
import type { ApplyRequest, FieldChange, ResourceDiff, ResourceProvider } from '../provider.js';
import { readPerDatabase } from './in-database.js';
import { identifierSchema, roleNameSchema } from './names.js';
import { databaseAddresses, duplicates, roleAddresses, schemaAddresses } from './references.js';
import { ident, type PostgresHandle, type Query } from './server.js';

export const GRANT_OBJECTS = ['database', 'schema', 'tables', 'sequences', 'functions'] as const;
export type GrantObject = (typeof GRANT_OBJECTS)[number];

/** The privileges PostgreSQL knows on each kind of object, in its own order. */
export const PRIVILEGES: Record<GrantObject, readonly string[]> = {
  database: ['CREATE', 'CONNECT', 'TEMPORARY'],
  schema: ['USAGE', 'CREATE'],
  tables: ['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER'],
  sequences: ['USAGE', 'SELECT', 'UPDATE'],
  functions: ['EXECUTE'],
};
const ALIASES: Record<string, string> = { TEMP: 'TEMPORARY' };
const MULTI_OBJECT: ReadonlySet<GrantObject> = new Set(['tables', 'sequences', 'functions']);

const normalise = (p: string): string => {
  const upper = p.trim().toUpperCase().replace(/\s+/g, ' ');
  return ALIASES[upper] ?? upper;
};

export const postgresGrantSchema = z
  .strictObject({
    /** The grantee. */
    role: roleNameSchema('role').meta({ description: 'The grantee.', examples: ['app'] }),
    database: identifierSchema('database').meta({ description: 'The database granted on, or holding the schema.', examples: ['app'] }),
    on: z
      .enum(GRANT_OBJECTS, { error: `on must be one of ${GRANT_OBJECTS.join(', ')}` })
      .meta({ description: 'What the privileges are on: the database, a schema, or all tables, sequences or functions in a schema.', examples: ['tables'] }),
    /** The schema (for on: schema, tables, sequences, functions). */
    schema: identifierSchema('schema').optional().meta({ description: 'The schema, for on: schema, tables, sequences or functions.', examples: ['public'] }),
    /** Privileges, or ALL; upper or lower case. */
    privileges: z
      .array(z.string({ error: 'each privilege must be a string' }), { error: 'privileges must be a list such as [SELECT, INSERT]' })
      .meta({ description: 'The exact privileges (or ALL), upper or lower case: others the role holds there are revoked.', examples: [['SELECT', 'INSERT', 'UPDATE']] }),
    /** Default privileges for the objects this role creates in `schema` from now on, instead of the existing ones. */
    defaultsFor: roleNameSchema('defaultsFor')
      .optional()
      .meta({ description: 'Instead of the existing objects: default privileges for the objects this role creates in schema from now on (tables, sequences, functions).', examples: ['migrator'] }),
  })
  .superRefine((spec, ctx) => {
    const objectKind = spec.on;
    if (objectKind === 'database' && spec.schema !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['schema'], message: 'schema is only for on: schema, tables, sequences or functions (not on: database)' });
    }
    if (objectKind !== 'database' && spec.schema === undefined) {
      ctx.addIssue({ code: 'custom', path: ['on'], message: `on: ${objectKind} needs schema: the schema it applies to` });
    }
    if (spec.defaultsFor !== undefined && !MULTI_OBJECT.has(objectKind)) {
      ctx.addIssue({ code: 'custom', path: ['defaultsFor'], message: 'defaultsFor (default privileges) is only for on: tables, sequences or functions' });
    }
    if (spec.privileges.length === 0) ctx.addIssue({ code: 'custom', path: ['privileges'], message: 'privileges must name at least one privilege (or ALL)' });
    const allowed = PRIVILEGES[objectKind];
    spec.privileges.forEach((p, i) => {
      const n = normalise(p);
      if (n !== 'ALL' && n !== 'ALL PRIVILEGES' && !allowed.includes(n)) {
        ctx.addIssue({ code: 'custom', path: ['privileges', i], message: `${JSON.stringify(p)} is not a privilege on ${objectKind}: use ${allowed.join(', ')} or ALL` });
      }
    });
  })
  .transform((spec) => {
    const allowed = PRIVILEGES[spec.on];
    const wanted = new Set(spec.privileges.map(normalise).flatMap((p) => (p === 'ALL' || p === 'ALL PRIVILEGES' ? allowed : [p])));
    return { ...spec, privileges: allowed.filter((p) => wanted.has(p)) };
  })
  .meta({ examples: [{ role: 'app', database: 'app', on: 'tables', schema: 'public', privileges: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'] }] });

export type PostgresGrantSpec = z.infer<typeof postgresGrantSchema>;

export interface PostgresGrantLive {
  readonly role: string;
  readonly database: string;
  readonly on: GrantObject;
  readonly schema: string | null;
  readonly defaultsFor: string | null;
  /** Objects the grant covers: 1 for a database or schema, the count in the schema for tables, sequences and functions. */
  readonly objects: number;
  /** Privileges the role holds on every object. */
  readonly privileges: readonly string[];
  /** Privileges it holds on some objects but not all. */
  readonly partial: readonly string[];
}

interface GrantRow {
  i: number;
  role_exists: boolean;
  schema_exists: boolean;
  owner_exists: boolean;
  objects: number;
  held: Record<string, number> | null;
}

// One row per (subject, object, ACL). Privilege types come from the fixed table above, never from a spec.
const GRANT_QUERY = `
WITH s AS (
  SELECT * FROM jsonb_to_recordset($1::jsonb) AS s(i int, role text, kind text, schema text, owner text)
), objs AS (
  SELECT s.i, d.oid AS obj, COALESCE(d.datacl, acldefault('d', d.datdba)) AS acl
    FROM s JOIN pg_database d ON d.datname = current_database() WHERE s.kind = 'database'
  UNION ALL
  SELECT s.i, n.oid, COALESCE(n.nspacl, acldefault('n', n.nspowner))
    FROM s JOIN pg_namespace n ON n.nspname = s.schema WHERE s.kind = 'schema'
  UNION ALL
  SELECT s.i, c.oid, COALESCE(c.relacl, acldefault(CASE WHEN s.kind = 'tables' THEN 'r' ELSE 's' END::"char", c.relowner))
    FROM s JOIN pg_namespace n ON n.nspname = s.schema
    JOIN pg_class c ON c.relnamespace = n.oid
     AND ((s.kind = 'tables' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')) OR (s.kind = 'sequences' AND c.relkind = 'S'))
   WHERE s.kind IN ('tables', 'sequences') AND s.owner IS NULL
  UNION ALL
  SELECT s.i, p.oid, COALESCE(p.proacl, acldefault('f', p.proowner))
    FROM s JOIN pg_namespace n ON n.nspname = s.schema JOIN pg_proc p ON p.pronamespace = n.oid AND p.prokind <> 'p'
   WHERE s.kind = 'functions' AND s.owner IS NULL
  UNION ALL
  SELECT s.i, a.oid, a.defaclacl
    FROM s JOIN pg_namespace n ON n.nspname = s.schema
    JOIN pg_roles o ON o.rolname = s.owner
    JOIN pg_default_acl a ON a.defaclnamespace = n.oid AND a.defaclrole = o.oid
     AND a.defaclobjtype = CASE s.kind WHEN 'tables' THEN 'r' WHEN 'sequences' THEN 'S' ELSE 'f' END::"char"
   WHERE s.owner IS NOT NULL
), held AS (
  SELECT o.i, x.privilege_type, count(DISTINCT o.obj)::int AS n
    FROM objs o JOIN s ON s.i = o.i JOIN pg_roles g ON g.rolname = s.role
    CROSS JOIN LATERAL aclexplode(o.acl) x
   WHERE x.grantee = g.oid
   GROUP BY o.i, x.privilege_type
)
SELECT s.i,
       EXISTS (SELECT 1 FROM pg_roles WHERE rolname = s.role) AS role_exists,
       s.schema IS NULL OR EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = s.schema) AS schema_exists,
       s.owner IS NULL OR EXISTS (SELECT 1 FROM pg_roles WHERE rolname = s.owner) AS owner_exists,
       (SELECT count(DISTINCT obj)::int FROM objs WHERE objs.i = s.i) AS objects,
       (SELECT jsonb_object_agg(privilege_type, n) FROM held WHERE held.i = s.i) AS held
  FROM s`;

function toLive(spec: PostgresGrantSpec, row: GrantRow): PostgresGrantLive | null {
  if (!row.role_exists || !row.schema_exists || !row.owner_exists) return null;
  const held = row.held ?? {};
  const order = PRIVILEGES[spec.on];
  const defaults = spec.defaultsFor !== undefined;
  const objects = defaults || !MULTI_OBJECT.has(spec.on) ? 1 : row.objects;
  const onEvery = order.filter((p) => (held[p] ?? 0) >= objects && objects > 0);
  const onSome = order.filter((p) => (held[p] ?? 0) > 0 && (held[p] ?? 0) < objects);
  // Nothing held: the grant does not exist. A schema without tables holds nothing to grant, and reads as present.
  if (onEvery.length === 0 && onSome.length === 0 && !(MULTI_OBJECT.has(spec.on) && !defaults && objects === 0)) return null;
  return {
    role: spec.role,
    database: spec.database,
    on: spec.on,
    schema: spec.schema ?? null,
    defaultsFor: spec.defaultsFor ?? null,
    objects,
    privileges: onEvery,
    partial: onSome,
  };
}

async function readGrantsIn(query: Query, specs: readonly PostgresGrantSpec[]): Promise<(PostgresGrantLive | null)[]> {
  const subjects = specs.map((s, i) => ({ i, role: s.role, kind: s.on, schema: s.schema ?? null, owner: s.defaultsFor ?? null }));
  const rows = await query<GrantRow>(GRANT_QUERY, [JSON.stringify(subjects)]);
  const byIndex = new Map(rows.map((r) => [r.i, r]));
  return specs.map((s, i) => {
    const row = byIndex.get(i);
    return row ? toLive(s, row) : null;
  });
}

async function readGrants(handle: PostgresHandle, specs: readonly PostgresGrantSpec[]): Promise<(PostgresGrantLive | null)[]> {
  return readPerDatabase(handle, specs, (database, group) => readGrantsIn((sql, values) => handle.query(sql, values, database), group));
}

export function diffGrant(desired: PostgresGrantSpec, live: PostgresGrantLive | null): ResourceDiff {
  if (live === null) return { action: 'create', fields: [{ path: 'privileges', before: null, after: desired.privileges }] };
  if (MULTI_OBJECT.has(desired.on) && desired.defaultsFor === undefined && live.objects === 0) return { action: 'noop', fields: [] };
  const fields: FieldChange[] = [];
  if (live.privileges.join(',') !== desired.privileges.join(',')) fields.push({ path: 'privileges', before: live.privileges, after: desired.privileges });
  if (live.partial.length > 0) fields.push({ path: 'partial', before: live.partial, after: [] });
  return fields.length > 0
    ? { action: 'update', fields, ...(live.partial.length > 0 ? { reason: `${live.partial.join(', ')} held on only some of the ${live.objects} ${desired.on}` } : {}) }
    : { action: 'noop', fields: [] };
}

/** GRANT and REVOKE statements for one grant, as a prefix and suffix around the privilege list. */
function statements(spec: Pick<PostgresGrantSpec, 'role' | 'database' | 'on' | 'schema' | 'defaultsFor'>, privileges: readonly string[]): string[] {
  const role = ident(spec.role);
  const schema = spec.schema === undefined ? '' : ident(spec.schema);
  const target =
    spec.on === 'database' ? `DATABASE ${ident(spec.database)}` : spec.on === 'schema' ? `SCHEMA ${schema}` : `ALL ${spec.on.toUpperCase()} IN SCHEMA ${schema}`;
  if (spec.defaultsFor !== undefined) {
    const prefix = `ALTER DEFAULT PRIVILEGES FOR ROLE ${ident(spec.defaultsFor)} IN SCHEMA ${schema}`;
    const objects = spec.on.toUpperCase();
    return [
      `${prefix} REVOKE ALL ON ${objects} FROM ${role}`,
      ...(privileges.length > 0 ? [`${prefix} GRANT ${privileges.join(', ')} ON ${objects} TO ${role}`] : []),
    ];
  }
  return [`REVOKE ALL ON ${target} FROM ${role}`, ...(privileges.length > 0 ? [`GRANT ${privileges.join(', ')} ON ${target} TO ${role}`] : [])];
}

async function applyGrant(handle: PostgresHandle, request: ApplyRequest<PostgresGrantSpec, PostgresGrantLive>): Promise<PostgresGrantLive | null> {
  const spec = request.desired ?? request.prior;
  if (spec === null) throw new Error(`cannot ${request.action} ${request.address}: no spec names its grant`);
  const change = (privileges: readonly string[]) =>
    handle.exclusive(`acl:${spec.database}`, () =>
      handle.transaction(spec.database, async (query) => {
        for (const sql of statements(spec, privileges)) await query(sql);
      }),
    );
  if (request.action === 'delete') {
    const [current] = await readGrants(handle, [spec]);
    if (current === null) return null;
    await change([]);
    return null;
  }
  await change(spec.privileges);
  const [after] = await readGrants(handle, [spec]);
  return after ?? null;
}

function validateGrant(resource: Resource<PostgresGrantSpec>, sameTarget: readonly Resource[]): Diagnostic[] {
  const s = resource.spec;
  const on = s.defaultsFor === undefined ? s.on : `${s.on} created by ${s.defaultsFor}`;
  return duplicates(
    resource,
    sameTarget,
    (g) => JSON.stringify([g.role, g.database, g.on, g.schema ?? null, g.defaultsFor ?? null]),
    `the privileges of ${s.role} on ${on}${s.schema === undefined ? '' : ` in schema ${s.schema}`} of database ${s.database}`,
    ['role'],
  );
}

export const postgresGrantProvider: ResourceProvider<PostgresGrantSpec, PostgresGrantLive, PostgresHandle> = {
  role: 'resource',
  kind: 'PostgresGrant',
  description: 'The exact privileges of a role on a database, a schema, all tables/sequences/functions in a schema, or their default privileges.',
  schema: postgresGrantSchema,
  targetKind: 'PostgresServer',
  describe: (s) => `${s.privileges.join(', ')} on ${s.on === 'database' ? `database ${s.database}` : `${s.on} ${s.database}.${s.schema ?? ''}`}${s.defaultsFor ? ` (defaults for ${s.defaultsFor})` : ''} to ${s.role}`,
  validate: validateGrant,
  implicitDependencies: (resource, sameTarget) => [
    ...roleAddresses(sameTarget, [resource.spec.role, resource.spec.defaultsFor]),
    ...databaseAddresses(sameTarget, resource.spec.database),
    ...schemaAddresses(sameTarget, resource.spec.database, resource.spec.schema),
  ],
  read: (handle, specs) => readGrants(handle, specs),
  diff: (desired, live) => diffGrant(desired, live),
  apply: (handle, request) => applyGrant(handle, request),
};
