/**
 * Passwords for real: a PostgreSQL cluster that checks them (scram-sha-256 over
 * TCP, ./testing/scram-cluster.ts). A role Capstan creates logs in with its
 * password — quotes, backslashes and `$$` included — and not with another one;
 * a password changed by hand is seen as `(sensitive value changed)` and healed;
 * the password never appears in live state, a diff or an error. The target's
 * own password, and its TLS modes, are checked against the same cluster.
 */
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Sensitive } from '../../secrets/sensitive.js';
import type { ProviderContext } from '../provider.js';
import { postgresRoleProvider, postgresRoleSchema, type PostgresRoleLive, type PostgresRoleSpec } from './role.js';
import { postgresServerTarget, type PostgresHandle } from './server.js';
import { serverResource } from './testing/server.js';
import { startScramCluster, type ScramCluster } from './testing/scram-cluster.js';

const ctx: ProviderContext = { signal: new AbortController().signal };
const NASTY = `it's "quoted" \\ back\\slash $$ dollar $$; -- not a comment`;

let cluster: ScramCluster;
let handle: PostgresHandle;

beforeAll(async () => {
  cluster = await startScramCluster();
  handle = await postgresServerTarget.connect(serverResource({ host: cluster.socketDir, port: cluster.port, user: 'postgres' }), ctx);
}, 60_000);
afterAll(async () => {
  await handle?.close();
  await cluster?.stop();
});

async function login(user: string, password: string, ssl: pg.ClientConfig['ssl'] = false): Promise<string> {
  const client = new pg.Client({ host: '127.0.0.1', port: cluster.port, user, password, database: 'postgres', ssl });
  await client.connect();
  try {
    return ((await client.query('SELECT current_user AS u')).rows[0] as { u: string }).u;
  } finally {
    await client.end();
  }
}

async function converge(spec: PostgresRoleSpec, prior: PostgresRoleSpec | null = null): Promise<{ live: PostgresRoleLive | null; plan: unknown }> {
  const [live] = await postgresRoleProvider.read(handle, [spec], ctx);
  const diff = postgresRoleProvider.diff(spec, live ?? null, prior);
  if (diff.action === 'noop') return { live: live ?? null, plan: diff };
  const after = await postgresRoleProvider.apply(handle, { action: diff.action, address: 'PostgresRole/app', desired: spec, prior, live: live ?? null }, ctx);
  return { live: after, plan: { live, diff } };
}

