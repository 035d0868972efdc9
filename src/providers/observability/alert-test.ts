/**
 * `AlertTest`: unit tests of rule files in the format of `promtool test rules`.
 * `rules` names the resources under test by address (`SLO/api-availability`,
 * `AlertRules/api`); `tests` is promtool's `tests:` list as promtool writes it
 * (snake_case), inline or read from a promtool test file given as `source:`.
 */
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { durationSchema } from './duration.js';

const stringMap = z.record(z.string(), z.string());
const evalTime = (description: string) =>
  durationSchema
    .or(z.literal('0'))
    .or(z.literal('0s'))
    .meta({ description, examples: ['10m'] });

const testGroupSchema = z
  .object({
    name: z.string().optional().meta({ description: 'Name of this test group, shown by promtool when it fails.', examples: ['error budget burns fast'] }),
    interval: durationSchema.optional().meta({ description: 'Time between the samples of input_series; default: evaluationInterval.', examples: ['1m'] }),
    external_labels: stringMap.optional().meta({ description: "Prometheus's external labels during the test (for templates using $externalLabels).", examples: [{ cluster: 'eu-1' }] }),
    external_url: z.string().optional().meta({ description: 'The external URL during the test (for templates using $externalURL).', examples: ['https://prometheus.example.com'] }),
    input_series: z
      .array(
        z
          .object({
            series: z.string().min(1).meta({ description: 'A series in PromQL notation.', examples: ['http_requests_total{job="api",code="500"}'] }),
            values: z.string().meta({ description: "promtool's expanding notation: start+increment x count, _ for a gap, stale.", examples: ['0+10x60'] }),
          })
          .strict(),
      )
      .default([])
      .meta({ description: 'The series the test feeds Prometheus.' }),
    alert_rule_test: z
      .array(
        z
          .object({
            eval_time: evalTime('When to check, from the start of the series.'),
            alertname: z.string().min(1).meta({ description: 'The alert to check.', examples: ['ApiAvailabilityErrorBudgetBurn'] }),
            exp_alerts: z
              .array(
                z
                  .object({
                    exp_labels: stringMap.optional().meta({ description: 'The labels of one firing alert, exactly.', examples: [{ severity: 'page', slo: 'api-availability' }] }),
                    exp_annotations: stringMap.optional().meta({ description: 'Its annotations, exactly.', examples: [{ runbook_url: 'https://runbooks.example.com/api-availability' }] }),
                  })
                  .strict(),
              )
              .default([])
              .meta({ description: 'The alerts expected to fire at eval_time; empty: none.' }),
          })
          .strict(),
      )
      .optional()
      .meta({ description: 'Checks of the alerts firing at given times.' }),
    promql_expr_test: z
      .array(
        z
          .object({
            expr: z.string().min(1).meta({ description: 'A PromQL expression to evaluate.', examples: ['slo:sli_error:ratio_rate5m{slo="api-availability"}'] }),
            eval_time: evalTime('When to evaluate it, from the start of the series.'),
            exp_samples: z
              .array(
                z
                  .object({
                    labels: z.string().optional().meta({ description: 'The labels of one expected sample, in PromQL notation.', examples: ['{slo="api-availability"}'] }),
                    value: z.union([z.number(), z.string()]).meta({ description: 'Its expected value.', examples: [0.5] }),
                  })
                  .strict(),
              )
              .default([])
              .meta({ description: 'The samples expected; empty: none.' }),
          })
          .strict(),
      )
      .optional()
      .meta({ description: 'Checks of PromQL expressions (recording rules) at given times.' }),
  })
  .strict();

export const RULE_SOURCE = /^(SLO|AlertRules)\/[a-z0-9]([a-z0-9._-]*[a-z0-9])?$/;

export const alertTestSpecSchema = z
  .object({
    /** Addresses of the rule resources under test. */
    rules: z
      .array(z.string().regex(RULE_SOURCE, 'rules are addresses such as SLO/api-availability or AlertRules/api'))
      .min(1)
      .meta({ description: 'The rule resources under test, by address (SLO/NAME or AlertRules/NAME): their rendered rule files are loaded.', examples: [['SLO/api-availability']] }),
    evaluationInterval: durationSchema.optional().meta({ description: "promtool's evaluation_interval; default 1m.", examples: ['30s'] }),
    groupEvalOrder: z.array(z.string()).optional().meta({ description: "promtool's group_eval_order: rule groups evaluated in this order.", examples: [['slo-api-availability']] }),
    tests: z.array(testGroupSchema).min(1).optional().meta({ description: "promtool's tests: list, as promtool writes it (snake_case); instead of source." }),
    source: z.string().min(1).optional().meta({ description: 'A promtool test file in the repository, relative to this document (its rule_files are replaced by rules); instead of tests.', examples: ['tests/api-alerts.yml'] }),
  })
  .strict()
  .refine((s) => (s.tests === undefined) !== (s.source === undefined), { message: 'give exactly one of tests or source' })
  .meta({
    examples: [
      {
        rules: ['SLO/api-availability'],
        tests: [
          {
            name: 'a total outage pages',
            interval: '1m',
            input_series: [
              { series: 'http_requests_total{job="api",code="500"}', values: '0+60x120' },
              { series: 'http_requests_total{job="api",code="200"}', values: '0+0x120' },
            ],
            alert_rule_test: [{ eval_time: '1h', alertname: 'ApiAvailabilityErrorBudgetBurn', exp_alerts: [{ exp_labels: { severity: 'page', slo: 'api-availability', service: 'api' } }] }],
          },
        ],
      },
    ],
  });

export type AlertTestSpec = z.infer<typeof alertTestSpecSchema>;

/** Reads a promtool test file given as `source:` into `tests` (its `rule_files` are replaced by `rules`). */
export async function resolveAlertTestSource(
  spec: AlertTestSpec,
  from: { file: string },
  readFile: (relativePath: string, fromFile: string) => Promise<Buffer>,
): Promise<AlertTestSpec> {
  if (spec.source === undefined) return spec;
  const doc: unknown = parseYaml((await readFile(spec.source, from.file)).toString('utf8'));
  const parsed = z
    .object({ tests: z.array(testGroupSchema).min(1), evaluation_interval: durationSchema.optional(), group_eval_order: z.array(z.string()).optional() })
    .passthrough()
    .safeParse(doc);
  if (!parsed.success) {
    throw new Error(`${spec.source}: not a promtool test file: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  const { source: _source, ...rest } = spec;
  return {
    ...rest,
    tests: parsed.data.tests,
    ...(rest.evaluationInterval === undefined && parsed.data.evaluation_interval ? { evaluationInterval: parsed.data.evaluation_interval } : {}),
    ...(rest.groupEvalOrder === undefined && parsed.data.group_eval_order ? { groupEvalOrder: parsed.data.group_eval_order } : {}),
  };
}

/** The promtool test file for one AlertTest, given the rule file path (relative to the test file) of each address. */
export function renderAlertTest(spec: AlertTestSpec, ruleFileOf: (address: string) => string): Record<string, unknown> {
  return {
    rule_files: spec.rules.map(ruleFileOf),
    ...(spec.evaluationInterval ? { evaluation_interval: spec.evaluationInterval } : {}),
    ...(spec.groupEvalOrder ? { group_eval_order: spec.groupEvalOrder } : {}),
    tests: spec.tests ?? [],
  };
}
