/**
 * PostgresRole: a role on a PostgresServer — LOGIN, the attributes SUPERUSER,
 * CREATEDB, CREATEROLE, REPLICATION and BYPASSRLS, membership in other roles
 * (`inRoles`, the exact list), CONNECTION LIMIT, VALID UNTIL, and a password.
 *
 * read   every role of the batch in one query on pg_authid (pg_roles when the
 *        connecting role may not read pg_authid: then passwords cannot be
 *        compared and are set only when the role is created).
 * apply  CREATE ROLE / ALTER ROLE and GRANT/REVOKE of memberships in one
 *        transaction; DROP ROLE only with `deletionProtection: false`, and never
 *        while the role owns objects or holds privileges.
 *
 * The password is never read back, logged or compared in clear: Capstan sends a
 * SCRAM-SHA-256 verifier it computed, and compares the desired password with
 * the live verifier's salt and iterations (./scram.ts). Live state says only how
 * the password is stored and whether it matches.
 */
import { z } from 'zod';
import { error, type Diagnostic } from '../../diag/diagnostic.js';
import type { Address, Resource } from '../../spec/resource.js';
import { isSensitiveDigest, revealString, secretString, SENSITIVE_TEXT, type Sensitive } from '../../secrets/sensitive.js';
import { ProviderError, type ApplyRequest, type FieldChange, type ResourceDiff, type ResourceProvider } from '../provider.js';
import { deletionProtectionSchema, roleNameSchema } from './names.js';
import { duplicates, roleAddresses } from './references.js';
import { passwordMethod, scramMatches, scramVerifier } from './scram.js';
import { ident, literal, PostgresError, type PostgresHandle, type Query } from './server.js';

const flag = (name: string, description: string) =>
  z
    .boolean({ error: `${name} must be true or false` })
    .default(false)
    .meta({ description, examples: [true] });

/** An ISO 8601 time, kept as `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds) so a read compares equal. */
const validUntilSchema = z
  .string({ error: 'validUntil must be a time such as 2027-01-31T00:00:00Z' })
  .refine((s) => /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(s) && !Number.isNaN(Date.parse(s)), {
    error: 'validUntil must be an ISO 8601 time such as 2027-01-31T00:00:00Z',
  })
  .transform((s) => canonicalTime(s));

