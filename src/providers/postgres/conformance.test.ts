/**
 * Every Postgres kind through the shared provider conformance suite, against
 * the real PostgreSQL on 127.0.0.1:5432. Each suite has its own role and
 * database names (a random suffix) and drops them in afterAll.
 */
import { Sensitive } from '../../secrets/sensitive.js';
import { runProviderConformance } from '../testing/conformance.js';
import { postgresDatabaseProvider, postgresDatabaseSchema } from './database.js';
import { postgresExtensionProvider } from './extension.js';
import { postgresGrantProvider } from './grant.js';
import { ident } from './server.js';
import { postgresRoleProvider, postgresRoleSchema } from './role.js';
import { postgresSchemaProvider } from './schema.js';
import { openTestServer, testNames, type TestNames } from './testing/server.js';

/** Opens the server after running `setup` (objects the specs refer to, made behind the providers' back). */
const connectWith = (names: TestNames, setup: (sql: (text: string, database?: string) => Promise<unknown>) => Promise<void> = async () => undefined) =>
  async () => {
    const server = await openTestServer(names);
    try {
      await setup((text, database) => server.sql(text, [], database));
    } catch (err) {
      await server.cleanup();
      throw err;
    }
    return { handle: server.handle, cleanup: server.cleanup };
  };

{
  const n = testNames();
  const parent = n.name('readers');
  runProviderConformance({
    provider: postgresRoleProvider,
    connect: connectWith(n, (sql) => sql(`CREATE ROLE ${ident(parent)}`).then(() => undefined)),
    create: postgresRoleSchema.parse({ name: n.name('app'), login: true, password: 'first password' }),
    update: postgresRoleSchema.parse({
      name: n.name('app'),
      login: true,
      password: new Sensitive(`it's a \\ "$$" pass'word`, 'digest-2'),
      createdb: true,
      inRoles: [parent],
      connectionLimit: 5,
      validUntil: '2031-01-31T12:00:00Z',
      deletionProtection: false,
    }),
    invalidSpecs: [
      { spec: { name: '' }, message: /must not be empty/ },
      { spec: { name: 'bad name' }, message: /PostgreSQL name/ },
      { spec: { name: 'pg_mine' }, message: /pg_/ },
      { spec: { name: 'public' }, message: /reserved role name/ },
      { spec: { name: 'a'.repeat(64) }, message: /at most 63 bytes/ },
      { spec: { name: 'app', superuser: 'yes' }, message: /superuser must be true or false/ },
      { spec: { name: 'app', connectionLimit: -2 }, message: /connectionLimit must be -1/ },
      { spec: { name: 'app', validUntil: 'tomorrow' }, message: /validUntil must be an ISO 8601 time/ },
      { spec: { name: 'app', password: 42 }, message: /password must be a string or \{ secret: PATH \}/ },
      { spec: { name: 'app', inRoles: ['x y'] }, message: /each of inRoles/ },
      { spec: { name: 'app', owner: 'x' }, message: /Unrecognized key/ },
    ],
    makeDrift: async (handle, spec) => void (await handle.query(`ALTER ROLE ${ident(spec.name)} NOCREATEDB`)),
    driftedField: 'createdb',
  });
}

{
  const n = testNames();
  const [first, second] = [n.name('owner1'), n.name('owner2')];
  runProviderConformance({
    provider: postgresDatabaseProvider,
    connect: connectWith(n, async (sql) => {
      await sql(`CREATE ROLE ${ident(first)}`);
      await sql(`CREATE ROLE ${ident(second)}`);
    }),
    create: postgresDatabaseSchema.parse({ name: n.name('appdb'), owner: first, encoding: 'utf-8', locale: 'C.UTF-8', template: 'template0' }),
    update: { name: n.name('appdb'), owner: second, encoding: 'UTF8', locale: 'C.UTF-8', template: 'template0', deletionProtection: false },
    invalidSpecs: [
      { spec: { name: 'db', encoding: 'klingon' }, message: /encoding must be a PostgreSQL server encoding/ },
      { spec: { name: 'db', locale: 'en US' }, message: /locale must be a locale name/ },
      { spec: { name: 'db;drop' }, message: /PostgreSQL name/ },
      { spec: { name: 'db', owner: 'pg_monitor' }, message: /pg_/ },
      { spec: { name: 'db', deletionProtection: 'no' }, message: /deletionProtection must be true or false/ },
    ],
    makeDrift: async (handle, spec) => void (await handle.query(`ALTER DATABASE ${ident(spec.name)} OWNER TO ${ident(first)}`)),
    driftedField: 'owner',
  });
}

{
  const n = testNames();
  const [db, first, second] = [n.name('schemadb'), n.name('owner1'), n.name('owner2')];
  runProviderConformance({
    provider: postgresSchemaProvider,
    connect: connectWith(n, async (sql) => {
      await sql(`CREATE ROLE ${ident(first)}`);
      await sql(`CREATE ROLE ${ident(second)}`);
      await sql(`CREATE DATABASE ${ident(db)}`);
    }),
    create: { name: 'app', database: db, owner: first },
    update: { name: 'app', database: db, owner: second },
    invalidSpecs: [
      { spec: { name: 'app' }, message: /database must be a string/ },
      { spec: { name: 'pg_app', database: 'x' }, message: /pg_/ },
      { spec: { name: 'app', database: 'x', owner: 'a b' }, message: /owner must be a PostgreSQL name/ },
    ],
    makeDrift: async (handle, spec) => void (await handle.query(`ALTER SCHEMA app OWNER TO ${ident(first)}`, [], spec.database)),
    driftedField: 'owner',
  });
}

