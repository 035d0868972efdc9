/**
 * API tokens: `capstan_<id>_<secret>`, 256 bits of randomness in the secret.
 * The store keeps the id, the role and sha256 of the whole token, never the
 * token; a presented token is looked up by its id and its hash compared in
 * constant time. Roles are ordered: viewer < operator < admin.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ApiTokenRecord, ControllerStore, Role } from '../state/store.js';

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };
const TOKEN = /^capstan_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

/** How a token is made, for the messages that refuse a request or ask for a token (the 401 answer, the UI). */
export const MAKE_A_TOKEN = 'capstan token create --config <serve config> --role viewer';

export interface Principal {
  readonly tokenId: string;
  readonly name: string;
  readonly role: Role;
}

export function roleAllows(role: Role, required: Role): boolean {
  return RANK[role] >= RANK[required];
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export interface NewToken {
  /** Shown once: only its hash is stored. */
  readonly token: string;
  readonly record: ApiTokenRecord;
}

export async function createApiToken(
  store: ControllerStore,
  input: { role: Role; name: string; expiresInMs?: number | undefined; now?: number },
): Promise<NewToken> {
  const id = randomBytes(8).toString('hex');
  const token = `capstan_${id}_${randomBytes(32).toString('base64url')}`;
  const now = input.now ?? Date.now();
  const expiresAt = input.expiresInMs === undefined ? null : new Date(now + input.expiresInMs).toISOString();
  const record = await store.createToken({ id, name: input.name, role: input.role, tokenHash: hashToken(token), expiresAt });
  return { token, record };
}

export type AuthFailure = 'missing' | 'malformed' | 'unknown' | 'revoked' | 'expired';

/** The principal of an `Authorization: Bearer` header, or why there is none. */
export async function authenticate(
  store: ControllerStore,
  header: string | undefined,
  now: number = Date.now(),
): Promise<Principal | { failure: AuthFailure }> {
  if (!header) return { failure: 'missing' };
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  const token = m?.[1];
  const parts = token ? TOKEN.exec(token) : null;
  if (!token || !parts) return { failure: 'malformed' };
  const record = await store.getToken(parts[1]!);
  // Compare against a hash even when the id is unknown, so both paths cost the same.
  const expected = Buffer.from(record?.tokenHash ?? hashToken('capstan-no-such-token'), 'hex');
  const presented = Buffer.from(hashToken(token), 'hex');
  const matches = expected.length === presented.length && timingSafeEqual(expected, presented);
  if (!record || !matches) return { failure: 'unknown' };
  if (record.revokedAt !== null) return { failure: 'revoked' };
  if (record.expiresAt !== null && Date.parse(record.expiresAt) <= now) return { failure: 'expired' };
  return { tokenId: record.id, name: record.name, role: record.role };
}
