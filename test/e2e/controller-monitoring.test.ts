/**
 * The monitoring shipped for running Capstan: alert rules pass `promtool check
 * rules` and their unit tests, the dashboard's queries are valid PromQL, and
 * every capstan_* metric either names is one the controller exports.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ControllerMetrics } from '../../src/server/metrics.js';
import { ROOT } from './harness.js';

const ALERTS = path.join(ROOT, 'monitoring/capstan-alerts.yaml');
const ALERT_TESTS = path.join(ROOT, 'monitoring/capstan-alerts.test.yaml');
const DASHBOARD = path.join(ROOT, 'monitoring/capstan-dashboard.json');

interface Dashboard {
  uid: string;
  panels: { id: number; title: string; targets: { expr: string }[] }[];
}

async function exportedNames(): Promise<Set<string>> {
  const metrics = new ControllerMetrics('test');
  const names = new Set<string>();
  for (const m of await metrics.registry.getMetricsAsJSON()) {
    names.add(m.name);
    if (String(m.type) === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(m.name + suffix);
  }
  return names;
}

function referenced(text: string): string[] {
  return [...new Set(text.match(/\bcapstan_[a-z_]+\b/g) ?? [])];
}

describe('monitoring/', () => {
  it('alert rules pass promtool check rules and promtool test rules', async () => {
    const check = await execa('promtool', ['check', 'rules', ALERTS], { reject: false });
    expect(check.stdout + check.stderr).toMatch(/SUCCESS: \d+ rules found/);
    expect(check.exitCode).toBe(0);
    const test = await execa('promtool', ['test', 'rules', ALERT_TESTS], { reject: false, cwd: path.dirname(ALERT_TESTS) });
    expect(test.stdout + test.stderr).toContain('SUCCESS');
    expect(test.exitCode).toBe(0);
  });

  it('dashboard queries are valid PromQL', async () => {
    const dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8')) as Dashboard;
    expect(dashboard.uid).toBe('capstan-controller');
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr.replaceAll('$job', '.*').replaceAll('$stack', '.*')));
    expect(exprs.length).toBeGreaterThan(8);
    // promtool has no query checker: each query becomes a recording rule, which it parses.
    const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-dash-'));
    try {
      const file = path.join(dir, 'queries.yaml');
      await writeFile(file, stringify({ groups: [{ name: 'dashboard', rules: exprs.map((expr, i) => ({ record: `dashboard:query_${i}`, expr })) }] }));
      const check = await execa('promtool', ['check', 'rules', file], { reject: false });
      expect(check.stdout + check.stderr).toMatch(new RegExp(`SUCCESS: ${exprs.length} rules found`));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('every capstan_* metric the alerts and the dashboard use is exported by the controller', async () => {
    const names = await exportedNames();
    const used = [...referenced(await readFile(ALERTS, 'utf8')), ...referenced(await readFile(DASHBOARD, 'utf8'))];
    expect(used.length).toBeGreaterThan(8);
    expect(used.filter((n) => !names.has(n))).toEqual([]);
  });
});
