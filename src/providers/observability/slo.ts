/**
 * `SLO`: a service level objective, and what it generates: recording rules for
 * the error ratio over every window the alerts need, the multi-window
 * multi-burn-rate alerts (burn-rate.ts), a Grafana dashboard, and promtool unit
 * tests of those alerts.
 *
 * Generated series (labels `slo`, `service`):
 *   slo:sli_error:ratio_rate<W>         error ratio over window W (5m, 1h, …, the SLO window)
 *   slo:objective:ratio                 e.g. 0.999
 *   slo:error_budget:ratio              e.g. 0.001
 *   slo:error_budget_remaining:ratio    1 − (error ratio over the SLO window / budget)
 */
import { z } from 'zod';
import { error, warning, type Diagnostic } from '../../diag/diagnostic.js';
import type { Resource } from '../../spec/resource.js';
import { burnRateAlerts, errorBudget, resolveTiers, tierOverridesSchema, type BurnRateAlert } from './burn-rate.js';
import { compare, div, formatDecimal, mul, parseDecimal, ratio, type Ratio } from './decimal.js';
import { durationSchema, formatDuration, parseDuration } from './duration.js';
import type { AlertingRule, RecordingRule, RuleFile } from './alert-rules.js';
import { grafanaDeliverySchema } from './dashboard.js';
import { PROMETHEUS_DEFAULTS, prometheusDeliverySchema, specNameSchema } from './delivery-settings.js';

const WINDOW_PLACEHOLDER = /\{\{\s*window\s*\}\}/g;
const SERVICE = /^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$/;

const decimalSchema = z.union([z.number(), z.string()]).refine(
  (v) => {
    try {
      parseDecimal(v);
      return true;
    } catch {
      return false;
    }
  },
  { message: 'expected a number' },
);

export const ratioSliSchema = z
  .object({
    /** PromQL for the rate of bad events; `{{window}}` is replaced by each window. */
    errorQuery: z
      .string()
      .trim()
      .min(1)
      .meta({ description: 'PromQL for the rate of bad events; {{window}} is replaced by each window.', examples: ['sum(rate(http_requests_total{job="api",code=~"5.."}[{{window}}]))'] }),
    /** PromQL for the rate of all events, with the same `{{window}}` placeholder. */
    totalQuery: z
      .string()
      .trim()
      .min(1)
      .meta({ description: 'PromQL for the rate of all events, with the same {{window}} placeholder.', examples: ['sum(rate(http_requests_total{job="api"}[{{window}}]))'] }),
  })
  .strict();

export const latencySliSchema = z
  .object({
    latency: z
      .object({
        /** Histogram base name: `<metric>_bucket` and `<metric>_count` are read. */
        metric: z
          .string()
          .regex(/^[a-zA-Z_:][a-zA-Z0-9_:]*$/)
          .meta({ description: 'Histogram base name: <metric>_bucket and <metric>_count are read.', examples: ['http_request_duration_seconds'] }),
        /** Requests slower than this many seconds are errors; must be one of the histogram's bucket bounds. */
        threshold: decimalSchema.meta({ description: "Requests slower than this many seconds are errors; must be one of the histogram's bucket bounds.", examples: [0.3] }),
        /** Label matchers without braces, e.g. `job="api", route!="/healthz"`. */
        matchers: z.string().trim().optional().meta({ description: 'Label matchers without braces.', examples: ['job="api", route!="/healthz"'] }),
      })
      .strict()
      .meta({ description: 'A latency SLI from a Prometheus histogram: the share of requests slower than threshold.' }),
  })
  .strict();

