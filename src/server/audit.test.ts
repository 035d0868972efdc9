import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../state/sqlite/sqlite-store.js';
import { controllerStoreOf, type ControllerStore } from '../state/store.js';
import { AUDIT_LIMITS, boundedAuditEntry, pruneAuditLog, scheduleAuditRetention, truncateUtf8 } from './audit.js';

describe('audit entries are bounded', () => {
  it('cuts actor, action, target, ip and outcome to 256 bytes of UTF-8, never inside a character', () => {
    const long = 'ü'.repeat(1000);
    const e = boundedAuditEntry({ actor: long, role: 'admin', action: `POST ${long}`, target: long, detail: null, ip: long, outcome: long });
    for (const v of [e.actor, e.action, e.target!, e.ip!, e.outcome]) {
      expect(Buffer.byteLength(v, 'utf8')).toBeLessThanOrEqual(AUDIT_LIMITS.fieldBytes);
      expect(v.endsWith('…')).toBe(true);
      expect(v).not.toContain('\uFFFD');
    }
    expect(truncateUtf8('short', 256)).toBe('short');
  });

  it('replaces a detail over 4 KiB of JSON by its size and a preview', () => {
    const e = boundedAuditEntry({ actor: 'a', role: null, action: 'x', target: null, detail: { blob: 'y'.repeat(10_000) }, ip: null, outcome: 'ok' });
    expect(e.detail).toMatchObject({ truncated: true, bytes: 10_011, preview: expect.stringMatching(/^\{"blob":"yyy/) });
    expect(Buffer.byteLength(JSON.stringify(e.detail), 'utf8')).toBeLessThanOrEqual(AUDIT_LIMITS.detailBytes);
    const small = { a: 1 };
    expect(boundedAuditEntry({ actor: 'a', role: null, action: 'x', target: null, detail: small, ip: null, outcome: 'ok' }).detail).toBe(small);
  });
});

describe('audit retention', () => {
  let store: SqliteStore;
  let cs: ControllerStore;
  beforeEach(async () => {
    store = await SqliteStore.open(':memory:');
    cs = controllerStoreOf(store);
    for (let i = 0; i < 6; i++) await cs.appendAudit({ actor: 'ci', role: 'operator', action: 'stack.sync', target: `s${i}`, detail: null, ip: null, outcome: 'ok' });
  });
  afterEach(async () => {
    await store.close();
  });

  it('keeps the newest maxRows, deletes what is older than retention, and does nothing when both are off', async () => {
    expect(await pruneAuditLog(cs, { retentionMs: null, maxRows: null })).toBe(0);
    expect(await pruneAuditLog(cs, { retentionMs: null, maxRows: 4 })).toBe(2);
    expect((await cs.listAudit({ limit: 10 })).map((e) => e.target)).toEqual(['s5', 's4', 's3', 's2']);
    expect(await pruneAuditLog(cs, { retentionMs: 86_400_000, maxRows: null })).toBe(0);
    // A day later, everything is older than a day.
    expect(await pruneAuditLog(cs, { retentionMs: 86_400_000, maxRows: null }, Date.now() + 86_400_000 + 1_000)).toBe(4);
  });

  it('is applied when scheduled, at once', async () => {
    const stop = scheduleAuditRetention(cs, { retentionMs: null, maxRows: 1 }, pino({ level: 'silent' }), 60_000);
    try {
      for (let i = 0; i < 100 && (await cs.listAudit({ limit: 10 })).length > 1; i++) await new Promise((r) => setTimeout(r, 5));
      expect((await cs.listAudit({ limit: 10 })).map((e) => e.target)).toEqual(['s5']);
    } finally {
      stop();
    }
  });
});
