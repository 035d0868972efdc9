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
import { GRAFANA_DEFAULTS, type DashboardSpec } from '../providers/observability/dashboard.js';
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

/** Computes every artefact in memory; throws DiagnosticsError when an AlertTest names a rule resource that does not exist. */
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
  if (diagnostics.length > 0) throw new DiagnosticsError(diagnostics);
  return files;
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
