/**
 * `AlertRules`: plain Prometheus rule groups, written as Prometheus writes them
 * (`alert`, `record`, `expr`, `for`, `keep_firing_for`, `labels`, `annotations`).
 * Every alert needs a `runbook_url` annotation, unless the rule carries
 * `runbookWaiver: "<reason>"`; the waiver is Capstan's and is not rendered.
 */
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { error, type Diagnostic } from '../../diag/diagnostic.js';
import type { Resource } from '../../spec/resource.js';
import { PROMETHEUS_DEFAULTS, prometheusDeliverySchema, specNameSchema } from './delivery-settings.js';
import { durationSchema } from './duration.js';

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/** The Prometheus rule file model, as rendered. */
export interface AlertingRule {
  alert: string;
  expr: string;
  for?: string;
  keep_firing_for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
export interface RecordingRule {
  record: string;
  expr: string;
  labels?: Record<string, string>;
}
export type Rule = AlertingRule | RecordingRule;
export interface RuleGroup {
  name: string;
  interval?: string;
  limit?: number;
  rules: Rule[];
}
export interface RuleFile {
  groups: RuleGroup[];
}

const labelsSchema = z.record(z.string().regex(LABEL_NAME, 'label names match [a-zA-Z_][a-zA-Z0-9_]*'), z.string());
const labelsField = (description: string, example: Record<string, string>) => labelsSchema.optional().meta({ description, examples: [example] });

export const ruleSchema = z
  .object({
    alert: z
      .string()
      .regex(LABEL_NAME, 'alert names match [a-zA-Z_][a-zA-Z0-9_]*')
      .optional()
      .meta({ description: 'The name of an alerting rule (exactly one of alert or record).', examples: ['DiskAlmostFull'] }),
    record: z
      .string()
      .regex(METRIC_NAME, 'recorded metric names match [a-zA-Z_:][a-zA-Z0-9_:]*')
      .optional()
      .meta({ description: 'The metric a recording rule writes (exactly one of alert or record).', examples: ['job:http_requests:rate5m'] }),
    expr: z.string().trim().min(1, 'expr is empty').meta({ description: 'The PromQL expression.', examples: ['node_filesystem_avail_bytes / node_filesystem_size_bytes < 0.1'] }),
    for: durationSchema.optional().meta({ description: 'Alerts only: how long the expression must hold before the alert fires.', examples: ['10m'] }),
    keep_firing_for: durationSchema.optional().meta({ description: 'Alerts only: how long the alert keeps firing after the expression stops holding.', examples: ['5m'] }),
    labels: labelsField('Labels added to the alert or the recorded series.', { severity: 'ticket' }),
    annotations: labelsField('Alerts only: annotations; every alert needs runbook_url (or a runbookWaiver).', { summary: 'Less than 10% disk left on {{ $labels.instance }}', runbook_url: 'https://runbooks.example.com/disk-full' }),
    runbookWaiver: z
      .string()
      .trim()
      .min(1, 'a runbookWaiver must give its reason')
      .optional()
      .meta({ description: "Why this alert has no runbook_url yet; Capstan's own field, not rendered.", examples: ['new alert, runbook in review'] }),
  })
  .strict()
  .superRefine((r, ctx) => {
    if ((r.alert === undefined) === (r.record === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'a rule has exactly one of alert or record' });
    }
    if (r.record !== undefined) {
      for (const key of ['for', 'keep_firing_for', 'annotations', 'runbookWaiver'] as const) {
        if (r[key] !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: `a recording rule has no ${key}` });
      }
    }
  });

export const ruleGroupSchema = z
  .object({
    name: z.string().trim().min(1).meta({ description: 'The rule group name, unique in the file.', examples: ['node'] }),
    interval: durationSchema.optional().meta({ description: "How often the group is evaluated; default: Prometheus's evaluation_interval.", examples: ['1m'] }),
    limit: z.number().int().nonnegative().optional().meta({ description: 'At most this many alerts or series per rule; 0: no limit.', examples: [100] }),
    rules: z.array(ruleSchema).min(1, 'a group needs at least one rule').meta({ description: 'The rules, alerting and recording, in evaluation order.' }),
  })
  .strict();

