/**
 * `capstan policy test`: unit tests for policies. A `PolicyTest` document holds
 * cases, each a plan-like list of changes and the verdict expected of each policy:
 *
 *   kind: PolicyTest
 *   name: firewall
 *   spec:
 *     cases:
 *       - name: ssh open to the world
 *         changes:
 *           - { address: Firewall/edge@web-1, action: create, after: { rules: [{ port: 22, source: 0.0.0.0/0 }] } }
 *         expect: { no-world-ssh: deny }
 *
 * A verdict is `pass` (no change failed the policy), `warn` or `deny` (a change
 * failed it; the policy's effect). Policies not named in `expect` are not checked.
 */
import { z } from 'zod';
import { error, type Diagnostic, type SourcePosition } from '../diag/diagnostic.js';
import { parseSpec, readEnvelope, type LoadedDocument } from '../spec/envelope.js';
import { listYamlFiles, readYamlText } from '../spec/load.js';
import { MAX_FILE_BYTES, parseYamlDocuments } from '../spec/parse-yaml.js';
import { baseAddress, parseAddress } from '../spec/resource.js';
import { evaluatePolicies, type PolicyChange } from './evaluate.js';
import { checkPolicyDocument, POLICY_ACTIONS, POLICY_KIND, POLICY_TEST_KIND, type Policy } from './policy.js';

const VERDICTS = ['pass', 'warn', 'deny'] as const;
type Verdict = (typeof VERDICTS)[number];
const labels = z.record(z.string(), z.string({ error: 'a label value must be a string' })).default({});

const changeSchema = z.strictObject({
  address: z.string({ error: 'address must be a string such as Firewall/edge@web-1' }).refine((a) => parseAddress(a) !== undefined, { error: 'address must be Kind/name or Kind/name@target' }),
  target: z.string().optional(),
  action: z.enum(POLICY_ACTIONS, { error: `action must be one of ${POLICY_ACTIONS.join(', ')}` }),
  labels,
  before: z.unknown().default(null),
  after: z.unknown().default(null),
});

const caseSchema = z.strictObject({
  name: z.string({ error: 'each case needs a name' }),
  stack: z.strictObject({ name: z.string().default('default'), labels }).default({ name: 'default', labels: {} }),
  approvals: z.array(z.string()).default([]),
  changes: z.array(changeSchema, { error: 'changes must be a list' }).min(1, { error: 'a case needs at least one change' }),
  expect: z.record(z.string(), z.enum(VERDICTS, { error: 'an expected verdict is pass, warn or deny' })),
});

export const policyTestSchema = z.strictObject({ cases: z.array(caseSchema, { error: 'cases must be a list' }).min(1, { error: 'a PolicyTest needs at least one case' }) });

export interface CaseResult {
  readonly test: string;
  readonly name: string;
  readonly source: SourcePosition;
  /** Policy name, expected and actual verdict, for each expectation that did not hold. */
  readonly failures: readonly { policy: string; expected: Verdict; actual: Verdict | 'unknown policy'; messages: readonly string[] }[];
}

export interface PolicyTestRun {
  readonly policies: number;
  readonly cases: readonly CaseResult[];
  /** Load problems (bad YAML, a rule that does not compile, a bad fixture): the run fails. */
  readonly diagnostics: readonly Diagnostic[];
}

/** Reads every YAML file under `dir`: its Policy documents and its PolicyTest cases; runs each case. */
export async function runPolicyTests(dir: string): Promise<PolicyTestRun> {
  const listing = await listYamlFiles(dir);
  const diagnostics: Diagnostic[] = [...listing.diagnostics];
  const policies = new Map<string, Policy>();
  const tests: LoadedDocument[] = [];
  for (const file of listing.files) {
    const text = readYamlText(dir, file, MAX_FILE_BYTES);
    if (typeof text !== 'string') {
      diagnostics.push(text);
      continue;
    }
    const parsed = parseYamlDocuments(text, file);
    diagnostics.push(...parsed.diagnostics);
    for (const p of parsed.documents) {
      if (p.value['kind'] !== POLICY_KIND && p.value['kind'] !== POLICY_TEST_KIND) continue;
      const envelope = readEnvelope(p);
      diagnostics.push(...envelope.diagnostics);
      const doc = envelope.document;
      if (!doc) continue;
      if (doc.kind === POLICY_TEST_KIND) tests.push(doc);
      else {
        const checked = checkPolicyDocument(doc, envelope.invalidKeys.has('target'));
        diagnostics.push(...checked.diagnostics);
        if (checked.policy) policies.set(checked.policy.name, checked.policy);
      }
    }
  }
  const cases: CaseResult[] = [];
  for (const doc of tests) {
    const parsed = parseSpec(policyTestSchema, doc);
    if (!parsed.ok) {
      diagnostics.push(...parsed.diagnostics);
      continue;
    }
    parsed.spec.cases.forEach((c, i) => {
      const changes: PolicyChange[] = c.changes.map((ch) => {
        const a = parseAddress(ch.address)!;
        return { address: ch.address, kind: a.kind, target: ch.target ?? (a.instance ? `Host/${a.instance}` : ''), action: ch.action, labels: ch.labels, before: ch.before, after: ch.after };
      });
      const failures: CaseResult['failures'][number][] = [];
      for (const [name, expected] of Object.entries(c.expect)) {
        const policy = policies.get(name);
        if (!policy) {
          failures.push({ policy: name, expected, actual: 'unknown policy', messages: [] });
          continue;
        }
        const report = evaluatePolicies([policy], changes, { stack: c.stack, approvals: c.approvals });
        const actual: Verdict = report.verdicts.length === 0 ? 'pass' : policy.effect;
        if (actual !== expected) failures.push({ policy: name, expected, actual, messages: report.verdicts.map((v) => v.message) });
      }
      cases.push({ test: baseAddress(doc.kind, doc.name), name: c.name, source: doc.positionOf(['spec', 'cases', i]), failures });
    });
  }
  if (tests.length === 0 && diagnostics.length === 0) diagnostics.push(error(`no ${POLICY_TEST_KIND} document under ${dir}`, { detail: 'write cases as kind: PolicyTest (docs/policies.md)' }));
  return { policies: policies.size, cases, diagnostics };
}
