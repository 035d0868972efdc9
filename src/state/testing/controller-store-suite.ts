/**
 * The conformance suite of the controller's store extension: every store that
 * offers `controllerStore()` runs it with one call,
 * `runControllerStoreSuite('SqliteStore', makeStore)`.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { controllerStoreOf, type ControllerStore } from '../store.js';
import type { StoreUnderTest } from './store-suite.js';

export function runControllerStoreSuite(name: string, makeStore: () => Promise<StoreUnderTest>): void {
  describe(`${name}: controller extension`, () => {
    let under: StoreUnderTest;
    let cs: ControllerStore;
    beforeEach(async () => {
      under = await makeStore();
      cs = controllerStoreOf(under.store);
    });
    afterEach(async () => {
      await under.cleanup();
    });

    it('stores tokens by id with their hash, lists them without it, and revokes once', async () => {
      const created = await cs.createToken({ id: 'a1b2c3d4', name: 'ci', role: 'operator', tokenHash: 'h1', expiresAt: null });
      expect(created).toMatchObject({ id: 'a1b2c3d4', name: 'ci', role: 'operator', expiresAt: null, revokedAt: null });
      expect(await cs.getToken('a1b2c3d4')).toMatchObject({ tokenHash: 'h1', role: 'operator' });
      expect(await cs.getToken('nope')).toBeUndefined();
      const listed = await cs.listTokens();
      expect(listed).toHaveLength(1);
      expect(listed[0]).not.toHaveProperty('tokenHash');
      expect(await cs.revokeToken('a1b2c3d4')).toBe(true);
      expect(await cs.revokeToken('a1b2c3d4')).toBe(false);
      expect((await cs.getToken('a1b2c3d4'))?.revokedAt).toMatch(/^\d{4}-/);
    });

    it('refuses a role outside the closed set', async () => {
      await expect(cs.createToken({ id: 'x', name: 'x', role: 'root' as never, tokenHash: 'h', expiresAt: null })).rejects.toThrow();
    });

    it('appends audit entries and lists them newest first, paged', async () => {
      for (let i = 0; i < 5; i++) {
        await cs.appendAudit({ actor: 'ci (a1)', role: 'operator', action: 'stack.sync', target: `s${i}`, detail: { i }, ip: '127.0.0.1', outcome: 'ok' });
      }
      const page = await cs.listAudit({ limit: 3 });
      expect(page.map((e) => e.target)).toEqual(['s4', 's3', 's2']);
      expect(page[0]).toMatchObject({ actor: 'ci (a1)', role: 'operator', detail: { i: 4 }, ip: '127.0.0.1' });
      const next = await cs.listAudit({ limit: 3, beforeId: page[2]!.id });
      expect(next.map((e) => e.target)).toEqual(['s1', 's0']);
    });

    it('prunes the audit log by age and by row count', async () => {
      for (let i = 0; i < 5; i++) await cs.appendAudit({ actor: 'ci (a1)', role: 'operator', action: 'stack.sync', target: `s${i}`, detail: null, ip: null, outcome: 'ok' });
      expect(await cs.pruneAudit({ keepRows: 10 })).toBe(0);
      expect(await cs.pruneAudit({ keepRows: 3 })).toBe(2);
      expect((await cs.listAudit({ limit: 10 })).map((e) => e.target)).toEqual(['s4', 's3', 's2']);
      expect(await cs.pruneAudit({ before: '2000-01-01T00:00:00.000Z' })).toBe(0);
      expect(await cs.pruneAudit({ before: new Date(Date.now() + 60_000).toISOString() })).toBe(3);
      expect(await cs.listAudit({ limit: 10 })).toEqual([]);
    });

    it('creates and patches stack status, leaving fields not in the patch alone', async () => {
      expect(await cs.getStackStatus('prod')).toBeUndefined();
      const first = await cs.updateStackStatus('prod', { status: 'synced', headCommit: 'c1', lastAppliedCommit: 'c1', drifted: 0 });
      expect(first).toMatchObject({ stack: 'prod', status: 'synced', headCommit: 'c1', lastAppliedCommit: 'c1', rollback: null, syncRequests: 0 });
      const second = await cs.updateStackStatus('prod', { headCommit: 'c2', rollback: { commit: 'c0', head: 'c2' } });
      expect(second).toMatchObject({ status: 'synced', headCommit: 'c2', lastAppliedCommit: 'c1', rollback: { commit: 'c0', head: 'c2' } });
      const cleared = await cs.updateStackStatus('prod', { rollback: null, error: null });
      expect(cleared.rollback).toBeNull();
      expect(cleared.paused).toBeNull();
      const paused = await cs.updateStackStatus('prod', { paused: { by: 'olga', at: '2026-01-01T00:00:00.000Z' } });
      expect(paused).toMatchObject({ status: 'synced', paused: { by: 'olga', at: '2026-01-01T00:00:00.000Z' } });
      expect((await cs.getStackStatus('prod'))?.paused).toEqual({ by: 'olga', at: '2026-01-01T00:00:00.000Z' });
      expect((await cs.updateStackStatus('prod', { paused: null })).paused).toBeNull();
      expect(await cs.requestSync('prod')).toBe(1);
      expect(await cs.requestSync('prod')).toBe(2);
      expect(await cs.requestSync('other')).toBe(1);
      expect((await cs.listStackStatus()).map((s) => [s.stack, s.syncRequests])).toEqual([
        ['other', 1],
        ['prod', 2],
      ]);
    });

    it('keeps one current plan per stack and moves it between states only from the expected state', async () => {
      const base = { stack: 'prod', text: 'Plan: 1 to create', commit: 'c1', specHash: 'sha256:x', createdAt: new Date().toISOString() };
      await cs.putPlan({ ...base, id: 'p1', state: 'pending', plan: { changes: [{ address: 'File/a', action: 'create' }] } });
      expect(await cs.transitionPlan('prod', 'pending', 'approved', { id: 'other' })).toBeUndefined();
      const approved = await cs.transitionPlan('prod', 'pending', 'approved', { id: 'p1', by: 'alice' });
      expect(approved).toMatchObject({ id: 'p1', state: 'approved', decidedBy: 'alice', plan: { changes: [{ address: 'File/a' }] } });
      expect(await cs.transitionPlan('prod', 'pending', 'approved')).toBeUndefined();
      await cs.putPlan({ ...base, id: 'p2', state: 'pending', plan: {} });
      expect(await cs.getPlan('prod')).toMatchObject({ id: 'p2', state: 'pending', decidedBy: null, decidedAt: null });
      expect(await cs.getPlan('nope')).toBeUndefined();
    });

    it('remembers webhook deliveries and forgets them after keepMs', async () => {
      expect(await cs.rememberDelivery('github', 'd1', 60_000)).toBe(true);
      expect(await cs.rememberDelivery('github', 'd1', 60_000)).toBe(false);
      expect(await cs.rememberDelivery('gitlab', 'd1', 60_000)).toBe(true);
      await new Promise((r) => setTimeout(r, 5));
      // Kept for 1 ms only: the earlier one is forgotten and counts as new.
      expect(await cs.rememberDelivery('github', 'd1', 1)).toBe(true);
    });
  });
}