describe('PostgresRole passwords against a cluster that checks them', () => {
  it('logs in over TCP with a password holding quotes, backslashes and $$, and refuses another one', async () => {
    const spec = postgresRoleSchema.parse({ name: 'nasty', login: true, password: NASTY });
    const { live, plan } = await converge(spec);
    expect(live?.password).toEqual({ method: 'scram-sha-256', matches: true });
    expect(await login('nasty', NASTY)).toBe('nasty');
    await expect(login('nasty', 'wrong')).rejects.toThrow(/password authentication failed/);
    expect(JSON.stringify({ live, plan })).not.toContain('dollar');
    // A second plan is a no-op: the verifier matches.
    const [again] = await postgresRoleProvider.read(handle, [spec], ctx);
    expect(postgresRoleProvider.diff(spec, again ?? null, spec).action).toBe('noop');
  });

  it('takes the password from a Sensitive, and works with a non-ASCII one', async () => {
    const secret = 'pässwörd ünïcödé €';
    const spec = postgresRoleSchema.parse({ name: 'sensitive', login: true, password: new Sensitive(secret, 'digest') });
    await converge(spec);
    expect(await login('sensitive', secret)).toBe('sensitive');
  });

  it('sees a password changed by hand as "(sensitive value changed)", heals it, and never shows either value', async () => {
    const spec = postgresRoleSchema.parse({ name: 'drifted', login: true, password: new Sensitive('the desired one', 'd1') });
    await converge(spec);
    const admin = new pg.Client({ host: cluster.socketDir, port: cluster.port, user: 'postgres', database: 'postgres' });
    await admin.connect();
    await admin.query(`ALTER ROLE drifted PASSWORD 'set by hand'`);
    await admin.end();
    expect(await login('drifted', 'set by hand')).toBe('drifted');

    const [live] = await postgresRoleProvider.read(handle, [spec], ctx);
    const diff = postgresRoleProvider.diff(spec, live ?? null, spec);
    expect(diff.action).toBe('update');
    expect(diff.fields).toEqual([{ path: 'password', before: '(sensitive)', after: '(sensitive value changed)', sensitive: true }]);
    const text = JSON.stringify({ live, diff });
    expect(text).not.toContain('by hand');
    expect(text).not.toContain('desired one');

    await postgresRoleProvider.apply(handle, { action: 'update', address: 'PostgresRole/drifted', desired: spec, prior: spec, live: live ?? null }, ctx);
    expect(await login('drifted', 'the desired one')).toBe('drifted');
    await expect(login('drifted', 'set by hand')).rejects.toThrow(/password authentication failed/);
  });

  it('refuses a password that went through JSON (a saved plan) instead of setting "(sensitive)"', async () => {
    const masked = JSON.parse(JSON.stringify(postgresRoleSchema.parse({ name: 'masked', login: true, password: new Sensitive('x', 'd') }))) as PostgresRoleSpec;
    await expect(
      postgresRoleProvider.apply(handle, { action: 'create', address: 'PostgresRole/masked', desired: masked, prior: null, live: null }, ctx),
    ).rejects.toThrow(/password is not available/);
  });

  it('connects as a PostgresServer with its own password over TCP; a wrong one fails with a message naming the target, not the password', async () => {
    await converge(postgresRoleSchema.parse({ name: 'capstan_admin', login: true, createrole: true, password: NASTY }));
    const target = await postgresServerTarget.connect(
      serverResource({ host: '127.0.0.1', port: cluster.port, user: 'capstan_admin', password: new Sensitive(NASTY, 'd'), sslmode: 'disable' }, 'scram'),
      ctx,
    );
    try {
      expect(target.user).toBe('capstan_admin');
    } finally {
      await target.close();
    }
    const wrong = postgresServerTarget.connect(serverResource({ host: '127.0.0.1', port: cluster.port, user: 'capstan_admin', password: 'nope-nope' }, 'scram'), ctx);
    await expect(wrong).rejects.toThrow(/PostgresServer\/scram \(127\.0\.0\.1:\d+\).*password authentication failed/);
    await wrong.catch((err: Error) => expect(err.message).not.toContain('nope-nope'));
  });

  it('manages roles as a non-superuser with CREATEROLE: no pg_authid (passwords set at creation only), only changed attributes sent', async () => {
    const target = await postgresServerTarget.connect(
      serverResource({ host: '127.0.0.1', port: cluster.port, user: 'capstan_admin', password: NASTY, sslmode: 'disable' }, 'limited'),
      ctx,
    );
    try {
      const spec = postgresRoleSchema.parse({ name: 'limited_app', login: true, password: 'limited pw', connectionLimit: 3 });
      const [absent] = await postgresRoleProvider.read(target, [spec], ctx);
      expect(absent).toBeNull();
      const created = await postgresRoleProvider.apply(target, { action: 'create', address: 'PostgresRole/limited', desired: spec, prior: null, live: null }, ctx);
      expect(created?.password).toEqual({ method: 'unknown', matches: null });
      expect(await login('limited_app', 'limited pw')).toBe('limited_app');
      expect(postgresRoleProvider.diff(spec, created, spec).action).toBe('noop');

      const changed = postgresRoleSchema.parse({ ...spec, connectionLimit: 7 });
      const diff = postgresRoleProvider.diff(changed, created, spec);
      expect(diff.fields.map((f) => f.path)).toEqual(['connectionLimit']);
      const after = await postgresRoleProvider.apply(target, { action: 'update', address: 'PostgresRole/limited', desired: changed, prior: spec, live: created }, ctx);
      expect(after?.connectionLimit).toBe(7);
    } finally {
      await target.close();
    }
  });

  it('speaks TLS: require, verify-full against the CA file (relative to the repository), and refuses a CA that did not sign the server', async () => {
    const repoDir = path.dirname(cluster.certFile);
    const open = (spec: Record<string, unknown>) =>
      postgresServerTarget.connect(serverResource({ host: '127.0.0.1', port: cluster.port, user: 'capstan_admin', password: NASTY, ...spec }, 'tls'), {
        ...ctx,
        repoDir,
      });
    for (const spec of [{ sslmode: 'require' }, { sslmode: 'prefer' }, { sslmode: 'verify-full', caFile: path.basename(cluster.certFile) }]) {
      const target = await open(spec);
      try {
        const [row] = await target.query<{ ssl: boolean }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
        expect(row?.ssl, JSON.stringify(spec)).toBe(true);
      } finally {
        await target.close();
      }
    }
    // The system CA bundle did not sign this self-signed certificate.
    await expect(open({ sslmode: 'verify-ca', caFile: '/etc/ssl/certs/ca-certificates.crt' })).rejects.toThrow(/PostgresServer\/tls.*(self.signed|certificate)/i);
    await expect(open({ sslmode: 'verify-full', caFile: 'missing.pem' })).rejects.toThrow(/caFile missing\.pem/);
  });
});
