/**
 * The files each observability resource generates, by name and content. Shared by
 * `capstan render`, `capstan test` and the delivery providers, so that what is
 * inspected and tested is byte for byte what is delivered (except receiver
 * secrets of an Alertmanager configuration, rendered as tokens).
 */
import type { AlertingSpec } from './alerting.js';
import { alertmanagerRenderedText } from './alerting-secrets.js';
import { renderAlertRules, type AlertRulesSpec } from './alert-rules.js';
import { dashboardFiles, dashboardJsonText, provisioningYaml, type DashboardSpec } from './dashboard.js';
import { generatedSloTests, renderSloRules, type SloSpec } from './slo.js';
import { sloDashboard, sloDashboardName } from './slo-dashboard.js';
import { toYamlText } from './yaml-text.js';

export const RULE_FILE_PREFIX = 'capstan-';

/** `capstan-slo-<name>.yml` / `capstan-alertrules-<name>.yml`: the rule file of a resource, in a rules directory. */
export function ruleFileName(kind: 'SLO' | 'AlertRules', name: string): string {
  return `${RULE_FILE_PREFIX}${kind.toLowerCase()}-${name}.yml`;
}

export function sloRuleFileText(name: string, spec: SloSpec): string {
  return toYamlText(renderSloRules(name, spec));
}

export function alertRulesFileText(spec: AlertRulesSpec): string {
  return toYamlText(renderAlertRules(spec));
}

export function sloTestFileText(name: string, spec: SloSpec, ruleFile: string): string | undefined {
  const tests = generatedSloTests(name, spec, ruleFile);
  return tests ? toYamlText(tests) : undefined;
}

/** What `capstan render` writes: receiver secrets as tokens of their keyed digest (the delivered file holds them; see alerting-secrets.ts). */
export function alertmanagerFileText(spec: AlertingSpec): string {
  return alertmanagerRenderedText(spec);
}

/** The generated dashboard of an SLO, in the same provisioning layout as a Dashboard resource with default directories. */
export function sloDashboardFiles(name: string, spec: SloSpec, dirs: { provisioningDir: string; dashboardsDir: string }): ReturnType<typeof dashboardFiles> {
  const dashName = sloDashboardName(name);
  const dir = `${dirs.dashboardsDir.replace(/\/+$/, '')}/${dashName}`;
  return {
    provisioningFile: `${dirs.provisioningDir.replace(/\/+$/, '')}/dashboards/capstan-${dashName}.yaml`,
    dashboardFile: `${dir}/${dashName}.json`,
    provisioning: provisioningYaml(dashName, spec.dashboard?.folder, dir),
    json: dashboardJsonText(sloDashboard(name, spec)),
  };
}

export { dashboardFiles };
export type { DashboardSpec };