export function canonicalTime(s: string): string {
  return new Date(Date.parse(/[zZ]|[+-]\d{2}:?\d{2}$/.test(s) || !s.includes('T') ? s : `${s}Z`)).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export const postgresRoleSchema = z.strictObject({
  name: roleNameSchema('name').meta({ description: 'The role name, kept exactly (sent quoted); not reserved, not starting with pg_.', examples: ['app'] }),
  login: flag('login', 'The role may log in (a user rather than a group).'),
  /** A literal or `{ secret: PATH }`. Absent: the password is not managed. */
  password: secretString('password must be a string or { secret: PATH }')
    .optional()
    .meta({ description: 'Stored as a SCRAM-SHA-256 verifier; usually `{ secret: PATH }` (an inline one is sealed like a secret). Absent: the password is not managed.', examples: [{ secret: 'secrets/app-db.age' }] }),
  superuser: flag('superuser', 'SUPERUSER: bypasses every permission check.'),
  createdb: flag('createdb', 'CREATEDB: may create databases.'),
  createrole: flag('createrole', 'CREATEROLE: may create and change roles.'),
  replication: flag('replication', 'REPLICATION: may connect for streaming replication.'),
  bypassrls: flag('bypassrls', 'BYPASSRLS: ignores row-level security policies.'),
  /** The exact roles this role is a member of. */
  inRoles: z
    .array(roleNameSchema('each of inRoles'), { error: 'inRoles must be a list of role names' })
    .transform((roles) => [...new Set(roles)].sort())
    .default([])
    .meta({ description: 'The exact roles this role is a member of: memberships not listed are revoked.', examples: [['readers', 'writers']] }),
  /** -1: no limit. */
  connectionLimit: z
    .number({ error: 'connectionLimit must be a number' })
    .int({ error: 'connectionLimit must be a whole number' })
    .min(-1, { error: 'connectionLimit must be -1 (no limit) or more' })
    .default(-1)
    .meta({ description: 'Concurrent connections the role may open; -1: no limit.', examples: [20] }),
  /** When the password stops working; absent: never. */
  validUntil: validUntilSchema.optional().meta({ description: 'When the password stops working (ISO 8601); absent: never.', examples: ['2027-01-31T00:00:00Z'] }),
  deletionProtection: deletionProtectionSchema,
}).meta({ examples: [{ name: 'app', login: true, password: { secret: 'secrets/app-db.age' }, inRoles: ['readers'], connectionLimit: 20 }] });

export type PostgresRoleSpec = z.infer<typeof postgresRoleSchema>;

const ATTRIBUTES = ['login', 'superuser', 'createdb', 'createrole', 'replication', 'bypassrls'] as const;
type Attribute = (typeof ATTRIBUTES)[number];
const KEYWORD: Record<Attribute, string> = {
  login: 'LOGIN',
  superuser: 'SUPERUSER',
  createdb: 'CREATEDB',
  createrole: 'CREATEROLE',
  replication: 'REPLICATION',
  bypassrls: 'BYPASSRLS',
};

export interface RolePasswordLive {
  /** How pg_authid holds it; `unknown` when the connecting role may not read pg_authid. */
  readonly method: 'none' | 'scram-sha-256' | 'md5' | 'other' | 'unknown';
  /** Whether it is the spec's password; null when the spec does not manage the password or it cannot be compared. */
  readonly matches: boolean | null;
}

export interface PostgresRoleLive {
  readonly name: string;
  readonly login: boolean;
  readonly superuser: boolean;
  readonly createdb: boolean;
  readonly createrole: boolean;
  readonly replication: boolean;
  readonly bypassrls: boolean;
  readonly inRoles: readonly string[];
  readonly connectionLimit: number;
  readonly validUntil: string | null;
  readonly password: RolePasswordLive;
}

interface RoleRow {
  name: string;
  login: boolean;
  superuser: boolean;
  createdb: boolean;
  createrole: boolean;
  replication: boolean;
  bypassrls: boolean;
  connection_limit: number;
  valid_until: string | null;
  password: string | null;
  in_roles: string[];
}

const roleQuery = (catalog: 'pg_authid' | 'pg_roles') => `
  SELECT r.rolname AS name, r.rolcanlogin AS login, r.rolsuper AS superuser, r.rolcreatedb AS createdb,
         r.rolcreaterole AS createrole, r.rolreplication AS replication, r.rolbypassrls AS bypassrls,
         r.rolconnlimit AS connection_limit,
         CASE WHEN r.rolvaliduntil IS NULL OR r.rolvaliduntil = 'infinity' THEN NULL
              ELSE to_char(r.rolvaliduntil AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') END AS valid_until,
         ${catalog === 'pg_authid' ? 'r.rolpassword' : 'NULL::text'} AS password,
         COALESCE((SELECT array_agg(g.rolname::text) FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid), '{}') AS in_roles
    FROM ${catalog} r
   WHERE r.rolname = ANY($1::text[])`;

/** The rows of the named roles: one query (two when pg_authid is not readable). */
async function roleRows(query: Query, names: readonly string[]): Promise<{ rows: Map<string, RoleRow>; passwordsReadable: boolean }> {
  let rows: RoleRow[];
  let passwordsReadable = true;
  try {
    rows = await query<RoleRow>(roleQuery('pg_authid'), [[...new Set(names)]]);
  } catch (err) {
    if (!(err instanceof PostgresError && err.code === '42501')) throw err;
    passwordsReadable = false;
    rows = await query<RoleRow>(roleQuery('pg_roles'), [[...new Set(names)]]);
  }
  return { rows: new Map(rows.map((r) => [r.name, r])), passwordsReadable };
}

async function toLive(row: RoleRow, spec: PostgresRoleSpec, passwordsReadable: boolean): Promise<PostgresRoleLive> {
  const method = passwordsReadable ? passwordMethod(row.password) : 'unknown';
  // A spec read back from the state holds only the password's digest: nothing to compare here.
  const matches = spec.password === undefined || !passwordsReadable || isSensitiveDigest(spec.password) ? null : await scramMatches(revealString(spec.password), row.password);
  return {
    name: row.name,
    login: row.login,
    superuser: row.superuser,
    createdb: row.createdb,
    createrole: row.createrole,
    replication: row.replication,
    bypassrls: row.bypassrls,
    inRoles: [...row.in_roles].sort(),
    connectionLimit: row.connection_limit,
    validUntil: row.valid_until,
    password: { method, matches },
  };
}

export async function readRoles(query: Query, specs: readonly PostgresRoleSpec[]): Promise<(PostgresRoleLive | null)[]> {
  if (specs.length === 0) return [];
  const { rows, passwordsReadable } = await roleRows(query, specs.map((s) => s.name));
  return Promise.all(
    specs.map((s) => {
      const row = rows.get(s.name);
      return row ? toLive(row, s, passwordsReadable) : null;
    }),
  );
}

const CHANGED = '(sensitive value changed)';

function passwordChange(desired: PostgresRoleSpec, live: PostgresRoleLive | null): FieldChange | undefined {
  if (desired.password === undefined) return undefined;
  if (live !== null && (live.password.matches === true || live.password.method === 'unknown')) return undefined;
  const before = live === null || live.password.method === 'none' ? null : SENSITIVE_TEXT;
  return { path: 'password', before, after: CHANGED, sensitive: true };
}

export function diffRole(desired: PostgresRoleSpec, live: PostgresRoleLive | null): ResourceDiff {
  const fields: FieldChange[] = [];
  const compare = (path: string, before: unknown, after: unknown, equal = before === after) => {
    if (!equal) fields.push({ path, before, after });
  };
  const validUntil = desired.validUntil ?? null;
  if (live === null) {
    for (const a of ATTRIBUTES) if (desired[a]) fields.push({ path: a, before: null, after: true });
    if (desired.inRoles.length > 0) fields.push({ path: 'inRoles', before: null, after: desired.inRoles });
    if (desired.connectionLimit !== -1) fields.push({ path: 'connectionLimit', before: null, after: desired.connectionLimit });
    if (validUntil !== null) fields.push({ path: 'validUntil', before: null, after: validUntil });
    const password = passwordChange(desired, null);
    if (password) fields.push(password);
    return { action: 'create', fields };
  }
  for (const a of ATTRIBUTES) compare(a, live[a], desired[a]);
  compare('inRoles', live.inRoles, desired.inRoles, live.inRoles.join('\n') === desired.inRoles.join('\n'));
  compare('connectionLimit', live.connectionLimit, desired.connectionLimit);
  compare('validUntil', live.validUntil, validUntil);
  const password = passwordChange(desired, live);
  if (password) fields.push(password);
  return { action: fields.length > 0 ? 'update' : 'noop', fields };
}

/** The password as PostgreSQL will store it: a verifier computed here, never the password. */
async function passwordClause(password: string | Sensitive<string>, address: Address): Promise<string> {
  if (isSensitiveDigest(password) || (typeof password === 'string' && password === SENSITIVE_TEXT)) {
    // A secret that went through JSON (a saved plan, a stored spec) comes back as its mask: never set that as a password.
    throw new ProviderError(`${address}: the password is not available (a saved plan does not carry secrets); make a new plan`);
  }
  const plain = revealString(password);
  return `PASSWORD ${literal(await scramVerifier(plain))}`;
}

/**
 * The clauses that change `current` into `desired` (all non-defaults for a new
 * role). Only what differs is sent: PostgreSQL asks for superuser to name
 * SUPERUSER, REPLICATION or BYPASSRLS at all, even unchanged, so a role
 * Capstan connects as with CREATEROLE can still manage the other attributes.
 */
function attributeClauses(desired: PostgresRoleSpec, current: PostgresRoleLive | null): string[] {
  const clauses: string[] = [];
  for (const a of ATTRIBUTES) if (desired[a] !== (current?.[a] ?? false)) clauses.push(desired[a] ? KEYWORD[a] : `NO${KEYWORD[a]}`);
  if (desired.connectionLimit !== (current?.connectionLimit ?? -1)) clauses.push(`CONNECTION LIMIT ${desired.connectionLimit}`);
  const validUntil = desired.validUntil ?? null;
  if (validUntil !== (current?.validUntil ?? null)) clauses.push(`VALID UNTIL ${literal(validUntil ?? 'infinity')}`);
  return clauses;
}

async function dropRole(handle: PostgresHandle, request: ApplyRequest<PostgresRoleSpec, PostgresRoleLive>): Promise<null> {
  const name = request.prior?.name ?? request.live?.name;
  if (name === undefined) throw new Error(`cannot delete ${request.address}: no last applied spec names its role`);
  const rows = await handle.query(
    `SELECT r.oid IS NOT NULL AS present,
            (SELECT count(*)::int FROM pg_shdepend d WHERE d.refclassid = 'pg_authid'::regclass AND d.refobjid = r.oid AND d.deptype = 'o') AS owns,
            (SELECT count(*)::int FROM pg_shdepend d WHERE d.refclassid = 'pg_authid'::regclass AND d.refobjid = r.oid AND d.deptype IN ('a', 'i')) AS privileges,
            (SELECT COALESCE(array_agg(DISTINCT db.datname::text), '{}') FROM pg_shdepend d LEFT JOIN pg_database db ON db.oid = d.dbid
              WHERE d.refclassid = 'pg_authid'::regclass AND d.refobjid = r.oid AND d.deptype IN ('o', 'a', 'i') AND d.dbid <> 0) AS databases,
            (SELECT COALESCE(array_agg(db.datname::text), '{}') FROM pg_database db WHERE db.datdba = r.oid) AS owned_databases
       FROM (SELECT oid FROM pg_roles WHERE rolname = $1) r`,
    [name],
  );
  const row = rows[0] as { owns: number; privileges: number; databases: string[]; owned_databases: string[] } | undefined;
  if (row === undefined) return null;
  if (request.prior?.deletionProtection !== false) {
    throw new ProviderError(
      `refusing to drop role ${name} (${request.address}) on ${handle.label}: deletionProtection is on (the default). ` +
        'To drop it, set deletionProtection: false on the resource and apply, then remove it from the spec',
    );
  }
  if (row.owns > 0 || row.privileges > 0) {
    const owned = [...row.owned_databases].sort();
    const elsewhere = row.owns - owned.length;
    const what = [
      owned.length > 0 ? `owns database ${owned.join(', ')}` : '',
      elsewhere > 0 ? `owns ${elsewhere} object(s)` : '',
      row.privileges > 0 ? `holds privileges on ${row.privileges} object(s)` : '',
    ]
      .filter(Boolean)
      .join(' and ');
    const where = row.databases.length > 0 ? ` in database ${[...row.databases].sort().join(', ')}` : '';
    throw new ProviderError(
      `refusing to drop role ${name} (${request.address}) on ${handle.label}: it ${what}${where}. ` +
        'Give the objects another owner in the spec (or REASSIGN OWNED BY / DROP OWNED BY in each database), then apply again',
    );
  }
  await handle.query(`DROP ROLE ${ident(name)}`);
  return null;
}

async function applyRole(handle: PostgresHandle, request: ApplyRequest<PostgresRoleSpec, PostgresRoleLive>): Promise<PostgresRoleLive | null> {
  if (request.action === 'delete') return dropRole(handle, request);
  const desired = request.desired;
  if (desired === null) throw new Error(`${request.action} of ${request.address} needs a desired spec`);
  const name = ident(desired.name);
  // Read outside the transaction: a refused read of pg_authid would abort it.
  const [current = null] = await readRoles(handle.query, [desired]);
  await handle.transaction(undefined, async (query) => {
    const clauses = attributeClauses(desired, current);
    if (desired.password !== undefined && (current === null || current.password.matches === false)) {
      clauses.push(await passwordClause(desired.password, request.address));
    }
    if (current === null) await query(`CREATE ROLE ${name}${clauses.length > 0 ? ` WITH ${clauses.join(' ')}` : ''}`);
    else if (clauses.length > 0) await query(`ALTER ROLE ${name} WITH ${clauses.join(' ')}`);
    const have = new Set(current?.inRoles ?? []);
    const want = new Set(desired.inRoles);
    for (const parent of desired.inRoles) if (!have.has(parent)) await query(`GRANT ${ident(parent)} TO ${name}`);
    for (const parent of have) if (!want.has(parent)) await query(`REVOKE ${ident(parent)} FROM ${name}`);
  });
  const [after] = await readRoles(handle.query, [desired]);
  return after ?? null;
}

function validateRole(resource: Resource<PostgresRoleSpec>, sameTarget: readonly Resource[]): Diagnostic[] {
  const diagnostics = duplicates(resource, sameTarget, (s) => s.name, `role ${resource.spec.name}`, ['name']);
  const self = resource.spec.inRoles.indexOf(resource.spec.name);
  if (self >= 0) {
    diagnostics.push(error(`role ${resource.spec.name} cannot be a member of itself`, { address: resource.address, source: resource.positionOf(['spec', 'inRoles']) }));
  }
  return diagnostics;
}

export const postgresRoleProvider: ResourceProvider<PostgresRoleSpec, PostgresRoleLive, PostgresHandle> = {
  role: 'resource',
  sensitiveFields: ['password'],
  kind: 'PostgresRole',
  description: 'A PostgreSQL role: login, password (as a SCRAM verifier), attributes, memberships, connection limit and expiry.',
  schema: postgresRoleSchema,
  targetKind: 'PostgresServer',
  describe: (spec) => `role ${spec.name}`,
  validate: validateRole,
  implicitDependencies: (resource, sameTarget) => roleAddresses(sameTarget, resource.spec.inRoles),
  read: (handle, specs) => readRoles(handle.query, specs),
  diff: (desired, live) => diffRole(desired, live),
  apply: (handle, request) => applyRole(handle, request),
};
