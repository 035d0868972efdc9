import { describe, expect, it } from 'vitest';
import { burnRateAlerts, resolveTiers } from './burn-rate.js';
import { formatDecimal } from './decimal.js';

function table(objective: number | string, window: string, overrides?: Parameters<typeof resolveTiers>[0]) {
  const { tiers, problems } = resolveTiers(overrides);
  const result = burnRateAlerts(objective, window, tiers);
  return {
    rows: result.alerts.map((a) => [a.tier, a.severity, a.longWindow, a.shortWindow, formatDecimal(a.factor), formatDecimal(a.threshold)]),
    problems: [...problems, ...result.problems].map((p) => p.message),
  };
}

describe('burn-rate tiers', () => {
  it('match the SRE workbook for a 30-day 99.9% SLO', () => {
    expect(table(99.9, '30d')).toEqual({
      rows: [
        ['page-fast', 'page', '1h', '5m', '14.4', '0.0144'],
        ['page-slow', 'page', '6h', '30m', '6', '0.006'],
        ['ticket-fast', 'ticket', '1d', '2h', '3', '0.003'],
        ['ticket-slow', 'ticket', '3d', '6h', '1', '0.001'],
      ],
      problems: [],
    });
  });

  it('scale the factor for a 28-day window and keep the fractions and windows', () => {
    expect(table(99.9, '28d').rows).toEqual([
      ['page-fast', 'page', '1h', '5m', '13.44', '0.01344'],
      ['page-slow', 'page', '6h', '30m', '5.6', '0.0056'],
      ['ticket-fast', 'ticket', '1d', '2h', '2.8', '0.0028'],
      ['ticket-slow', 'ticket', '3d', '6h', '0.933333333', '0.000933333333'],
    ]);
  });

  it('scale the factor for a 7-day window', () => {
    expect(table('99.5', '7d').rows).toEqual([
      ['page-fast', 'page', '1h', '5m', '3.36', '0.0168'],
      ['page-slow', 'page', '6h', '30m', '1.4', '0.007'],
      ['ticket-fast', 'ticket', '1d', '2h', '0.7', '0.0035'],
      ['ticket-slow', 'ticket', '3d', '6h', '0.233333333', '0.00116666667'],
    ]);
  });

  it('print 99.99% and 99.95% objectives exactly', () => {
    expect(table(99.99, '30d').rows.map((r) => r[5])).toEqual(['0.00144', '0.0006', '0.0003', '0.0001']);
    expect(table(99.95, '30d').rows.map((r) => r[5])).toEqual(['0.0072', '0.003', '0.0015', '0.0005']);
  });

  it('drop disabled tiers and apply overrides', () => {
    const t = table(99.9, '30d', { 'ticket-slow': { enabled: false }, 'ticket-fast': { enabled: false }, 'page-slow': { for: '2m', budgetConsumed: '2.5' } });
    expect(t.rows).toEqual([
      ['page-fast', 'page', '1h', '5m', '14.4', '0.0144'],
      ['page-slow', 'page', '6h', '30m', '3', '0.003'],
    ]);
    const { tiers } = resolveTiers({ 'page-slow': { for: '2m' } });
    expect(tiers['page-slow']?.for).toBe('2m');
  });

  it('add a complete new tier and report an incomplete one', () => {
    const t = table(99.9, '30d', { 'ticket-weekly': { severity: 'ticket', longWindow: '7d', shortWindow: '12h', budgetConsumed: 20 }, half: { severity: 'page' } });
    expect(t.rows.at(-1)).toEqual(['ticket-weekly', 'ticket', '7d', '12h', '0.857142857', '0.000857142857']);
    expect(t.problems).toEqual(['tier half is not a default tier: it needs severity, longWindow, shortWindow and budgetConsumed']);
  });

  it('report windows in the wrong order and tiers that can never fire', () => {
    const t = table(90, '30d', { 'page-fast': { shortWindow: '2h' } });
    expect(t.problems).toContain('tier page-fast: shortWindow 2h must be shorter than longWindow 1h');
    expect(t.problems.some((p) => p.startsWith('tier page-fast can never fire: its threshold 1.44 (14.4 × 0.1)'))).toBe(true);
    expect(table(99.9, '2d').problems).toContain('tier ticket-slow: longWindow 3d is longer than the SLO window 2d');
  });
});