export const sloSpecSchema = z
  .object({
    /** The resource name, filled in at load time. */
    name: specNameSchema,
    service: z
      .string()
      .regex(SERVICE, 'service names are letters, digits, ".", "_" and "-"')
      .meta({ description: 'The service the SLO is about: the service label of the generated rules and the key of Alerting routes.', examples: ['api'] }),
    description: z.string().optional().meta({ description: 'What the objective promises, for people; shown on the dashboard.', examples: ['99.9% of API requests succeed'] }),
    /** Percent of good events, above 0 and below 100, e.g. 99.9. */
    objective: decimalSchema.refine(
      (v) => {
        const r = parseDecimal(v);
        return compare(r, ratio(0n)) > 0 && compare(r, ratio(100n)) < 0;
      },
      { message: 'objective is a percentage above 0 and below 100, e.g. 99.9' },
    ).meta({ description: 'Percent of good events, above 0 and below 100 (a number or a decimal string, kept exact).', examples: [99.9, '99.95'] }),
    window: durationSchema.default('30d').meta({ description: 'The SLO window the error budget is counted over (a Prometheus duration).', examples: ['28d'] }),
    sli: z
      .union([ratioSliSchema, latencySliSchema])
      .meta({ description: 'The service level indicator: errorQuery and totalQuery (a ratio of rates), or latency (from a histogram).' }),
    runbook: z.string().url().optional().meta({ description: 'URL of the runbook: the runbook_url annotation of every generated alert (required unless runbookWaiver says why not).', examples: ['https://runbooks.example.com/api-availability'] }),
    runbookWaiver: z.string().trim().min(1).optional().meta({ description: 'Why the alerts have no runbook yet: recorded instead of runbook.', examples: ['runbook being written, see TICKET-123'] }),
    /** Name of the generated alert; default: the SLO name in PascalCase + `ErrorBudgetBurn`. */
    alertName: z
      .string()
      .regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/)
      .optional()
      .meta({ description: 'Name of the generated alert; default: the SLO name in PascalCase + ErrorBudgetBurn.', examples: ['ApiAvailabilityErrorBudgetBurn'] }),
    /** Extra labels on the generated alerts (e.g. `team`). */
    labels: z
      .record(z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/), z.string())
      .optional()
      .meta({ description: 'Extra labels on the generated alerts (not slo, service, severity or the other labels Capstan sets).', examples: [{ team: 'payments' }] }),
    /** Burn-rate tiers: override or disable the defaults (page-fast, page-slow, ticket-fast, ticket-slow) or add new ones. */
    burnRateAlerts: tierOverridesSchema,
    dashboard: z
      .object({
        /** UID of the Prometheus data source in Grafana. */
        datasource: z.string().min(1).default('prometheus').meta({ description: 'UID of the Prometheus data source in Grafana.', examples: ['prom-main'] }),
        folder: z.string().optional().meta({ description: 'The Grafana folder of the dashboard.', examples: ['SLOs'] }),
      })
      .strict()
      .optional()
      .meta({ description: 'Settings of the generated Grafana dashboard.' }),
    /** Where the rule file is delivered when the SLO has a target Host. */
    prometheus: prometheusDeliverySchema.default(() => ({ ...PROMETHEUS_DEFAULTS })),
    /** When set, the SLO's dashboard is delivered to this Grafana on the same host too. */
    grafana: grafanaDeliverySchema.optional(),
  })
  .strict()
  .meta({
    examples: [
      {
        service: 'api',
        objective: 99.9,
        window: '30d',
        sli: { errorQuery: 'sum(rate(http_requests_total{job="api",code=~"5.."}[{{window}}]))', totalQuery: 'sum(rate(http_requests_total{job="api"}[{{window}}]))' },
        runbook: 'https://runbooks.example.com/api-availability',
        labels: { team: 'payments' },
      },
    ],
  });

export type SloSpec = z.infer<typeof sloSpecSchema>;

const RESERVED_LABELS = new Set(['slo', 'service', 'severity', 'tier', 'long_window', 'short_window', 'burn_rate', 'alertname']);

/** `api-availability` → `ApiAvailabilityErrorBudgetBurn`. */
export function defaultAlertName(sloName: string): string {
  const pascal = sloName
    .split(/[._-]+/)
    .filter((p) => p !== '')
    .map((p) => p[0]!.toUpperCase() + p.slice(1))
    .join('');
  return `${/^[0-9]/.test(pascal) ? 'Slo' : ''}${pascal}ErrorBudgetBurn`;
}

export function alertNameOf(name: string, spec: SloSpec): string {
  return spec.alertName ?? defaultAlertName(name);
}

export function recordName(window: string): string {
  return `slo:sli_error:ratio_rate${window}`;
}

/** Everything derived from one SLO, computed once for rules, dashboard and tests. */
export interface SloModel {
  readonly name: string;
  readonly spec: SloSpec;
  readonly alertName: string;
  readonly budget: Ratio;
  readonly objective: Ratio;
  /** Canonical SLO window (`30d`). */
  readonly window: string;
  readonly alerts: readonly BurnRateAlert[];
  /** Every window that gets a recording rule, ascending; the SLO window last. */
  readonly windows: readonly string[];
  readonly problems: readonly string[];
}

