/**
 * PostgresDatabase: a database on a PostgresServer — owner, encoding, locale
 * (LC_COLLATE and LC_CTYPE) and the template it is created from.
 *
 * read   every database of the batch in one query on pg_database.
 * apply  CREATE DATABASE / ALTER DATABASE ... OWNER TO / DROP DATABASE.
 *
 * Encoding and locale cannot change on a live database, and the template
 * matters only when it is created: a change of any of them is a replace (drop,
 * then create empty), which — like a delete — is refused unless the resource
 * says `deletionProtection: false`. PostgreSQL keeps no record of the template,
 * so a template change is seen against the last applied spec only.
 */
import { z } from 'zod';
import type { Diagnostic } from '../../diag/diagnostic.js';
import type { Resource } from '../../spec/resource.js';
import { ProviderError, type ApplyRequest, type FieldChange, type ResourceDiff, type ResourceProvider } from '../provider.js';
import { deletionProtectionSchema, identifierSchema, roleNameSchema } from './names.js';
import { duplicates, roleAddresses } from './references.js';
import { ident, literal, type PostgresHandle } from './server.js';

/** The server encodings PostgreSQL can create a database with. */
export const SERVER_ENCODINGS = [
  'EUC_CN', 'EUC_JIS_2004', 'EUC_JP', 'EUC_KR', 'EUC_TW', 'ISO_8859_5', 'ISO_8859_6', 'ISO_8859_7', 'ISO_8859_8',
  'KOI8R', 'KOI8U', 'LATIN1', 'LATIN10', 'LATIN2', 'LATIN3', 'LATIN4', 'LATIN5', 'LATIN6', 'LATIN7', 'LATIN8', 'LATIN9',
  'MULE_INTERNAL', 'SQL_ASCII', 'UTF8', 'WIN1250', 'WIN1251', 'WIN1252', 'WIN1253', 'WIN1254', 'WIN1255', 'WIN1256',
  'WIN1257', 'WIN1258', 'WIN866', 'WIN874',
] as const;

const encodingSchema = z
  .string({ error: 'encoding must be a string such as UTF8' })
  .transform((s) => s.toUpperCase().replace(/^UTF-8$/, 'UTF8'))
  .refine((s) => (SERVER_ENCODINGS as readonly string[]).includes(s), {
    error: `encoding must be a PostgreSQL server encoding: ${SERVER_ENCODINGS.join(', ')}`,
  });

const LOCALE = /^[A-Za-z0-9_.@-]+$/;

export const postgresDatabaseSchema = z.strictObject({
  name: identifierSchema('name').meta({ description: 'The database name, kept exactly (sent quoted).', examples: ['app'] }),
  /** Absent: the role Capstan connects as owns it, and a later owner change is not managed. */
  owner: roleNameSchema('owner').optional().meta({ description: 'The owning role. Absent: the role Capstan connects as owns it, and a later owner change is not managed.', examples: ['app'] }),
  /** Absent: the template's encoding. */
  encoding: encodingSchema.optional().meta({ description: "Server encoding; absent: the template's. A change recreates the database (deletionProtection applies).", examples: ['UTF8'] }),
  /** LC_COLLATE and LC_CTYPE, e.g. C.UTF-8 or en_US.UTF-8; absent: the template's. */
  locale: z
    .string({ error: 'locale must be a string such as C.UTF-8' })
    .regex(LOCALE, { error: 'locale must be a locale name such as C, C.UTF-8 or en_US.UTF-8' })
    .optional()
    .meta({ description: "LC_COLLATE and LC_CTYPE; absent: the template's. A change recreates the database.", examples: ['C.UTF-8'] }),
  template: identifierSchema('template').default('template1').meta({ description: 'The database it is created from; a change recreates it.', examples: ['template0'] }),
  deletionProtection: deletionProtectionSchema,
}).meta({ examples: [{ name: 'app', owner: 'app', encoding: 'UTF8', locale: 'C.UTF-8', template: 'template0' }] });

export type PostgresDatabaseSpec = z.infer<typeof postgresDatabaseSchema>;

export interface PostgresDatabaseLive {
  readonly name: string;
  readonly owner: string;
  readonly encoding: string;
  readonly lcCollate: string;
  readonly lcCtype: string;
}

export async function readDatabases(handle: PostgresHandle, names: readonly string[]): Promise<Map<string, PostgresDatabaseLive>> {
  if (names.length === 0) return new Map();
  const rows = await handle.query<PostgresDatabaseLive>(
    `SELECT d.datname AS name, pg_get_userbyid(d.datdba) AS owner, pg_encoding_to_char(d.encoding) AS encoding,
            d.datcollate AS "lcCollate", d.datctype AS "lcCtype"
       FROM pg_database d WHERE d.datname = ANY($1::text[])`,
    [[...new Set(names)]],
  );
  return new Map(rows.map((r) => [r.name, { ...r }]));
}

/** Locale names differ only in how the codeset is spelt (`C.UTF-8`, `C.utf8`). */
export const sameLocale = (a: string, b: string): boolean => a.toLowerCase().replace(/-/g, '') === b.toLowerCase().replace(/-/g, '');