{
  const n = testNames();
  const [db, role] = [n.name('grantdb'), n.name('grantee')];
  runProviderConformance({
    name: 'PostgresGrant provider conformance (on a database)',
    provider: postgresGrantProvider,
    connect: connectWith(n, async (sql) => {
      await sql(`CREATE ROLE ${ident(role)}`);
      await sql(`CREATE DATABASE ${ident(db)}`);
      // PUBLIC holds CONNECT and TEMPORARY by default; the grantee's own privileges are what the grant manages.
      await sql(`REVOKE ALL ON DATABASE ${ident(db)} FROM PUBLIC`);
    }),
    create: { role, database: db, on: 'database', privileges: ['connect'] },
    update: { role, database: db, on: 'database', privileges: ['CONNECT', 'TEMP'] },
    invalidSpecs: [
      { spec: { role: 'r', database: 'd', on: 'database', privileges: ['SELECT'] }, message: /"SELECT" is not a privilege on database: use CREATE, CONNECT, TEMPORARY or ALL/ },
      { spec: { role: 'r', database: 'd', on: 'tables', privileges: ['SELECT'] }, message: /on: tables needs schema/ },
      { spec: { role: 'r', database: 'd', on: 'database', schema: 'public', privileges: ['CONNECT'] }, message: /schema is only for/ },
      { spec: { role: 'r', database: 'd', on: 'schema', schema: 'public', defaultsFor: 'o', privileges: ['USAGE'] }, message: /defaultsFor/ },
      { spec: { role: 'r', database: 'd', on: 'database', privileges: [] }, message: /at least one privilege/ },
      { spec: { role: 'r', database: 'd', on: 'views', privileges: ['SELECT'] }, message: /on must be one of/ },
      { spec: { role: 'public', database: 'd', on: 'database', privileges: ['CONNECT'] }, message: /reserved role name/ },
    ],
    makeDrift: async (handle, spec) => void (await handle.query(`REVOKE TEMPORARY ON DATABASE ${ident(spec.database)} FROM ${ident(spec.role)}`)),
    driftedField: 'privileges',
  });
}

{
  const n = testNames();
  const [db, role] = [n.name('tablesdb'), n.name('reader')];
  runProviderConformance({
    name: 'PostgresGrant provider conformance (on all tables in a schema)',
    provider: postgresGrantProvider,
    connect: connectWith(n, async (sql) => {
      await sql(`CREATE ROLE ${ident(role)}`);
      await sql(`CREATE DATABASE ${ident(db)}`);
      await sql('CREATE SCHEMA app; CREATE TABLE app.a (id int); CREATE TABLE app.b (id int); CREATE VIEW app.v AS SELECT 1 AS one', db);
    }),
    create: { role, database: db, on: 'tables', schema: 'app', privileges: ['SELECT'] },
    update: { role, database: db, on: 'tables', schema: 'app', privileges: ['SELECT', 'INSERT', 'UPDATE'] },
    invalidSpecs: [{ spec: { role: 'r', database: 'd', on: 'tables', schema: 'app', privileges: ['EXECUTE'] }, message: /not a privilege on tables/ }],
    // Someone revokes on one table of the three: held on some only.
    makeDrift: async (handle, spec) => void (await handle.query(`REVOKE INSERT ON app.b FROM ${ident(spec.role)}`, [], spec.database)),
    driftedField: 'privileges',
  });
}

{
  const n = testNames();
  const [db, role, owner] = [n.name('defaultsdb'), n.name('reader'), n.name('writer')];
  runProviderConformance({
    name: 'PostgresGrant provider conformance (default privileges)',
    provider: postgresGrantProvider,
    connect: connectWith(n, async (sql) => {
      await sql(`CREATE ROLE ${ident(role)}; CREATE ROLE ${ident(owner)}`);
      await sql(`CREATE DATABASE ${ident(db)}`);
      await sql('CREATE SCHEMA app', db);
    }),
    create: { role, database: db, on: 'sequences', schema: 'app', defaultsFor: owner, privileges: ['USAGE'] },
    update: { role, database: db, on: 'sequences', schema: 'app', defaultsFor: owner, privileges: ['ALL'] },
    invalidSpecs: [{ spec: { role: 'r', database: 'd', on: 'sequences', schema: 'app', privileges: ['DELETE'] }, message: /not a privilege on sequences/ }],
    makeDrift: async (handle, spec) =>
      void (await handle.query(`ALTER DEFAULT PRIVILEGES FOR ROLE ${ident(owner)} IN SCHEMA app REVOKE SELECT ON SEQUENCES FROM ${ident(spec.role)}`, [], spec.database)),
    driftedField: 'privileges',
  });
}

{
  const n = testNames();
  const db = n.name('extdb');
  runProviderConformance({
    provider: postgresExtensionProvider,
    connect: connectWith(n, async (sql) => {
      await sql(`CREATE DATABASE ${ident(db)}`);
      await sql('CREATE SCHEMA ext', db);
    }),
    create: { name: 'citext', database: db, version: '1.5' },
    update: { name: 'citext', database: db, version: '1.6', schema: 'ext' },
    invalidSpecs: [
      { spec: { name: 'citext' }, message: /database must be a string/ },
      { spec: { name: 'citext', database: 'd', version: "1'; DROP" }, message: /version must be a version/ },
    ],
    makeDrift: async (handle, spec) => void (await handle.query('ALTER EXTENSION citext SET SCHEMA public', [], spec.database)),
    driftedField: 'schema',
  });
}
