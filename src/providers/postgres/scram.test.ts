/**
 * SCRAM verifiers: Capstan's comparison accepts the verifiers PostgreSQL itself
 * computes (for ASCII and non-ASCII passwords) and refuses others; the
 * verifiers Capstan computes are accepted by the same comparison.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { passwordMethod, saslPrep, scramMatches, scramVerifier } from './scram.js';
import { openTestServer, type TestServer } from './testing/server.js';

let server: TestServer;
beforeAll(async () => {
  server = await openTestServer();
});
afterAll(async () => {
  await server?.cleanup();
});

async function postgresVerifier(password: string): Promise<string> {
  const role = server.name(`v${Math.random().toString(36).slice(2, 8)}`);
  await server.sql(`SET password_encryption = 'scram-sha-256'; CREATE ROLE ${pg.escapeIdentifier(role)} PASSWORD ${pg.escapeLiteral(password)}`);
  const [row] = await server.sql('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [role]);
  return row!['rolpassword'] as string;
}

describe('SCRAM-SHA-256 verifiers', () => {
  it.each([`plain`, `it's \\ "$$"`, 'pässwörd', 'ｆｕｌｌｗｉｄｔｈ', 'a\u00A0b'])('matches what PostgreSQL stores for %j, and nothing else', async (password) => {
    const verifier = await postgresVerifier(password);
    expect(passwordMethod(verifier)).toBe('scram-sha-256');
    expect(await scramMatches(password, verifier)).toBe(true);
    expect(await scramMatches(`${password}x`, verifier)).toBe(false);
  });

  it('computes verifiers with a fresh salt that match their password only', async () => {
    const [a, b] = [await scramVerifier('secret'), await scramVerifier('secret')];
    expect(a).not.toBe(b);
    expect(a).toMatch(/^SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/);
    expect(await scramMatches('secret', a)).toBe(true);
    expect(await scramMatches('Secret', a)).toBe(false);
  });

  it('never matches a missing, md5 or malformed password', async () => {
    expect(await scramMatches('x', null)).toBe(false);
    expect(await scramMatches('x', 'md5' + '0'.repeat(32))).toBe(false);
    expect(await scramMatches('x', 'SCRAM-SHA-256$0:abc$def:ghi')).toBe(false);
    expect(passwordMethod(null)).toBe('none');
    expect(passwordMethod('md5' + 'a'.repeat(32))).toBe('md5');
  });

  it('prepares passwords as PostgreSQL does: ASCII as is, others mapped and NFKC-normalised', () => {
    expect(saslPrep('a\tb')).toBe('a\tb');
    expect(saslPrep('ｆｕｌｌ')).toBe('full');
    expect(saslPrep('a\u00A0b')).toBe('a b');
    expect(saslPrep('a\u00ADb€')).toBe('ab€');
  });
});
