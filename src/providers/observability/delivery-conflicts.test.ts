/**
 * Two observability resources that deliver the same file, or the same Grafana
 * dashboard uid, to one machine: found at validate by the engine from the
 * providers' claims, each error naming both resources and their positions.
 */
import { describe, expect, it } from 'vitest';
import { formatDiagnostic } from '../../diag/diagnostic.js';
import { useTempStack } from '../../spec/testing/temp-stack.js';
import { hostProviders } from '../host/index.js';
import { ProviderRegistry } from '../registry.js';
import { observabilityProviders } from './index.js';

const registry = new ProviderRegistry([...hostProviders, ...observabilityProviders]);
const repo = useTempStack(registry, 'capstan-delivery-conflicts-');

const host = (name: string) => `kind: Host\nname: ${name}\nspec: { transport: local, root: /srv/sandbox }\n`;
const slo = (target: string) => `kind: SLO
name: api
target: ${target}
spec:
  service: api
  objective: 99.9
  sli:
    errorQuery: sum(rate(errors[{{window}}]))
    totalQuery: sum(rate(total[{{window}}]))
  runbook: https://runbooks.example.com/api
  grafana: {}
`;
const dashboard = (name: string, target: string, uid?: string) => `kind: Dashboard
name: ${name}
target: ${target}
spec:
  title: ${name}
  datasource: prometheus
${uid ? `  uid: ${uid}\n` : ''}  panels:
    - title: up
      targets: [{ expr: up }]
`;

const errors = (diagnostics: readonly { severity: string }[]) =>
  diagnostics.filter((d) => d.severity === 'error').map((d) => formatDiagnostic(d as Parameters<typeof formatDiagnostic>[0]));

describe('observability deliveries that overwrite each other', () => {
  it('refuses a Dashboard named slo-X and SLO/X with grafana: on one Host, naming both', async () => {
    const stack = await repo.load({ 'hosts.yaml': host('mon'), 'slo.yaml': slo('mon'), 'dash.yaml': dashboard('slo-api', 'mon') });
    const found = errors(stack.diagnostics);
    const files = [
      '/srv/sandbox/etc/grafana/provisioning/dashboards/capstan-slo-api.yaml',
      '/srv/sandbox/var/lib/grafana/dashboards/capstan/slo-api/slo-api.json',
    ];
    const uid = 'grafana-dashboard-uid:/srv/sandbox/etc/grafana/provisioning:slo-api';
    for (const key of [...files.map((f) => `path:${f}`), uid]) {
      expect(found).toContainEqual(expect.stringMatching(new RegExp(`^slo\\.yaml:11:\\d+: SLO/api: SLO/api and Dashboard/slo-api \\(dash\\.yaml:\\d+:\\d+\\) manage the same object, ${key.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')},`)));
      expect(found).toContainEqual(expect.stringMatching(new RegExp(`^dash\\.yaml:\\d+:\\d+: Dashboard/slo-api: Dashboard/slo-api and SLO/api \\(slo\\.yaml:11:\\d+\\) manage the same object, ${key.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')},`)));
    }
    expect(found).toHaveLength(6);
  });

  it('refuses two Dashboards with one uid on one Grafana, and through two Hosts for one machine', async () => {
    const stack = await repo.load({
      'hosts.yaml': `${host('mon')}---\n${host('mon-alias')}`,
      'dash.yaml': `${dashboard('team-a', 'mon', 'shared')}---\n${dashboard('team-b', 'mon-alias', 'shared')}`,
    });
    expect(errors(stack.diagnostics)).toEqual([
      expect.stringMatching(/^dash\.yaml:7:8: Dashboard\/team-a: Dashboard\/team-a and Dashboard\/team-b \(dash\.yaml:18:8\) manage the same object, grafana-dashboard-uid:\/srv\/sandbox\/etc\/grafana\/provisioning:shared, on one machine \(Host local\)/),
      expect.stringMatching(/^dash\.yaml:18:8: Dashboard\/team-b: Dashboard\/team-b and Dashboard\/team-a \(dash\.yaml:7:8\)/),
    ]);
  });

  it('accepts the same dashboards on two machines', async () => {
    const ssh = (name: string, address: string) => `kind: Host\nname: ${name}\nspec: { transport: ssh, address: ${address}, root: /srv/sandbox }\n`;
    const stack = await repo.load({
      'hosts.yaml': `${ssh('mon-1', '10.0.0.1')}---\n${ssh('mon-2', '10.0.0.2')}`,
      'dash.yaml': `${dashboard('team-a', 'mon-1', 'shared')}---\n${dashboard('team-b', 'mon-2', 'shared')}`,
    });
    expect(errors(stack.diagnostics)).toEqual([]);
  });
});
