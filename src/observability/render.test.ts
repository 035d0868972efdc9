import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { DiagnosticsError } from '../diag/diagnostic.js';
import { alertingSpecSchema } from '../providers/observability/alerting.js';
import { alertRulesSpecSchema } from '../providers/observability/alert-rules.js';
import { alertTestSpecSchema } from '../providers/observability/alert-test.js';
import { dashboardSpecSchema } from '../providers/observability/dashboard.js';
import { sloSpecSchema } from '../providers/observability/slo.js';
import type { Resource } from '../spec/resource.js';
import { runAlertTests } from './alert-tests.js';
import { renderArtifacts, renderFiles } from './render.js';

function res(kind: string, name: string, spec: unknown, target = 'Host/mon'): Resource {
  const source = { file: `${name}.yaml`, line: 1, col: 1 };
  return { address: `${kind}/${name}`, kind, name, target, dependsOn: [], spec, source, positionOf: () => source };
}

export const sloSpec = sloSpecSchema.parse({
  service: 'api',
  objective: 99.9,
  window: '30d',
  sli: {
    errorQuery: 'sum(rate(http_requests_total{job="api",code=~"5.."}[{{window}}]))',
    totalQuery: 'sum(rate(http_requests_total{job="api"}[{{window}}]))',
  },
  runbook: 'https://runbooks.example.com/api-availability',
});

const rules = alertRulesSpecSchema.parse({
  groups: [
    {
      name: 'api',
      rules: [{ alert: 'ApiDown', expr: 'up{job="api"} == 0', for: '2m', labels: { severity: 'page', service: 'api' }, annotations: { summary: 'api is down', runbook_url: 'https://runbooks.example.com/api-down' } }],
    },
  ],
});

const apiDownTest = (expectFiring: boolean) =>
  alertTestSpecSchema.parse({
    rules: ['AlertRules/api'],
    tests: [
      {
        interval: '1m',
        input_series: [{ series: 'up{job="api",instance="a:80"}', values: '0x10' }],
        alert_rule_test: [
          {
            eval_time: '5m',
            alertname: 'ApiDown',
            exp_alerts: expectFiring
              ? [
                  {
                    exp_labels: { severity: 'page', service: 'api', job: 'api', instance: 'a:80' },
                    exp_annotations: { summary: 'api is down', runbook_url: 'https://runbooks.example.com/api-down' },
                  },
                ]
              : [],
          },
        ],
      },
    ],
  });

const resources = (): Resource[] => [
  res('Host', 'mon', { transport: 'local' }, undefined as unknown as string),
  res('SLO', 'api-availability', sloSpec),
  res('SLO', 'api-availability', sloSpec, 'Host/mon-2'),
  res('AlertRules', 'api', rules),
  res('AlertTest', 'api-down', apiDownTest(true)),
  res('Alerting', 'oncall', alertingSpecSchema.parse({ defaultTeam: 'sre', teams: [{ name: 'sre', webhook: { url: 'http://127.0.0.1:9/x' } }], routes: [{ services: 'api', team: 'sre' }] })),
  res('Dashboard', 'api-overview', dashboardSpecSchema.parse({ title: 'API', datasource: 'prometheus', panels: [{ title: 'up', targets: [{ expr: 'up' }] }] })),
];

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'capstan-render-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('renderArtifacts', () => {
  it('writes every artefact once per resource name', async () => {
    const out = join(dir, 'out');
    const written = await renderArtifacts(resources(), out);
    expect(written.map((p) => relative(out, p))).toEqual([
      'alertmanager/oncall/alertmanager.yml',
      'grafana/dashboards/api-overview/api-overview.json',
      'grafana/dashboards/slo-api-availability/slo-api-availability.json',
      'grafana/provisioning/dashboards/capstan-api-overview.yaml',
      'grafana/provisioning/dashboards/capstan-slo-api-availability.yaml',
      'prometheus/rules/capstan-alertrules-api.yml',
      'prometheus/rules/capstan-slo-api-availability.yml',
      'prometheus/tests/alerttest-api-down.test.yml',
      'prometheus/tests/slo-api-availability.test.yml',
    ]);
    const test = parse(await readFile(join(out, 'prometheus/tests/alerttest-api-down.test.yml'), 'utf8')) as { rule_files: string[] };
    expect(test.rule_files).toEqual(['../rules/capstan-alertrules-api.yml']);
    const slo = await readFile(join(out, 'prometheus/rules/capstan-slo-api-availability.yml'), 'utf8');
    expect(slo).toContain('> 0.0144');
    expect(slo).toContain('runbook_url: https://runbooks.example.com/api-availability');
  });

  it('refuses an AlertTest naming a rule resource that does not exist', () => {
    const broken = [...resources(), res('AlertTest', 'orphan', alertTestSpecSchema.parse({ rules: ['SLO/nope'], tests: [{ input_series: [] }] }))];
    expect(() => renderFiles(broken)).toThrow(DiagnosticsError);
    expect(() => renderFiles(broken)).toThrow(/orphan.*SLO\/nope/);
  });

  it('refuses a Dashboard named slo-X beside SLO/X, and two dashboards with one uid, naming both', () => {
    const dashboard = (name: string, extra: Record<string, unknown> = {}) =>
      res('Dashboard', name, dashboardSpecSchema.parse({ title: name, datasource: 'prometheus', panels: [{ title: 'up', targets: [{ expr: 'up' }] }], ...extra }));
    const clash = [...resources(), dashboard('slo-api-availability'), dashboard('team-a', { uid: 'shared' }), dashboard('team-b', { uid: 'shared' })];
    let thrown: unknown;
    try {
      renderFiles(clash);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(DiagnosticsError);
    expect((thrown as DiagnosticsError).diagnostics.map((d) => `${d.source?.file}: ${d.summary}`)).toEqual([
      'api-availability.yaml: SLO/api-availability and Dashboard/slo-api-availability (slo-api-availability.yaml:1:1) both render grafana/provisioning/dashboards/capstan-slo-api-availability.yaml',
      'slo-api-availability.yaml: Dashboard/slo-api-availability and SLO/api-availability (api-availability.yaml:1:1) both render grafana/provisioning/dashboards/capstan-slo-api-availability.yaml',
      'api-availability.yaml: SLO/api-availability and Dashboard/slo-api-availability (slo-api-availability.yaml:1:1) both render dashboard uid slo-api-availability',
      'slo-api-availability.yaml: Dashboard/slo-api-availability and SLO/api-availability (api-availability.yaml:1:1) both render dashboard uid slo-api-availability',
      'team-a.yaml: Dashboard/team-a and Dashboard/team-b (team-b.yaml:1:1) both render dashboard uid shared',
      'team-b.yaml: Dashboard/team-b and Dashboard/team-a (team-a.yaml:1:1) both render dashboard uid shared',
    ]);
  });

  it('renders nothing for a spec without observability resources', () => {
    expect(renderFiles([res('Host', 'h', { transport: 'local' })])).toEqual([]);
  });
});