export function sloModel(name: string, spec: SloSpec): SloModel {
  const { tiers, problems: tierProblems } = resolveTiers(spec.burnRateAlerts);
  const { alerts, problems } = burnRateAlerts(spec.objective, spec.window, tiers);
  const windowMs = parseDuration(spec.window)!;
  const windowMsSet = new Set<number>([windowMs]);
  for (const a of alerts) {
    windowMsSet.add(a.longWindowMs);
    windowMsSet.add(a.shortWindowMs);
  }
  return {
    name,
    spec,
    alertName: alertNameOf(name, spec),
    budget: errorBudget(spec.objective),
    objective: div(parseDecimal(spec.objective), ratio(100n)),
    window: formatDuration(windowMs),
    alerts,
    windows: [...windowMsSet].sort((a, b) => a - b).map(formatDuration),
    problems: [...tierProblems, ...problems].map((p) => p.message),
  };
}

/** The `le` matcher for a latency threshold: tolerant of `0.3` vs `0.30` and `1` vs `1.0`, which clients spell differently. */
export function leMatcher(threshold: number | string): string {
  const text = formatDecimal(parseDecimal(threshold), 17);
  const [int, frac] = text.split('.');
  return frac ? `le=~"${int}\\\\.${frac}0*"` : `le=~"${int}(\\\\.0+)?"`;
}

function selector(matchers: string | undefined, extra?: string): string {
  const parts = [matchers?.trim(), extra].filter((p): p is string => p !== undefined && p !== '');
  return parts.length > 0 ? `{${parts.join(',')}}` : '';
}

/** The PromQL error ratio of the SLI over one window. */
export function errorRatioExpr(spec: SloSpec, window: string): string {
  const sli = spec.sli;
  if ('errorQuery' in sli) {
    const at = (q: string): string => q.replace(WINDOW_PLACEHOLDER, window);
    return `(${at(sli.errorQuery)})\n/\n(${at(sli.totalQuery)})`;
  }
  const { metric, threshold, matchers } = sli.latency;
  const total = `sum(rate(${metric}_count${selector(matchers)}[${window}]))`;
  const good = `sum(rate(${metric}_bucket${selector(matchers, leMatcher(threshold))}[${window}]))`;
  return `(${total} - ${good})\n/\n${total}`;
}

function sloLabels(model: SloModel): Record<string, string> {
  return { slo: model.name, service: model.spec.service };
}

export function alertLabels(model: SloModel, a: BurnRateAlert): Record<string, string> {
  return {
    ...(model.spec.labels ?? {}),
    slo: model.name,
    severity: a.severity,
    tier: a.tier,
    long_window: a.longWindow,
    short_window: a.shortWindow,
    burn_rate: formatDecimal(a.factor),
  };
}

export function alertAnnotations(model: SloModel, a: BurnRateAlert): Record<string, string> {
  const { spec } = model;
  const objective = formatDecimal(parseDecimal(spec.objective));
  const consumed = formatDecimal(mul(a.budgetConsumed, ratio(100n)));
  const annotations: Record<string, string> = {
    summary: `${spec.service}: SLO ${model.name} is burning its error budget ${formatDecimal(a.factor)}x too fast`,
    description:
      `The error ratio of ${model.name} has been above ${formatDecimal(a.threshold)} ` +
      `(${formatDecimal(a.factor)} × the ${formatDecimal(model.budget)} error budget of a ${objective}% objective) ` +
      `over both the last ${a.longWindow} and the last ${a.shortWindow}. ` +
      `At this rate ${consumed}% of the ${model.window} error budget is spent within ${a.longWindow}.`,
  };
  if (spec.runbook !== undefined) annotations['runbook_url'] = spec.runbook;
  return annotations;
}

export function sloRecordingRules(model: SloModel): RecordingRule[] {
  const labels = sloLabels(model);
  const rules: RecordingRule[] = model.windows.map((w) => ({ record: recordName(w), expr: errorRatioExpr(model.spec, w), labels }));
  rules.push(
    { record: 'slo:objective:ratio', expr: `vector(${formatDecimal(model.objective)})`, labels },
    { record: 'slo:error_budget:ratio', expr: `vector(${formatDecimal(model.budget)})`, labels },
    {
      record: 'slo:error_budget_remaining:ratio',
      expr: `1 - ${recordName(model.window)}{slo="${model.name}"} / ${formatDecimal(model.budget)}`,
      labels,
    },
  );
  return rules;
}

export function sloAlertingRules(model: SloModel): AlertingRule[] {
  return model.alerts.map((a) => {
    const threshold = formatDecimal(a.threshold);
    return {
      alert: model.alertName,
      expr:
        `${recordName(a.longWindow)}{slo="${model.name}"} > ${threshold}\n` +
        `and\n` +
        `${recordName(a.shortWindow)}{slo="${model.name}"} > ${threshold}`,
      ...(a.for !== undefined ? { for: a.for } : {}),
      labels: alertLabels(model, a),
      annotations: alertAnnotations(model, a),
    };
  });
}