export const alertRulesSpecSchema = z
  .object({
    /** The resource name, filled in at load time. */
    name: specNameSchema,
    /** Rule groups inline... */
    groups: z.array(ruleGroupSchema).optional().meta({ description: 'Prometheus rule groups, written as in a rule file; instead of source.' }),
    /** ...or a Prometheus rule file in the repository (read at load time into `groups`). */
    source: z.string().min(1).optional().meta({ description: 'A Prometheus rule file in the repository, relative to this document (read at load time); instead of groups.', examples: ['rules/node.yml'] }),
    prometheus: prometheusDeliverySchema.default(() => ({ ...PROMETHEUS_DEFAULTS })),
  })
  .strict()
  .refine((s) => (s.groups === undefined) !== (s.source === undefined), { message: 'give exactly one of groups or source' })
  .meta({
    examples: [
      {
        groups: [
          {
            name: 'node',
            rules: [
              {
                alert: 'DiskAlmostFull',
                expr: 'node_filesystem_avail_bytes / node_filesystem_size_bytes < 0.1',
                for: '10m',
                labels: { severity: 'ticket' },
                annotations: { summary: 'Less than 10% disk left on {{ $labels.instance }}', runbook_url: 'https://runbooks.example.com/disk-full' },
              },
            ],
          },
        ],
      },
    ],
  });

export type AlertRulesSpec = z.infer<typeof alertRulesSpecSchema>;
export type RuleSpec = z.infer<typeof ruleSchema>;

/** Reads `source:` into `groups` so the spec (and its hash) is self-contained. */
export async function resolveAlertRulesSource(
  spec: AlertRulesSpec,
  from: { file: string },
  readFile: (relativePath: string, fromFile: string) => Promise<Buffer>,
): Promise<AlertRulesSpec> {
  if (spec.source === undefined) return spec;
  const text = (await readFile(spec.source, from.file)).toString('utf8');
  const doc: unknown = parseYaml(text);
  const groups = z.object({ groups: z.array(ruleGroupSchema) }).safeParse(doc);
  if (!groups.success) {
    throw new Error(`${spec.source}: not a Prometheus rule file: ${groups.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  const { source: _source, ...rest } = spec;
  return { ...rest, groups: groups.data.groups };
}

/** Checks the schema cannot express: unique group names, a runbook for every alert. */
export function validateAlertRules(resource: Resource<AlertRulesSpec>): Diagnostic[] {
  const diagnostics: Diagnostic[] = [];
  const seen = new Set<string>();
  (resource.spec.groups ?? []).forEach((group, gi) => {
    const where = (path: (string | number)[]): Diagnostic['source'] => {
      try {
        return resource.positionOf(['spec', 'groups', gi, ...path]);
      } catch {
        return resource.source;
      }
    };
    if (seen.has(group.name)) diagnostics.push(error(`duplicate rule group name ${group.name}`, { address: resource.address, source: where(['name']) }));
    seen.add(group.name);
    group.rules.forEach((rule, ri) => {
      diagnostics.push(...runbookDiagnostics(rule, resource.address, where(['rules', ri])));
    });
  });
  return diagnostics;
}

export function runbookDiagnostics(rule: RuleSpec, address: string, source: Diagnostic['source']): Diagnostic[] {
  if (rule.alert === undefined || rule.runbookWaiver !== undefined) return [];
  const url = rule.annotations?.['runbook_url'];
  if (url === undefined || url.trim() === '') {
    return [
      error(`alert ${rule.alert} has no runbook_url annotation`, {
        address,
        source,
        detail: 'add annotations.runbook_url, or runbookWaiver: "<reason>" to the rule',
      }),
    ];
  }
  return [];
}

/** The Prometheus rule file for one AlertRules resource: waivers dropped, keys in Prometheus's order. */
export function renderAlertRules(spec: AlertRulesSpec): RuleFile {
  return {
    groups: (spec.groups ?? []).map((g) => ({
      name: g.name,
      ...(g.interval !== undefined ? { interval: g.interval } : {}),
      ...(g.limit !== undefined ? { limit: g.limit } : {}),
      rules: g.rules.map((r): Rule => {
        const labels = r.labels && Object.keys(r.labels).length > 0 ? { labels: r.labels } : {};
        if (r.record !== undefined) return { record: r.record, expr: r.expr, ...labels };
        return {
          alert: r.alert!,
          expr: r.expr,
          ...(r.for !== undefined ? { for: r.for } : {}),
          ...(r.keep_firing_for !== undefined ? { keep_firing_for: r.keep_firing_for } : {}),
          ...labels,
          ...(r.annotations && Object.keys(r.annotations).length > 0 ? { annotations: r.annotations } : {}),
        };
      }),
    })),
  };
}
