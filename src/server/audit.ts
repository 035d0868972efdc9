/**
 * The controller's audit log, as the server writes it: who did what, from
 * where, with which outcome, for every mutating API call of an authenticated
 * caller (refused ones included) and every accepted webhook push.
 *
 * What is never written: requests without a valid token and requests to no
 * route. Anyone can send those, so storing them would let anyone fill the
 * store; they are counted in `capstan_http_rejected_total{reason}` and logged
 * at a bounded rate instead (see `rejectedRequests` in app.ts).
 *
 * Every stored field is bounded: actor, action, target and outcome to
 * `AUDIT_LIMITS.fieldBytes` (UTF-8), the detail's JSON to
 * `AUDIT_LIMITS.detailBytes` (replaced by `{ truncated: true, bytes, preview }`
 * above that). Retention (`audit: { retention, maxRows }` in the serve
 * config) is enforced at start and every `AUDIT_PRUNE_INTERVAL_MS`.
 */
import type { Logger } from 'pino';
import type { AuditInput, ControllerStore } from '../state/store.js';

export const AUDIT_LIMITS = { fieldBytes: 256, detailBytes: 4096 } as const;
export const AUDIT_PRUNE_INTERVAL_MS = 60 * 60_000;

export interface AuditRetention {
  /** Entries older than this are deleted; null keeps them by age. */
  readonly retentionMs: number | null;
  /** Only the newest this many are kept; null: no row cap. */
  readonly maxRows: number | null;
}

/** `text` cut to at most `bytes` bytes of UTF-8 (never inside a character), with `…` when cut. */
export function truncateUtf8(text: string, bytes: number): string {
  if (Buffer.byteLength(text, 'utf8') <= bytes) return text;
  const budget = bytes - Buffer.byteLength('…', 'utf8');
  let out = '';
  let used = 0;
  for (const ch of text) {
    const n = Buffer.byteLength(ch, 'utf8');
    if (used + n > budget) break;
    out += ch;
    used += n;
  }
  return out + '…';
}

/** The entry as it may be stored: every field within `AUDIT_LIMITS`. */
export function boundedAuditEntry(entry: AuditInput): AuditInput {
  const field = (v: string): string => truncateUtf8(v, AUDIT_LIMITS.fieldBytes);
  let detail = entry.detail ?? null;
  const json = JSON.stringify(detail) ?? 'null';
  const bytes = Buffer.byteLength(json, 'utf8');
  if (bytes > AUDIT_LIMITS.detailBytes) detail = { truncated: true, bytes, preview: truncateUtf8(json, AUDIT_LIMITS.detailBytes - 128) };
  return {
    actor: field(entry.actor),
    role: entry.role,
    action: field(entry.action),
    target: entry.target === null ? null : field(entry.target),
    detail,
    ip: entry.ip === null ? null : field(entry.ip),
    outcome: field(entry.outcome),
  };
}

/** Applies the retention once; returns how many entries went. */
export async function pruneAuditLog(cs: ControllerStore, retention: AuditRetention, now: number = Date.now()): Promise<number> {
  if (retention.retentionMs === null && retention.maxRows === null) return 0;
  return cs.pruneAudit({
    before: retention.retentionMs === null ? undefined : new Date(now - retention.retentionMs).toISOString(),
    keepRows: retention.maxRows ?? undefined,
  });
}

/** Prunes now and every `intervalMs` until the returned function is called. A failed prune is logged and retried next time. */
export function scheduleAuditRetention(cs: ControllerStore, retention: AuditRetention, logger: Logger, intervalMs = AUDIT_PRUNE_INTERVAL_MS): () => void {
  const run = (): void => {
    pruneAuditLog(cs, retention).then(
      (deleted) => {
        if (deleted > 0) logger.info({ deleted, ...retention }, 'audit log: old entries deleted (retention)');
      },
      (err: unknown) => logger.warn({ err }, 'audit log: retention could not run; trying again later'),
    );
  };
  run();
  const timer = setInterval(run, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
