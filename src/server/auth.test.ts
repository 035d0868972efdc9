import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../state/sqlite/sqlite-store.js';
import { controllerStoreOf, type ControllerStore } from '../state/store.js';
import { authenticate, createApiToken, hashToken, roleAllows } from './auth.js';
import { RateLimiter } from './rate-limit.js';

let store: SqliteStore;
let cs: ControllerStore;
beforeEach(async () => {
  store = await SqliteStore.open(':memory:');
  cs = controllerStoreOf(store);
});
afterEach(async () => store.close());

describe('API tokens', () => {
  it('stores only the hash and authenticates the bearer of the token', async () => {
    const { token, record } = await createApiToken(cs, { role: 'operator', name: 'ci' });
    expect(token).toMatch(/^capstan_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    const stored = await cs.getToken(record.id);
    expect(stored?.tokenHash).toBe(hashToken(token));
    expect(JSON.stringify(await cs.listTokens())).not.toContain(token.slice(-43));
    expect(await authenticate(cs, `Bearer ${token}`)).toEqual({ tokenId: record.id, name: 'ci', role: 'operator' });
  });

  it('refuses missing, malformed, forged, revoked and expired tokens', async () => {
    const { token, record } = await createApiToken(cs, { role: 'admin', name: 'root', expiresInMs: 60_000, now: 1_000_000 });
    expect(await authenticate(cs, undefined)).toEqual({ failure: 'missing' });
    expect(await authenticate(cs, 'Basic abc')).toEqual({ failure: 'malformed' });
    expect(await authenticate(cs, `Bearer ${token}x`)).toEqual({ failure: 'malformed' });
    const forged = token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A');
    expect(await authenticate(cs, `Bearer ${forged}`)).toEqual({ failure: 'unknown' });
    expect(await authenticate(cs, `Bearer capstan_${'0'.repeat(16)}_${'A'.repeat(43)}`)).toEqual({ failure: 'unknown' });
    expect(await authenticate(cs, `Bearer ${token}`, 1_000_000 + 60_000)).toEqual({ failure: 'expired' });
    expect(await authenticate(cs, `Bearer ${token}`, 1_000_000 + 59_000)).toMatchObject({ role: 'admin' });
    await cs.revokeToken(record.id);
    expect(await authenticate(cs, `Bearer ${token}`, 1_000_000)).toEqual({ failure: 'revoked' });
  });

  it('orders roles viewer < operator < admin', () => {
    expect(roleAllows('viewer', 'viewer')).toBe(true);
    expect(roleAllows('viewer', 'operator')).toBe(false);
    expect(roleAllows('operator', 'operator')).toBe(true);
    expect(roleAllows('operator', 'admin')).toBe(false);
    expect(roleAllows('admin', 'operator')).toBe(true);
  });
});

describe('RateLimiter', () => {
  it('allows a burst, then the sustained rate, per key', () => {
    let now = 0;
    const limiter = new RateLimiter(60, 3, () => now);
    expect([1, 2, 3, 4].map(() => limiter.take('a'))).toEqual([true, true, true, false]);
    expect(limiter.take('b')).toBe(true);
    now += 1_000;
    expect(limiter.take('a')).toBe(true);
    expect(limiter.take('a')).toBe(false);
  });
});
