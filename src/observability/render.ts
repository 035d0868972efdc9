/**
 * `capstan render`: every artefact the observability resources generate, written
 * under one directory for inspection (and for `capstan test`):
 *
 *   prometheus/rules/capstan-slo-<name>.yml        recording rules + burn-rate alerts
 *   prometheus/rules/capstan-alertrules-<name>.yml
 *   prometheus/tests/slo-<name>.test.yml           generated promtool tests of the SLO alerts
 *   prometheus/tests/alerttest-<name>.test.yml     the AlertTest resources
 *   alertmanager/<name>/alertmanager.yml           one per Alerting resource
 *   grafana/provisioning/dashboards/capstan-<name>.yaml
 *   grafana/dashboards/<name>/<name>.json          Dashboard resources and one per SLO (slo-<name>)
 *
 * Resources expanded over a group render once per name.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { DiagnosticsError, error, type Diagnostic } from '../diag/diagnostic.js';
import type { AlertingSpec } from '../providers/observability/alerting.js';
import type { AlertRulesSpec } from '../providers/observability/alert-rules.js';
import { renderAlertTest, type AlertTestSpec } from '../providers/observability/alert-test.js';
import {
  alertmanagerFileText,
  alertRulesFileText,
  dashboardFiles,
  ruleFileName,
  sloDashboardFiles,
  sloRuleFileText,
  sloTestFileText,
} from '../providers/observability/artifacts.js';
import { dashboardUid, GRAFANA_DEFAULTS, type DashboardSpec } from '../providers/observability/dashboard.js';
import { sloDashboardName } from '../providers/observability/slo-dashboard.js';
import type { SloSpec } from '../providers/observability/slo.js';
import { toYamlText } from '../providers/observability/yaml-text.js';
import type { Resource } from '../spec/resource.js';

export const OBSERVABILITY_KINDS = ['SLO', 'AlertRules', 'AlertTest', 'Alerting', 'Dashboard'] as const;

export interface RenderedFile {
  /** Path relative to the output directory, with `/`. */
  readonly path: string;
  readonly content: string;
  readonly role: 'rules' | 'test' | 'alertmanager' | 'provisioning' | 'dashboard';
  /** The resource it comes from. */
  readonly address: string;
}

