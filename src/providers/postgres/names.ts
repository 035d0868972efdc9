/**
 * Names of PostgreSQL objects as a spec writes them. Every name is sent quoted
 * (`client.escapeIdentifier`), so case and punctuation are kept exactly; the
 * schema still refuses names PostgreSQL would truncate (more than 63 bytes),
 * reserved role names, and characters that make a name hard to type safely.
 */
import { z } from 'zod';

export const MAX_IDENTIFIER_BYTES = 63;
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_$.-]*$/;
const IDENTIFIER_HINT = 'letters, digits, "_", "$", ".", "-", starting with a letter or "_"';

/** A database, schema, extension or role name. */
export function identifierSchema(what: string) {
  return z
    .string({ error: `${what} must be a string` })
    .min(1, { error: `${what} must not be empty` })
    .regex(IDENTIFIER, { error: `${what} must be a PostgreSQL name: ${IDENTIFIER_HINT}` })
    .refine((s) => Buffer.byteLength(s, 'utf8') <= MAX_IDENTIFIER_BYTES, {
      error: `${what} must be at most ${MAX_IDENTIFIER_BYTES} bytes (PostgreSQL would truncate it)`,
    });
}

// Names the grammar reserves for roles, and the prefix PostgreSQL keeps for its own roles.
const RESERVED_ROLES = new Set(['public', 'none', 'current_user', 'session_user', 'current_role']);

/** A role name: an identifier that is not reserved and does not start with `pg_`. */
export function roleNameSchema(what: string) {
  return identifierSchema(what)
    .refine((s) => !RESERVED_ROLES.has(s.toLowerCase()), { error: `${what} must not be a reserved role name (public, none, current_user, session_user, current_role)` })
    .refine((s) => !s.toLowerCase().startsWith('pg_'), { error: `${what} must not start with "pg_" (reserved for PostgreSQL's own roles)` });
}

/** `deletionProtection`: dropping the object (or replacing it) is refused unless it is false. */
export const deletionProtectionSchema = z
  .boolean({ error: 'deletionProtection must be true or false' })
  .default(true)
  .meta({ description: 'While true, a plan that drops (or replaces) this object is refused: set it to false first, in its own change.', examples: [false] });