export function sloGroupNames(name: string): { recordings: string; alerts: string } {
  return { recordings: `slo:${name}:recordings`, alerts: `slo:${name}:alerts` };
}

/** The Prometheus rule file of one SLO. */
export function renderSloRules(name: string, spec: SloSpec): RuleFile {
  const model = sloModel(name, spec);
  const groups = sloGroupNames(name);
  const out: RuleFile = { groups: [{ name: groups.recordings, rules: sloRecordingRules(model) }] };
  const alerting = sloAlertingRules(model);
  if (alerting.length > 0) out.groups.push({ name: groups.alerts, rules: alerting });
  return out;
}

export function validateSlo(resource: Resource<SloSpec>): Diagnostic[] {
  const { spec, address } = resource;
  const at = (path: (string | number)[]): Diagnostic['source'] => {
    try {
      return resource.positionOf(['spec', ...path]);
    } catch {
      return resource.source;
    }
  };
  const out: Diagnostic[] = [];
  if ('errorQuery' in spec.sli) {
    for (const key of ['errorQuery', 'totalQuery'] as const) {
      if (!new RegExp(WINDOW_PLACEHOLDER.source).test(spec.sli[key])) {
        out.push(
          error(`sli.${key} has no {{window}} placeholder`, {
            address,
            source: at(['sli', key]),
            detail: 'write the range of its rate() as [{{window}}], e.g. rate(http_requests_total[{{window}}])',
          }),
        );
      }
    }
  }
  if (spec.runbook === undefined && spec.runbookWaiver === undefined) {
    out.push(error('an SLO needs a runbook URL for its alerts', { address, source: at([]), detail: 'add runbook: https://…, or runbookWaiver: "<reason>"' }));
  }
  for (const key of Object.keys(spec.labels ?? {})) {
    if (RESERVED_LABELS.has(key)) out.push(error(`label ${key} is set by Capstan on SLO alerts`, { address, source: at(['labels', key]) }));
  }
  const model = sloModel(resource.name, spec);
  for (const p of model.problems) {
    const severe = !p.includes('can never fire');
    out.push((severe ? error : warning)(p, { address, source: at(['burnRateAlerts']) }));
  }
  if (model.alerts.length === 0) out.push(warning('every burn-rate tier is disabled: this SLO generates no alerts', { address, source: at([]) }));
  out.push(...slowBurnWarnings(model, at));
  return out;
}

/**
 * A tier whose burn factor is below 1 fires while the budget is spent slower
 * than the SLO window allows, i.e. while the SLO is met (a 7-day window with
 * the default 3-day ticket tier: 10% × 7d / 3d = 0.233). Sloth's tiers are
 * fixed for a 30-day window for the same reason. A warning, at the tier when the
 * spec overrides it, else at the window that scales it down.
 */
function slowBurnWarnings(model: SloModel, at: (path: (string | number)[]) => Diagnostic['source']): Diagnostic[] {
  const one = ratio(1n);
  return model.alerts
    .filter((a) => compare(a.factor, one) < 0)
    .map((a) =>
      warning(
        `tier ${a.tier} has a burn factor of ${formatDecimal(a.factor)}, below 1: with a ${model.window} window it alerts while the SLO is met`,
        {
          address: `SLO/${model.name}`,
          source: at(model.spec.burnRateAlerts?.[a.tier] !== undefined ? ['burnRateAlerts', a.tier] : ['window']),
          detail:
            `${formatDecimal(mul(a.budgetConsumed, ratio(100n)))}% of the budget in ${a.longWindow} is ${formatDecimal(a.factor)} × the sustainable rate; ` +
            `raise its budgetConsumed to about ${formatDecimal(div(mul(ratio(BigInt(a.longWindowMs)), ratio(100n)), ratio(BigInt(parseDuration(model.window)!))))}% or disable it (burnRateAlerts: { ${a.tier}: { enabled: false } })`,
        },
      ),
    );
}

// -- Generated promtool tests ------------------------------------------------------

/** 1, 2, 5 × 10^k: the smallest at or above `x`. */
function niceCeil(x: Ratio): Ratio {
  return nice(x, 'ceil');
}
function niceFloor(x: Ratio): Ratio {
  return nice(x, 'floor');
}
function nice(x: Ratio, how: 'ceil' | 'floor'): Ratio {
  const candidates: Ratio[] = [];
  for (let k = -12; k <= 12; k++) {
    const p = k >= 0 ? ratio(10n ** BigInt(k)) : ratio(1n, 10n ** BigInt(-k));
    for (const m of [1n, 2n, 5n]) candidates.push(mul(p, ratio(m)));
  }
  if (how === 'ceil') return candidates.find((c) => compare(c, x) >= 0) ?? x;
  return [...candidates].reverse().find((c) => compare(c, x) <= 0) ?? x;
}

