import { lazyKind, ProviderRegistry, type ProviderRegistration } from './registry.js';

/**
 * Every kind that ships with Capstan, one line each: name, description (the
 * provider's own, checked by registry.test.ts) and the import of its module, run
 * only when a stack or its state uses the kind.
 */
export const builtinKinds: readonly ProviderRegistration[] = [
  lazyKind('Host', 'A machine reached locally or over SSH; Directory, File and Symlink resources live on it, below its root.', async () => (await import('./host/host.js')).hostTarget),
  lazyKind('Directory', 'A directory on a Host, with its mode and owner; created with its parents, removed only when empty. With state: absent, the path must not exist (recurse: true removes a tree).', async () => (await import('./host/directory.js')).directoryProvider),
  lazyKind('File', 'A regular file on a Host: its content (inline, from a repository file, or a Liquid template rendered per host), mode and owner; written atomically. With state: absent, the file must not exist.', async () => (await import('./host/file.js')).fileProvider),
  lazyKind('Symlink', 'A symbolic link on a Host; created or retargeted atomically, never followed. With state: absent, the link must not exist.', async () => (await import('./host/symlink.js')).symlinkProvider),
  lazyKind('Package', 'A Debian package on a Host: installed (at a version or pattern, the latest apt offers, or from a .deb file) or absent (or purged); apt-get and dpkg.', async () => (await import('./system/package.js')).packageProvider),
  lazyKind('Group', "A group in the Host's /etc/group with its gid; groupadd, groupmod and groupdel.", async () => (await import('./system/group.js')).groupProvider),
  lazyKind('User', "An account in the Host's /etc/passwd: uid, groups, shell, home, comment, password (a crypt hash), expiry, lock and SSH authorized keys; useradd and usermod.", async () => (await import('./system/user.js')).userProvider),
  lazyKind('Sysctl', 'A kernel parameter on a Host: set now with sysctl -w and kept in /etc/sysctl.d/99-capstan-<key>.conf or a sysctl.d file of your choice.', async () => (await import('./system/sysctl.js')).sysctlProvider),
  lazyKind('Firewall', 'One nftables table on a Host (sets and chains as data, or the table as text), checked with nft -c and swapped in atomically; refuses to lock out the SSH port Capstan uses unless forced.', async () => (await import('./system/firewall.js')).firewallProvider),
  lazyKind('Route', 'An IP route in a routing table of a Host (destination, via, dev, table, metric); ip route replace and del.', async () => (await import('./system/route.js')).routeProvider),
  lazyKind('Exec', 'A command run on a Host when its guards (creates, onlyIf, unless) say so, when its command changes, or, with refreshOnly, when a resource that notifies it changes.', async () => (await import('./system/exec.js')).execProvider),
  lazyKind('SLO', 'A service level objective: recording rules and multi-window burn-rate alerts for Prometheus, a Grafana dashboard, generated alert tests.', async () => (await import('./observability/providers.js')).sloProvider),
  lazyKind('AlertRules', 'Prometheus rule groups (every alert with a runbook_url), delivered to a Prometheus rules directory.', async () => (await import('./observability/providers.js')).alertRulesProvider),
  lazyKind('AlertTest', 'promtool unit tests of SLO and AlertRules resources, run by `capstan test`; nothing is delivered.', async () => (await import('./observability/providers.js')).alertTestProvider),
  lazyKind('Alerting', 'On-call teams, routes, escalation and inhibition: the Alertmanager configuration, checked with amtool and reloaded.', async () => (await import('./observability/providers.js')).alertingProvider),
  lazyKind('Dashboard', 'A Grafana dashboard (typed panels, or JSON inline or from a file) with its file-provisioning YAML.', async () => (await import('./observability/providers.js')).dashboardProvider),
  lazyKind('PostgresServer', 'A PostgreSQL server reached over TCP or a Unix socket; PostgresRole, PostgresDatabase, PostgresSchema, PostgresGrant and PostgresExtension live on it.', async () => (await import('./postgres/server.js')).postgresServerTarget),
  lazyKind('PostgresRole', 'A PostgreSQL role: login, password (as a SCRAM verifier), attributes, memberships, connection limit and expiry.', async () => (await import('./postgres/role.js')).postgresRoleProvider),
  lazyKind('PostgresDatabase', 'A PostgreSQL database: owner, encoding, locale and template; a change of encoding, locale or template recreates it.', async () => (await import('./postgres/database.js')).postgresDatabaseProvider),
  lazyKind('PostgresSchema', 'A schema in a PostgreSQL database, and its owner.', async () => (await import('./postgres/schema.js')).postgresSchemaProvider),
  lazyKind('PostgresGrant', 'The exact privileges of a role on a database, a schema, all tables/sequences/functions in a schema, or their default privileges.', async () => (await import('./postgres/grant.js')).postgresGrantProvider),
  lazyKind('PostgresExtension', 'A PostgreSQL extension installed in a database, at a version and in a schema.', async () => (await import('./postgres/extension.js')).postgresExtensionProvider),
];

/** Every provider that ships with Capstan, loaded on demand (see ProviderRegistry). */
export function defaultRegistry(): ProviderRegistry {
  return new ProviderRegistry(builtinKinds);
}
