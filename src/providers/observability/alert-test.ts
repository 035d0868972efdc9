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

const testGroupSchema = z
  .object({
    name: z.string().optional(),
    interval: durationSchema.optional(),
    external_labels: stringMap.optional(),
    external_url: z.string().optional(),
    input_series: z.array(z.object({ series: z.string().min(1), values: z.string() }).strict()).default([]),
    alert_rule_test: z
      .array(
        z
          .object({
            eval_time: durationSchema.or(z.literal('0')).or(z.literal('0s')),
            alertname: z.string().min(1),
            exp_alerts: z.array(z.object({ exp_labels: stringMap.optional(), exp_annotations: stringMap.optional() }).strict()).default([]),
          })
          .strict(),
      )
      .optional(),
    promql_expr_test: z
      .array(
        z
          .object({
            expr: z.string().min(1),
            eval_time: durationSchema.or(z.literal('0')).or(z.literal('0s')),
            exp_samples: z.array(z.object({ labels: z.string().optional(), value: z.union([z.number(), z.string()]) }).strict()).default([]),
          })
          .strict(),
      )
      .optional(),
  })
  .strict();

export const RULE_SOURCE = /^(SLO|AlertRules)\/[a-z0-9]([a-z0-9._-]*[a-z0-9])?$/;

export const alertTestSpecSchema = z
  .object({
    /** Addresses of the rule resources under test. */
    rules: z.array(z.string().regex(RULE_SOURCE, 'rules are addresses such as SLO/api-availability or AlertRules/api')).min(1),
    evaluationInterval: durationSchema.optional(),
    groupEvalOrder: z.array(z.string()).optional(),
    tests: z.array(testGroupSchema).min(1).optional(),
    source: z.string().min(1).optional(),
  })
  .strict()
  .refine((s) => (s.tests === undefined) !== (s.source === undefined), { message: 'give exactly one of tests or source' });

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
