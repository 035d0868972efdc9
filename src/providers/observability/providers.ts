/**
 * The observability kinds as providers. Each one lives on the Host that runs its
 * backend (Prometheus, Alertmanager, Grafana) and carries the backend's endpoint
 * and directories in its spec, with the Debian packages' defaults.
 */
import type { SecretDigester } from '../../secrets/digest.js';
import type { Resource } from '../../spec/resource.js';
import type { HostHandle } from '../host/host.js';
import { hostPathClaim } from '../host/paths.js';
import { ProviderError, type ApplyRequest, type Claim, type ResourceDiff, type ResourceProvider } from '../provider.js';
import { alertingSpecSchema, validateAlerting, type AlertingSpec } from './alerting.js';
import { alertRulesSpecSchema, resolveAlertRulesSource, validateAlertRules, type AlertRulesSpec } from './alert-rules.js';
import { alertTestSpecSchema, resolveAlertTestSource, type AlertTestSpec } from './alert-test.js';
import { alertRulesFileText, dashboardFiles, ruleFileName, sloDashboardFiles, sloRuleFileText } from './artifacts.js';
import { alertmanagerHooks, prometheusHooks } from './backends.js';
import { dashboardSpecSchema, dashboardUid, resolveDashboardSource, validateDashboard, type DashboardSpec } from './dashboard.js';
import { alertmanagerConfigText, alertmanagerSecretValues, alertmanagerShownText, maskValues, redactLiveAlertmanagerText } from './alerting-secrets.js';
import { applyFileSet, deleteFileSet, diffFileSet, readFileSets, type DesiredFile, type FileSetHooks, type FileSetLive, type LiveRedaction } from './file-set.js';
import { resolveName, validateName } from './identity.js';
import { sloSpecSchema, validateSlo, type SloSpec } from './slo.js';
import { sloDashboardName } from './slo-dashboard.js';

/** The parts every file-delivering kind supplies; the rest is shared. */
interface FileDelivery<Spec> {
  files(spec: Spec): DesiredFile[];
  hooks(spec: Spec): FileSetHooks;
  /** The spec field each delivered file comes from, for diagnostics (default: the document). */
  fileField?(spec: Spec, path: string): readonly (string | number)[] | undefined;
  /** How its live files are redacted when they may hold secrets (a spec of null: a delete). */
  redact?(spec: Spec | null, digester: SecretDigester | undefined): LiveRedaction;
  /** Grafana dashboards it provisions: their uid, and the provisioning directory of the Grafana that loads them. */
  dashboards?(spec: Spec): { uid: string; provisioningDir: string; field: readonly (string | number)[] }[];
}

/**
 * What a delivery resource claims on its Host's machine: each file it writes,
 * and each dashboard uid in the Grafana it provisions (Grafana keeps one
 * dashboard per uid: two of them would replace each other).
 */
function deliveryClaims<Spec>(d: FileDelivery<Spec>): (spec: Spec, target: Resource) => readonly Claim[] {
  return (spec, target) => {
    const files = d.files(spec).flatMap((f) => hostPathClaim(target, f.path, d.fileField?.(spec, f.path)) ?? []);
    const uids = (d.dashboards?.(spec) ?? []).flatMap((dash) => {
      const grafana = hostPathClaim(target, dash.provisioningDir);
      return grafana ? [{ key: `grafana-dashboard-uid:${grafana.key.slice('path:'.length)}:${dash.uid}`, field: dash.field }] : [];
    });
    return [...files, ...uids];
  };
}

function nameOf(spec: { name?: string | undefined }): string {
  if (spec.name === undefined) throw new ProviderError('spec.name is missing: the spec was not resolved at load time');
  return spec.name;
}

function joinPath(dir: string, file: string): string {
  return `${dir.replace(/\/+$/, '')}/${file}`;
}

