import { execa } from 'execa';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { Resource } from '../../spec/resource.js';
import { sloRuleFileText, sloTestFileText } from './artifacts.js';
import { dashboardProblems } from './dashboard.js';
import { defaultAlertName, generatedSloTests, leMatcher, renderSloRules, sloSpecSchema, validateSlo, type SloSpec } from './slo.js';
import { sloDashboard } from './slo-dashboard.js';

const PROMTOOL = '/usr/bin/promtool';

function slo(overrides: Record<string, unknown> = {}): SloSpec {
  return sloSpecSchema.parse({
    service: 'api',
    objective: 99.9,
    window: '30d',
    sli: {
      errorQuery: 'sum(rate(http_requests_total{job="api",code=~"5.."}[{{window}}]))',
      totalQuery: 'sum(rate(http_requests_total{job="api"}[{{window}}]))',
    },
    runbook: 'https://runbooks.example.com/api-availability',
    ...overrides,
  });
}

function resource(name: string, spec: SloSpec): Resource<SloSpec> {
  const source = { file: 'slo.yaml', line: 1, col: 1 };
  return { address: `SLO/${name}`, kind: 'SLO', name, target: undefined, dependsOn: [], spec, source, positionOf: () => source };
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'capstan-slo-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function promtool(files: Record<string, string>, args: string[]) {
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
  return execa(PROMTOOL, args, { cwd: dir, reject: false, all: true });
}