export function diffDatabase(desired: PostgresDatabaseSpec, live: PostgresDatabaseLive | null, prior: PostgresDatabaseSpec | null): ResourceDiff {
  if (live === null) {
    const fields: FieldChange[] = [];
    for (const key of ['owner', 'encoding', 'locale', 'template'] as const) {
      if (desired[key] !== undefined) fields.push({ path: key, before: null, after: desired[key] });
    }
    return { action: 'create', fields };
  }
  const recreate: FieldChange[] = [];
  if (desired.encoding !== undefined && desired.encoding !== live.encoding) recreate.push({ path: 'encoding', before: live.encoding, after: desired.encoding });
  if (desired.locale !== undefined) {
    if (!sameLocale(desired.locale, live.lcCollate)) recreate.push({ path: 'locale.lcCollate', before: live.lcCollate, after: desired.locale });
    if (!sameLocale(desired.locale, live.lcCtype)) recreate.push({ path: 'locale.lcCtype', before: live.lcCtype, after: desired.locale });
  }
  if (prior !== null && prior.template !== desired.template) recreate.push({ path: 'template', before: prior.template, after: desired.template });
  const owner: FieldChange[] = desired.owner !== undefined && desired.owner !== live.owner ? [{ path: 'owner', before: live.owner, after: desired.owner }] : [];
  if (recreate.length > 0) {
    const protectedNote = desired.deletionProtection ? '; refused while deletionProtection is on' : '';
    return {
      action: 'replace',
      fields: [...recreate, ...owner],
      reason: `${recreate.map((f) => f.path.replace(/^locale\..*/, 'locale')).filter((p, i, all) => all.indexOf(p) === i).join(', ')} cannot change on a live database: drop and create it empty${protectedNote}`,
    };
  }
  return { action: owner.length > 0 ? 'update' : 'noop', fields: owner };
}

function refuse(handle: PostgresHandle, name: string, address: string, what: string): never {
  throw new ProviderError(
    `refusing to ${what} database ${name} (${address}) on ${handle.label}: deletionProtection is on (the default), and it would lose every object in it. ` +
      'To allow it, set deletionProtection: false on the resource and apply again',
  );
}

async function dropDatabase(handle: PostgresHandle, name: string): Promise<void> {
  if (name === handle.database) throw new ProviderError(`cannot drop database ${name}: ${handle.label} connects to it (its database:)`);
  await handle.releaseDatabase(name);
  await handle.query(`DROP DATABASE IF EXISTS ${ident(name)}`);
}

async function createDatabase(handle: PostgresHandle, desired: PostgresDatabaseSpec): Promise<void> {
  const options = [`TEMPLATE ${ident(desired.template)}`];
  if (desired.owner !== undefined) options.push(`OWNER ${ident(desired.owner)}`);
  if (desired.encoding !== undefined) options.push(`ENCODING ${literal(desired.encoding)}`);
  if (desired.locale !== undefined) options.push(`LC_COLLATE ${literal(desired.locale)}`, `LC_CTYPE ${literal(desired.locale)}`);
  await handle.query(`CREATE DATABASE ${ident(desired.name)} WITH ${options.join(' ')}`);
}

async function applyDatabase(handle: PostgresHandle, request: ApplyRequest<PostgresDatabaseSpec, PostgresDatabaseLive>): Promise<PostgresDatabaseLive | null> {
  if (request.action === 'delete') {
    const name = request.prior?.name ?? request.live?.name;
    if (name === undefined) throw new Error(`cannot delete ${request.address}: no last applied spec names its database`);
    if (!(await readDatabases(handle, [name])).has(name)) return null;
    if (request.prior?.deletionProtection !== false) refuse(handle, name, request.address, 'drop');
    await dropDatabase(handle, name);
    return null;
  }
  const desired = request.desired;
  if (desired === null) throw new Error(`${request.action} of ${request.address} needs a desired spec`);
  const current = (await readDatabases(handle, [desired.name])).get(desired.name) ?? null;
  if (current === null) {
    await createDatabase(handle, desired);
  } else if (request.action === 'replace' || diffDatabase(desired, current, request.prior).action === 'replace') {
    if (desired.deletionProtection) refuse(handle, desired.name, request.address, 'replace (drop and create)');
    await dropDatabase(handle, desired.name);
    await createDatabase(handle, desired);
  } else if (desired.owner !== undefined && desired.owner !== current.owner) {
    await handle.query(`ALTER DATABASE ${ident(desired.name)} OWNER TO ${ident(desired.owner)}`);
  }
  return (await readDatabases(handle, [desired.name])).get(desired.name) ?? null;
}

function validateDatabase(resource: Resource<PostgresDatabaseSpec>, sameTarget: readonly Resource[]): Diagnostic[] {
  return duplicates(resource, sameTarget, (s) => s.name, `database ${resource.spec.name}`, ['name']);
}

export const postgresDatabaseProvider: ResourceProvider<PostgresDatabaseSpec, PostgresDatabaseLive, PostgresHandle> = {
  role: 'resource',
  kind: 'PostgresDatabase',
  description: 'A PostgreSQL database: owner, encoding, locale and template; a change of encoding, locale or template recreates it.',
  schema: postgresDatabaseSchema,
  targetKind: 'PostgresServer',
  destructiveDelete: true,
  describe: (spec) => `database ${spec.name}`,
  validate: validateDatabase,
  implicitDependencies: (resource, sameTarget) => roleAddresses(sameTarget, [resource.spec.owner]),
  read: async (handle, specs) => {
    const live = await readDatabases(handle, specs.map((s) => s.name));
    return specs.map((s) => live.get(s.name) ?? null);
  },
  diff: diffDatabase,
  apply: (handle, request) => applyDatabase(handle, request),
};