function fileSetMethods<Spec>(d: FileDelivery<Spec>): Pick<ResourceProvider<Spec, FileSetLive, HostHandle>, 'read' | 'diff' | 'apply' | 'claims'> {
  const paths = (spec: Spec | null): string[] => (spec ? d.files(spec).map((f) => f.path) : []);
  return {
    claims: deliveryClaims(d),
    read: (handle, specs, ctx) =>
      readFileSets(handle, specs.map((s) => paths(s)), ctx.signal, ctx.located, d.redact ? (i) => d.redact!(specs[i] ?? null, ctx.digester) : undefined),
    diff: (desired, live, prior): ResourceDiff => diffFileSet(d.files(desired), live, paths(prior)),
    async apply(handle, req: ApplyRequest<Spec, FileSetLive>, ctx) {
      if (req.action === 'delete') {
        const spec = req.prior ?? null;
        const known = new Set([...paths(spec), ...Object.keys(req.live?.files ?? {})]);
        return deleteFileSet(handle, [...known], spec ? d.hooks(spec) : {}, ctx.signal);
      }
      const desired = d.files(req.desired!);
      const wanted = new Set(desired.map((f) => f.path));
      const stale = paths(req.prior).filter((p) => !wanted.has(p));
      return applyFileSet(handle, desired, stale, d.hooks(req.desired!), ctx.signal, d.redact?.(req.desired, ctx.digester));
    },
  };
}

function sloFiles(spec: SloSpec): DesiredFile[] {
  const name = nameOf(spec);
  const files: DesiredFile[] = [{ path: joinPath(spec.prometheus.rulesDir, ruleFileName('SLO', name)), content: sloRuleFileText(name, spec) }];
  if (spec.grafana) {
    const dash = sloDashboardFiles(name, spec, spec.grafana);
    files.push({ path: dash.provisioningFile, content: dash.provisioning }, { path: dash.dashboardFile, content: dash.json });
  }
  return files;
}

export const sloProvider: ResourceProvider<SloSpec, FileSetLive, HostHandle> = {
  role: 'resource',
  kind: 'SLO',
  description: 'A service level objective: recording rules and multi-window burn-rate alerts for Prometheus, a Grafana dashboard, generated alert tests.',
  schema: sloSpecSchema,
  targetKind: 'Host',
  targetOptional: true,
  async resolve(spec, from, ctx) {
    return { ...spec, name: await resolveName('SLO', sloSpecSchema, spec, from, ctx) };
  },
  validate: (r) => [...validateName(r), ...validateSlo(r)],
  ...fileSetMethods<SloSpec>({
    files: sloFiles,
    hooks: (spec) => prometheusHooks({ url: spec.prometheus.url, promtool: spec.prometheus.promtool, ruleFile: sloFiles(spec)[0]!.path }),
    fileField: (spec, path) => (path === sloFiles(spec)[0]!.path ? ['prometheus'] : ['grafana']),
    dashboards: (spec) =>
      spec.grafana ? [{ uid: dashboardUid(sloDashboardName(nameOf(spec))), provisioningDir: spec.grafana.provisioningDir, field: ['grafana'] }] : [],
  }),
};

function alertRulesFile(spec: AlertRulesSpec): DesiredFile {
  return { path: joinPath(spec.prometheus.rulesDir, ruleFileName('AlertRules', nameOf(spec))), content: alertRulesFileText(spec) };
}

export const alertRulesProvider: ResourceProvider<AlertRulesSpec, FileSetLive, HostHandle> = {
  role: 'resource',
  kind: 'AlertRules',
  description: 'Prometheus rule groups (every alert with a runbook_url), delivered to a Prometheus rules directory.',
  schema: alertRulesSpecSchema,
  targetKind: 'Host',
  targetOptional: true,
  async resolve(spec, from, ctx) {
    const name = await resolveName('AlertRules', alertRulesSpecSchema, spec, from, ctx);
    return resolveAlertRulesSource({ ...spec, name }, from, (p, f) => ctx.readFile(p, f));
  },
  validate: (r) => [...validateName(r), ...validateAlertRules(r)],
  ...fileSetMethods<AlertRulesSpec>({
    files: (spec) => [alertRulesFile(spec)],
    fileField: () => ['prometheus'],
    hooks: (spec) => prometheusHooks({ url: spec.prometheus.url, promtool: spec.prometheus.promtool, ruleFile: alertRulesFile(spec).path }),
  }),
};