describe('runAlertTests (real promtool)', () => {
  it('checks every rule file and runs generated and hand-written tests', async () => {
    const result = await runAlertTests(resources(), join(dir, 'pass'), { promtool: '/usr/bin/promtool', amtool: '/usr/bin/amtool' });
    expect(result.output).toBe(
      [
        'PASS promtool check rules prometheus/rules/capstan-alertrules-api.yml',
        'PASS promtool check rules prometheus/rules/capstan-slo-api-availability.yml',
        'PASS promtool test rules prometheus/tests/alerttest-api-down.test.yml',
        'PASS promtool test rules prometheus/tests/slo-api-availability.test.yml',
        'PASS amtool check-config alertmanager/oncall/alertmanager.yml',
        '',
      ].join('\n'),
    );
    expect([result.passed, result.failed]).toEqual([5, 0]);
  });

  it('fails a test whose expectation the rules do not meet, with promtool output', async () => {
    // Where the loader would say each node is: a line per path element, so the case's position is distinct.
    const positioned = (r: Resource): Resource => ({ ...r, positionOf: (p) => ({ file: 'tests/api-down.yaml', line: 10 + p.length, col: 7 }) });
    const failing = resources().map((r) => (r.kind === 'AlertTest' ? positioned(res('AlertTest', 'api-down', apiDownTest(false))) : r));
    const result = await runAlertTests(failing, join(dir, 'fail'), { promtool: '/usr/bin/promtool', amtool: '/usr/bin/amtool' });
    expect([result.passed, result.failed]).toEqual([4, 1]);
    // The failure names the AlertTest document and the case, not (only) the rendered file.
    expect(result.output).toContain('FAIL api-down.yaml:1:1: AlertTest/api-down: promtool test rules (rendered as prometheus/tests/alerttest-api-down.test.yml)\n');
    expect(result.output).toMatch(/\n\s+tests\/api-down\.yaml:15:7: tests\[0\]\.alert_rule_test\[0\]: alertname: ApiDown, time: 5m\n\s+exp:\[\]/);
    expect(result.output).not.toContain('Unit Testing');
  });

  it('fails a rule file that promtool refuses', async () => {
    const bad = alertRulesSpecSchema.parse({ groups: [{ name: 'x', rules: [{ alert: 'Bad', expr: 'sum(rate(x[5m]', runbookWaiver: 'test' }] }] });
    const result = await runAlertTests([res('AlertRules', 'bad', bad)], join(dir, 'bad'), { promtool: '/usr/bin/promtool', amtool: '/usr/bin/amtool' });
    expect(result.failed).toBe(1);
    expect(result.output).toMatch(/^FAIL bad\.yaml:1:1: AlertRules\/bad: promtool check rules \(rendered as prometheus\/rules\/capstan-alertrules-bad\.yml\)\n/);
  });
});