export interface GeneratedCase {
  readonly name: string;
  /** Error ratio fed for each recorded window. */
  readonly ratios: ReadonlyMap<string, Ratio>;
  /** Tiers expected to fire. */
  readonly firing: readonly BurnRateAlert[];
}

/**
 * Cases that pin the alerts down: a burn above every threshold fires every tier;
 * a burn below half the slowest threshold fires nothing; just above each
 * threshold fires exactly the tiers at or below it; a fast burn that has stopped
 * (short windows back to zero) does not page.
 */
export function generatedCases(model: SloModel): GeneratedCase[] {
  if (model.alerts.length === 0) return [];
  const one = ratio(1n);
  const clamp = (r: Ratio): Ratio => (compare(r, one) > 0 ? one : r);
  const factors = model.alerts.map((a) => a.factor).sort(compare);
  const hot = clamp(mul(model.budget, niceCeil(mul(factors[factors.length - 1]!, ratio(5n, 4n)))));
  const quiet = mul(model.budget, niceFloor(div(factors[0]!, ratio(2n))));
  const constant = (r: Ratio): Map<string, Ratio> => new Map(model.windows.map((w) => [w, r]));
  const fires = (ratios: ReadonlyMap<string, Ratio>): BurnRateAlert[] =>
    model.alerts.filter(
      (a) => compare(ratios.get(a.longWindow) ?? ratio(0n), a.threshold) > 0 && compare(ratios.get(a.shortWindow) ?? ratio(0n), a.threshold) > 0,
    );
  const pct = (r: Ratio): string => `${formatDecimal(mul(r, ratio(100n)))}%`;
  const cases: GeneratedCase[] = [];
  const add = (name: string, ratios: Map<string, Ratio>): void => {
    cases.push({ name, ratios, firing: fires(ratios) });
  };
  add(`error ratio ${pct(hot)}: every tier whose threshold is below it fires`, constant(hot));
  add(`error ratio ${pct(quiet)}: nothing fires`, constant(quiet));
  const thresholds = [...new Map(model.alerts.map((a) => [formatDecimal(a.threshold), a.threshold])).values()].sort(compare);
  for (const t of thresholds) {
    const above = mul(t, ratio(101n, 100n));
    if (compare(above, one) > 0) continue;
    add(`error ratio ${pct(above)}, just above the ${formatDecimal(t)} threshold`, constant(above));
  }
  const pageShort = new Set(model.alerts.filter((a) => a.severity === 'page').map((a) => a.shortWindow));
  if (pageShort.size > 0) {
    const stopped = constant(hot);
    for (const w of pageShort) stopped.set(w, ratio(0n));
    add(`error ratio ${pct(hot)} in the long windows but 0 in the ${[...pageShort].join('/')} short windows: no page`, stopped);
  }
  return cases;
}

/** A promtool test file (as a plain object) for the generated alerts of one SLO; `ruleFile` is relative to the test file. */
export function generatedSloTests(name: string, spec: SloSpec, ruleFile: string): Record<string, unknown> | undefined {
  const model = sloModel(name, spec);
  const cases = generatedCases(model);
  if (cases.length === 0) return undefined;
  const series = (w: string): string => `${recordName(w)}{slo="${model.name}",service="${spec.service}"}`;
  // Evaluate once the longest `for:` has passed, with samples every minute until then.
  const pendingMinutes = Math.max(0, ...model.alerts.map((a) => Math.ceil((a.for ? (parseDuration(a.for) ?? 0) : 0) / 60_000)));
  const evalMinutes = 10 + pendingMinutes;
  return {
    rule_files: [ruleFile],
    evaluation_interval: '1m',
    tests: cases.map((c) => ({
      name: `SLO ${name}: ${c.name}`,
      interval: '1m',
      input_series: model.windows
        .filter((w) => c.ratios.has(w))
        .map((w) => ({ series: series(w), values: `${formatDecimal(c.ratios.get(w)!)}+0x${evalMinutes + 5}` })),
      alert_rule_test: [
        {
          eval_time: `${evalMinutes}m`,
          alertname: model.alertName,
          exp_alerts: c.firing.map((a) => ({
            exp_labels: { ...alertLabels(model, a), service: spec.service },
            exp_annotations: alertAnnotations(model, a),
          })),
        },
      ],
    })),
  };
}