/** The configuration file; when it holds secrets, its text is revealed only when it is written or checked. */
function alertmanagerFile(spec: AlertingSpec): DesiredFile {
  const path = spec.alertmanager.configFile;
  const shown = alertmanagerShownText(spec);
  if (shown === undefined) return { path, content: alertmanagerConfigText(spec) };
  return {
    path,
    shown,
    get content() {
      return alertmanagerConfigText(spec);
    },
  };
}

export const alertingProvider: ResourceProvider<AlertingSpec, FileSetLive, HostHandle> = {
  role: 'resource',
  kind: 'Alerting',
  description: 'On-call teams, routes, escalation and inhibition: the Alertmanager configuration, checked with amtool and reloaded.',
  schema: alertingSpecSchema,
  targetKind: 'Host',
  targetOptional: true,
  validate: (r) => validateAlerting(r),
  ...fileSetMethods<AlertingSpec>({
    files: (spec) => [alertmanagerFile(spec)],
    fileField: () => ['alertmanager', 'configFile'],
    hooks: (spec) =>
      alertmanagerHooks({ url: spec.alertmanager.url, amtool: spec.alertmanager.amtool, configFile: spec.alertmanager.configFile }, (text) =>
        maskValues(text, alertmanagerSecretValues(spec)),
      ),
    redact: (spec, digester) => (_path, text) => redactLiveAlertmanagerText(text, spec, digester),
  }),
};

export const dashboardProvider: ResourceProvider<DashboardSpec, FileSetLive, HostHandle> = {
  role: 'resource',
  kind: 'Dashboard',
  description: 'A Grafana dashboard (typed panels, or JSON inline or from a file) with its file-provisioning YAML.',
  schema: dashboardSpecSchema,
  targetKind: 'Host',
  targetOptional: true,
  async resolve(spec, from, ctx) {
    const name = await resolveName('Dashboard', dashboardSpecSchema, spec, from, ctx);
    return resolveDashboardSource({ ...spec, name }, from, (p, f) => ctx.readFile(p, f));
  },
  validate: (r) => [...validateName(r), ...validateDashboard(r)],
  ...fileSetMethods<DashboardSpec>({
    files: (spec) => {
      const f = dashboardFiles(nameOf(spec), spec);
      return [
        { path: f.provisioningFile, content: f.provisioning },
        { path: f.dashboardFile, content: f.json },
      ];
    },
    hooks: () => ({}),
    dashboards: (spec) => [{ uid: spec.uid ?? dashboardUid(nameOf(spec)), provisioningDir: spec.grafana.provisioningDir, field: spec.uid !== undefined ? ['uid'] : [] }],
  }),
};

/** AlertTests change nothing on any host: `capstan test` runs them. They plan as no-ops. */
export const alertTestProvider: ResourceProvider<AlertTestSpec, null, HostHandle> = {
  role: 'resource',
  kind: 'AlertTest',
  description: 'promtool unit tests of SLO and AlertRules resources, run by `capstan test`; nothing is delivered.',
  schema: alertTestSpecSchema,
  targetKind: 'Host',
  targetOptional: true,
  resolve: (spec, from, ctx) => resolveAlertTestSource(spec, from, (p, f) => ctx.readFile(p, f)),
  read: async (_handle, specs) => specs.map(() => null),
  diff: () => ({ action: 'noop', fields: [] }),
  apply: async () => null,
};
