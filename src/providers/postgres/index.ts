import type { AnyProvider } from '../provider.js';
import { postgresDatabaseProvider } from './database.js';
import { postgresExtensionProvider } from './extension.js';
import { postgresGrantProvider } from './grant.js';
import { postgresRoleProvider } from './role.js';
import { postgresSchemaProvider } from './schema.js';
import { postgresServerTarget } from './server.js';

/** PostgreSQL kinds: the PostgresServer target and the roles, databases, schemas, grants and extensions on it. */
export const postgresProviders: readonly AnyProvider[] = [
  postgresServerTarget,
  postgresRoleProvider,
  postgresDatabaseProvider,
  postgresSchemaProvider,
  postgresGrantProvider,
  postgresExtensionProvider,
];

export { postgresDatabaseProvider, type PostgresDatabaseLive, type PostgresDatabaseSpec } from './database.js';
export { postgresExtensionProvider, type PostgresExtensionLive, type PostgresExtensionSpec } from './extension.js';
export { postgresGrantProvider, type PostgresGrantLive, type PostgresGrantSpec } from './grant.js';
export { postgresRoleProvider, type PostgresRoleLive, type PostgresRoleSpec } from './role.js';
export { postgresSchemaProvider, type PostgresSchemaLive, type PostgresSchemaSpec } from './schema.js';
export { postgresServerTarget, type PostgresHandle, type PostgresServerSpec } from './server.js';