describe('SLO rules', () => {
  it('record the error ratio for every window with the window substituted', () => {
    const rules = renderSloRules('api-availability', slo());
    const recordings = rules.groups[0]!.rules;
    expect(recordings.map((r) => ('record' in r ? r.record : ''))).toEqual([
      'slo:sli_error:ratio_rate5m',
      'slo:sli_error:ratio_rate30m',
      'slo:sli_error:ratio_rate1h',
      'slo:sli_error:ratio_rate2h',
      'slo:sli_error:ratio_rate6h',
      'slo:sli_error:ratio_rate1d',
      'slo:sli_error:ratio_rate3d',
      'slo:sli_error:ratio_rate30d',
      'slo:objective:ratio',
      'slo:error_budget:ratio',
      'slo:error_budget_remaining:ratio',
    ]);
    expect(recordings[2]!.expr).toBe('(sum(rate(http_requests_total{job="api",code=~"5.."}[1h])))\n/\n(sum(rate(http_requests_total{job="api"}[1h])))');
    expect(recordings[2]!.labels).toEqual({ slo: 'api-availability', service: 'api' });
    expect(recordings.at(-1)!.expr).toBe('1 - slo:sli_error:ratio_rate30d{slo="api-availability"} / 0.001');
  });

  it('alert per tier with exact thresholds, labels and a runbook', () => {
    const alerts = renderSloRules('api-availability', slo()).groups[1]!.rules;
    expect(alerts).toHaveLength(4);
    expect(alerts[0]).toEqual({
      alert: 'ApiAvailabilityErrorBudgetBurn',
      expr: 'slo:sli_error:ratio_rate1h{slo="api-availability"} > 0.0144\nand\nslo:sli_error:ratio_rate5m{slo="api-availability"} > 0.0144',
      labels: { slo: 'api-availability', severity: 'page', tier: 'page-fast', long_window: '1h', short_window: '5m', burn_rate: '14.4' },
      annotations: expect.objectContaining({ runbook_url: 'https://runbooks.example.com/api-availability' }) as unknown,
    });
    expect(alerts.map((a) => ('alert' in a ? a.labels?.['severity'] : ''))).toEqual(['page', 'page', 'ticket', 'ticket']);
    expect(sloRuleFileText('api-availability', slo())).not.toMatch(/\d\.\d*0{5,}[1-9]|9{6,}/);
  });

  it('leave disabled tiers out, and the whole alert group when every tier is off', () => {
    const some = renderSloRules('x', slo({ burnRateAlerts: { 'ticket-slow': { enabled: false }, 'page-slow': { enabled: false } } }));
    expect(some.groups[1]!.rules.map((r) => ('alert' in r ? r.labels?.['tier'] : ''))).toEqual(['page-fast', 'ticket-fast']);
    expect(some.groups[0]!.rules.map((r) => ('record' in r ? r.record : '')).filter((n) => n.includes('rate6h'))).toEqual([]);
    const none = { 'page-fast': { enabled: false }, 'page-slow': { enabled: false }, 'ticket-fast': { enabled: false }, 'ticket-slow': { enabled: false } };
    expect(renderSloRules('x', slo({ burnRateAlerts: none })).groups).toHaveLength(1);
    expect(generatedSloTests('x', slo({ burnRateAlerts: none }), 'r.yml')).toBeUndefined();
  });

  it('build a latency SLI from histogram buckets, tolerant of how clients spell le', () => {
    const spec = slo({ sli: { latency: { metric: 'http_request_duration_seconds', threshold: 0.3, matchers: 'job="api"' } } });
    const expr = renderSloRules('lat', spec).groups[0]!.rules[0]!.expr;
    expect(expr).toBe(
      '(sum(rate(http_request_duration_seconds_count{job="api"}[5m])) - sum(rate(http_request_duration_seconds_bucket{job="api",le=~"0\\\\.30*"}[5m])))\n/\nsum(rate(http_request_duration_seconds_count{job="api"}[5m]))',
    );
    expect(leMatcher(1)).toBe('le=~"1(\\\\.0+)?"');
  });

  it('validate placeholders, runbooks, reserved labels and impossible tiers', () => {
    const bad = slo({ sli: { errorQuery: 'sum(rate(errors[5m]))', totalQuery: 'sum(rate(total[{{ window }}]))' }, runbook: undefined, labels: { severity: 'x', team: 'a' } });
    const messages = validateSlo(resource('bad', bad)).map((d) => `${d.severity}: ${d.summary}`);
    expect(messages).toEqual([
      'error: sli.errorQuery has no {{window}} placeholder',
      'error: an SLO needs a runbook URL for its alerts',
      'error: label severity is set by Capstan on SLO alerts',
    ]);
    const low = validateSlo(resource('low', slo({ objective: 90 })));
    expect(low.map((d) => d.severity)).toEqual(['warning']);
    expect(low[0]!.summary).toMatch(/page-fast can never fire/);
    expect(validateSlo(resource('ok', slo({ runbook: undefined, runbookWaiver: 'tracked on the team board' })))).toEqual([]);
    expect(sloSpecSchema.safeParse({ ...slo(), objective: 100 }).success).toBe(false);
  });

  it('warn, at the window, when a tier\'s burn factor is below 1 (7d window, default tiers), and at the tier when it is overridden', () => {
    const positions = (path: readonly (string | number)[]) => ({ file: 'slo.yaml', line: 10 + path.length, col: path.length === 2 ? 3 : 5 });
    const weekly = { ...resource('weekly', slo({ window: '7d' })), positionOf: (p: readonly (string | number)[]) => ({ ...positions(p), col: p.join('.').length }) };
    const found = validateSlo(weekly);
    expect(found.map((d) => [d.severity, d.summary, d.source])).toEqual([
      ['warning', 'tier ticket-fast has a burn factor of 0.7, below 1: with a 7d window it alerts while the SLO is met', weekly.positionOf(['spec', 'window'])],
      ['warning', 'tier ticket-slow has a burn factor of 0.233333333, below 1: with a 7d window it alerts while the SLO is met', weekly.positionOf(['spec', 'window'])],
    ]);
    expect(found[1]!.detail).toMatch(/raise its budgetConsumed to about 42\.857\d*% or disable it/);
    // Fixed by the user: a bigger share of the budget for the slow tiers, or the tier disabled.
    const fixed = slo({ window: '7d', burnRateAlerts: { 'ticket-fast': { budgetConsumed: 15 }, 'ticket-slow': { enabled: false } } });
    expect(validateSlo(resource('weekly', fixed))).toEqual([]);
    const tuned = { ...resource('tuned', slo({ burnRateAlerts: { 'ticket-slow': { longWindow: '3d', budgetConsumed: 5 } } })), positionOf: positions };
    expect(validateSlo(tuned).map((d) => [d.summary, d.source])).toEqual([
      ['tier ticket-slow has a burn factor of 0.5, below 1: with a 30d window it alerts while the SLO is met', positions(['spec', 'burnRateAlerts', 'ticket-slow'])],
    ]);
  });

  it('name alerts after the SLO', () => {
    expect(defaultAlertName('api-availability')).toBe('ApiAvailabilityErrorBudgetBurn');
    expect(defaultAlertName('checkout.v2_latency')).toBe('CheckoutV2LatencyErrorBudgetBurn');
    expect(defaultAlertName('5xx')).toBe('Slo5xxErrorBudgetBurn');
  });

  it('come with a valid dashboard: SLI, budget remaining, burn rates', () => {
    const dash = sloDashboard('api-availability', slo());
    expect(dashboardProblems(dash)).toEqual([]);
    const panels = dash['panels'] as { title: string; targets?: { expr: string }[] }[];
    expect(panels.map((p) => p.title)).toEqual([
      'SLI over 30d (objective 99.9%)',
      'Error budget remaining (30d)',
      'Error budget remaining over time',
      'SLI: good events ratio',
      'Burn rate (1 = budget spent exactly over the window)',
    ]);
    expect(panels[4]!.targets!.map((t) => t.expr)).toContain('slo:sli_error:ratio_rate1h{slo="api-availability"} / 0.001');
  });

  it('draw burn-rate thresholds in ascending order, tickets below pages, as dashed lines', () => {
    const burn = (sloDashboard('api-availability', slo())['panels'] as Record<string, unknown>[])[4]!;
    expect(burn['fieldConfig']).toMatchObject({
      defaults: {
        thresholds: {
          mode: 'absolute',
          steps: [
            { value: null, color: 'green' },
            { value: 1, color: 'orange' },
            { value: 3, color: 'orange' },
            { value: 6, color: 'red' },
            { value: 14.4, color: 'red' },
          ],
        },
        custom: { thresholdsStyle: { mode: 'dashed' } },
      },
    });
    // A factor a page and a ticket tier share is drawn as a page.
    const shared = slo({ burnRateAlerts: { 'ticket-fast': { longWindow: '6h', shortWindow: '30m', budgetConsumed: 5 } } });
    const steps = (((sloDashboard('x', shared)['panels'] as Record<string, unknown>[])[4]!['fieldConfig'] as Record<string, Record<string, Record<string, unknown>>>)['defaults']!['thresholds']!['steps']) as unknown[];
    expect(steps).toEqual([{ value: null, color: 'green' }, { value: 1, color: 'orange' }, { value: 6, color: 'red' }, { value: 14.4, color: 'red' }]);
  });
});

