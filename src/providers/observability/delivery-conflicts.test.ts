/**
 * Two observability resources that deliver the same file, or the same Grafana
 * dashboard uid, to one machine: found at validate by the engine from the
 * providers' claims, each error naming both resources and their positions.
 */
import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatDiagnostic } from '../../diag/diagnostic.js';
import { planChanges } from '../../plan/planner.js';
import { SqliteStore } from '../../state/sqlite/sqlite-store.js';
import { TargetPool } from '../target-pool.js';
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

describe('reading deliveries on a real local Host', () => {
  const source = { dir: '/repo', repo: null, ref: null, commit: 'c'.repeat(40), author: 'A <a@x>', message: 'm', dirty: false };

  async function planIn(files: (root: string) => Record<string, string>, prepare: (root: string, dir: string) => Promise<void>) {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-delivery-read-'));
    const root = path.join(dir, 'root');
    await mkdir(root);
    await prepare(root, dir);
    const store = await SqliteStore.open(path.join(dir, 'state.db'));
    const targets = new TargetPool(registry, { signal: new AbortController().signal });
    try {
      const stack = await repo.load(files(root));
      expect(errors(stack.diagnostics)).toEqual([]);
      return { root, dir, plan: await planChanges({ stack: 's', desired: stack, source, registry, store, targets }) };
    } finally {
      await targets.close();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  }

  const rules = (name: string, rulesDir: string) => `kind: AlertRules
name: ${name}
target: mon
spec:
  prometheus: { rulesDir: ${rulesDir} }
  groups:
    - name: ${name}
      rules:
        - alert: Down
          expr: up == 0
          annotations: { runbook_url: https://runbooks.example.com/down }
`;

  it('fails only the resource whose rules directory escapes the root, with its own message', async () => {
    const { plan, dir } = await planIn(
      (root) => ({ 'hosts.yaml': `kind: Host\nname: mon\nspec: { transport: local, root: ${root} }\n`, 'rules.yaml': `${rules('escaping', '/etc/escape')}---\n${rules('fine', '/etc/prometheus/rules.d')}` }),
      async (root, dir) => {
        await mkdir(path.join(root, 'etc'));
        await mkdir(path.join(dir, 'outside'));
        await symlink(path.join(dir, 'outside'), path.join(root, 'etc/escape'));
      },
    );
    expect(errors(plan.diagnostics)).toEqual([
      expect.stringMatching(new RegExp(`^rules\\.yaml:1:1: AlertRules/escaping: reading live state failed: refusing /etc/escape/capstan-alertrules-escaping\\.yml on Host/mon .*through the symbolic link /etc/escape -> ${dir}/outside`)),
    ]);
    expect(plan.changes.map((c) => [c.address, c.action])).toEqual([['AlertRules/fine', 'create']]);
  });

  it('makes the plan an error when two Alerting resources write one config file through a linked directory', async () => {
    const alerting = (name: string, configFile: string) => `kind: Alerting
name: ${name}
target: mon
spec:
  alertmanager: { configFile: ${configFile} }
  defaultTeam: sre
  teams: [{ name: sre, webhook: { url: "http://127.0.0.1:9/x" } }]
  routes: [{ services: api, team: sre }]
`;
    const { plan, root } = await planIn(
      (root) => ({
        'hosts.yaml': `kind: Host\nname: mon\nspec: { transport: local, root: ${root} }\n`,
        'alerting.yaml': `${alerting('oncall', '/etc/prometheus/alertmanager.yml')}---\n${alerting('oncall-copy', '/etc/alertmanager/alertmanager.yml')}`,
      }),
      async (root) => {
        await mkdir(path.join(root, 'etc/prometheus'), { recursive: true });
        await symlink('prometheus', path.join(root, 'etc/alertmanager'));
      },
    );
    expect(errors(plan.diagnostics)).toEqual([
      `alerting.yaml:1:1: Alerting/oncall: Alerting/oncall and Alerting/oncall-copy (alerting.yaml:10:1) manage the same object, path:${root}/etc/prometheus/alertmanager.yml, on one machine (Host local) ` +
        '(the live machine resolves both to it: Alerting/oncall on Host/mon and Alerting/oncall-copy on Host/mon would overwrite each other on every apply; manage it once)',
      `alerting.yaml:10:1: Alerting/oncall-copy: Alerting/oncall-copy and Alerting/oncall (alerting.yaml:1:1) manage the same object, path:${root}/etc/prometheus/alertmanager.yml, on one machine (Host local) ` +
        '(the live machine resolves both to it: Alerting/oncall-copy on Host/mon and Alerting/oncall on Host/mon would overwrite each other on every apply; manage it once)',
    ]);
  });
});