/** One resource per kind and name: instances of a group expansion share their spec. */
function uniqueByName(resources: readonly Resource[], kind: string): Resource[] {
  const seen = new Map<string, Resource>();
  for (const r of resources) if (r.kind === kind && !seen.has(r.name)) seen.set(r.name, r);
  return [...seen.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Computes every artefact in memory. Throws DiagnosticsError when an AlertTest
 * names a rule resource that does not exist, and when two resources would write
 * the same file or provision two dashboards with one uid (a `Dashboard` named
 * `slo-X` and `SLO/X`): each error names both resources and their positions.
 */
export function renderFiles(resources: readonly Resource[]): RenderedFile[] {
  const files: RenderedFile[] = [];
  const diagnostics: Diagnostic[] = [];
  const rulesDir = 'prometheus/rules';
  const testsDir = 'prometheus/tests';
  const ruleAddresses = new Map<string, string>();
  const fromTests = (file: string): string => relative(testsDir, join(rulesDir, file)).split('\\').join('/');

  for (const r of uniqueByName(resources, 'SLO')) {
    const spec = r.spec as SloSpec;
    const file = ruleFileName('SLO', r.name);
    ruleAddresses.set(`SLO/${r.name}`, file);
    files.push({ path: `${rulesDir}/${file}`, content: sloRuleFileText(r.name, spec), role: 'rules', address: `SLO/${r.name}` });
    const test = sloTestFileText(r.name, spec, fromTests(file));
    if (test !== undefined) files.push({ path: `${testsDir}/slo-${r.name}.test.yml`, content: test, role: 'test', address: `SLO/${r.name}` });
    // Where the SLO's Grafana is configured, its provisioning file points there; else at the Dashboard defaults.
    const dash = sloDashboardFiles(r.name, spec, spec.grafana ?? GRAFANA_DEFAULTS);
    pushDashboard(files, `SLO/${r.name}`, `slo-${r.name}`, dash);
  }
  for (const r of uniqueByName(resources, 'AlertRules')) {
    const file = ruleFileName('AlertRules', r.name);
    ruleAddresses.set(`AlertRules/${r.name}`, file);
    files.push({ path: `${rulesDir}/${file}`, content: alertRulesFileText(r.spec as AlertRulesSpec), role: 'rules', address: r.address });
  }
  for (const r of uniqueByName(resources, 'AlertTest')) {
    const spec = r.spec as AlertTestSpec;
    spec.rules.forEach((address, i) => {
      if (!ruleAddresses.has(address)) {
        diagnostics.push(error(`AlertTest names ${address}, which is not in the repository`, { address: `AlertTest/${r.name}`, source: positionOr(r, ['spec', 'rules', i]) }));
      }
    });
    const content = toYamlText(renderAlertTest(spec, (a) => fromTests(ruleAddresses.get(a) ?? a)));
    files.push({ path: `${testsDir}/alerttest-${r.name}.test.yml`, content, role: 'test', address: `AlertTest/${r.name}` });
  }
  for (const r of uniqueByName(resources, 'Alerting')) {
    files.push({ path: `alertmanager/${r.name}/alertmanager.yml`, content: alertmanagerFileText(r.spec as AlertingSpec), role: 'alertmanager', address: `Alerting/${r.name}` });
  }
  for (const r of uniqueByName(resources, 'Dashboard')) {
    pushDashboard(files, `Dashboard/${r.name}`, r.name, dashboardFiles(r.name, r.spec as DashboardSpec));
  }
  diagnostics.push(...writtenTwice(files, resources));
  if (diagnostics.length > 0) throw new DiagnosticsError(diagnostics);
  return files;
}

/** Two resources that render the same output file, or two dashboards with one Grafana uid. */
function writtenTwice(files: readonly RenderedFile[], resources: readonly Resource[]): Diagnostic[] {
  const byAddress = new Map<string, Resource>();
  for (const r of resources) if (!byAddress.has(`${r.kind}/${r.name}`)) byAddress.set(`${r.kind}/${r.name}`, r);
  const owners = new Map<string, string[]>();
  const claim = (what: string, address: string): void => {
    const list = owners.get(what) ?? [];
    if (!list.includes(address)) list.push(address);
    owners.set(what, list);
  };
  for (const f of files) claim(f.path, f.address);
  for (const r of uniqueByName(resources, 'SLO')) claim(`dashboard uid ${dashboardUid(sloDashboardName(r.name))}`, `SLO/${r.name}`);
  for (const r of uniqueByName(resources, 'Dashboard')) claim(`dashboard uid ${(r.spec as DashboardSpec).uid ?? dashboardUid(r.name)}`, `Dashboard/${r.name}`);
  const out: Diagnostic[] = [];
  const reported = new Set<string>();
  for (const [what, addresses] of owners) {
    if (addresses.length < 2) continue;
    const key = addresses.join('\u0000');
    for (const address of addresses) {
      // The same pair writes two files (provisioning and JSON): one error per resource and thing.
      const id = `${key}\u0000${address}\u0000${what.startsWith('dashboard uid') ? 'uid' : 'file'}`;
      if (reported.has(id)) continue;
      reported.add(id);
      const r = byAddress.get(address);
      const others = addresses.filter((a) => a !== address).map((a) => {
        const o = byAddress.get(a);
        return o ? `${a} (${o.source.file}:${o.source.line}:${o.source.col})` : a;
      });
      out.push(
        error(`${address} and ${others.join(', ')} both render ${what}`, {
          address,
          source: r?.source,
          detail: 'one would replace the other; rename one of them (an SLO named X generates the dashboard slo-X)',
        }),
      );
    }
  }
  return out;
}

function pushDashboard(files: RenderedFile[], address: string, name: string, dash: { provisioning: string; json: string }): void {
  files.push(
    { path: `grafana/provisioning/dashboards/capstan-${name}.yaml`, content: dash.provisioning, role: 'provisioning', address },
    { path: `grafana/dashboards/${name}/${name}.json`, content: dash.json, role: 'dashboard', address },
  );
}

function positionOr(r: Resource, path: (string | number)[]): Diagnostic['source'] {
  try {
    return r.positionOf(path);
  } catch {
    return r.source;
  }
}

/** Writes every artefact under `outDir` and returns the absolute paths written, sorted. */
export async function renderArtifacts(resources: Resource[], outDir: string): Promise<string[]> {
  const files = renderFiles(resources);
  const written: string[] = [];
  for (const f of files) {
    const path = join(outDir, ...f.path.split('/'));
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, f.content);
    written.push(path);
  }
  return written.sort();
}