describe('generated SLO tests under the real promtool', () => {
  it('a 2% error ratio fires the page alerts and 0.05% fires nothing (30d, 99.9%)', async () => {
    const test = parse(sloTestFileText('api-availability', slo(), 'rules.yml')!) as {
      tests: { name: string; alert_rule_test: { exp_alerts: { exp_labels: Record<string, string> }[] }[] }[];
    };
    const byName = new Map(test.tests.map((t) => [t.name.replace(/^SLO api-availability: /, ''), t.alert_rule_test[0]!.exp_alerts.map((a) => a.exp_labels['tier'])]));
    expect(byName.get('error ratio 2%: every tier whose threshold is below it fires')).toEqual(['page-fast', 'page-slow', 'ticket-fast', 'ticket-slow']);
    expect(byName.get('error ratio 0.05%: nothing fires')).toEqual([]);
    expect(byName.get('error ratio 0.606%, just above the 0.006 threshold')).toEqual(['page-slow', 'ticket-fast', 'ticket-slow']);
    expect(byName.get('error ratio 2% in the long windows but 0 in the 5m/30m short windows: no page')).toEqual(['ticket-fast', 'ticket-slow']);

    const res = await promtool(
      { 'rules.yml': sloRuleFileText('api-availability', slo()), 'slo.test.yml': sloTestFileText('api-availability', slo(), 'rules.yml')! },
      ['test', 'rules', 'slo.test.yml'],
    );
    expect(res.all).toContain('SUCCESS');
    expect(res.exitCode).toBe(0);
  });

  it('pass for 28d/7d windows, a latency SLI and custom tiers', async () => {
    const specs: [string, SloSpec][] = [
      ['lat', slo({ window: '28d', objective: '99.5', sli: { latency: { metric: 'http_request_duration_seconds', threshold: 0.3 } } })],
      ['weekly', slo({ window: '7d', objective: 99, burnRateAlerts: { 'ticket-slow': { enabled: false }, 'page-fast': { for: '30m' } } })],
    ];
    for (const [name, spec] of specs) {
      const res = await promtool({ [`${name}.yml`]: sloRuleFileText(name, spec), [`${name}.test.yml`]: sloTestFileText(name, spec, `${name}.yml`)! }, [
        'test',
        'rules',
        `${name}.test.yml`,
      ]);
      // A tier with `for: 30m` does not fire at once: the generated tests must know that.
      expect({ name, code: res.exitCode, out: res.exitCode === 0 ? '' : res.all }).toEqual({ name, code: 0, out: '' });
    }
  });

  it('fail when the rules do not do what the tests expect', async () => {
    const rules = sloRuleFileText('api-availability', slo()).replace('> 0.0144\nand', '> 0.0244\nand').replace(/> 0\.0144$/m, '> 0.0244');
    const res = await promtool({ 'broken.yml': rules, 'broken.test.yml': sloTestFileText('api-availability', slo(), 'broken.yml')! }, ['test', 'rules', 'broken.test.yml']);
    expect(res.exitCode).not.toBe(0);
    expect(res.all).toMatch(/FAILED/);
  });

  it('pass promtool check rules', async () => {
    const res = await promtool({ 'check.yml': sloRuleFileText('api-availability', slo()) }, ['check', 'rules', 'check.yml']);
    expect(res.all).toContain('SUCCESS: 15 rules found');
  });
});
