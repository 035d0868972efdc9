import { describe, expect, it } from 'vitest';
import { readEnvelope } from '../spec/envelope.js';
import { parseYamlDocuments } from '../spec/parse-yaml.js';
import { changesOf, evaluatePolicies, MAX_EVALUATIONS, type PolicyChange } from './evaluate.js';
import { checkPolicyDocument, MAX_RULE_CHARS, type Policy } from './policy.js';

function check(yaml: string) {
  const doc = readEnvelope(parseYamlDocuments(yaml, 'policies.yaml').documents[0]!).document!;
  return checkPolicyDocument(doc, false);
}

function policy(yaml: string): Policy {
  const checked = check(yaml);
  expect(checked.diagnostics).toEqual([]);
  return checked.policy!;
}

const change = (over: Partial<PolicyChange> = {}): PolicyChange => ({
  address: 'File/sudo@web-1',
  kind: 'File',
  target: 'Host/web-1',
  action: 'create',
  labels: {},
  before: null,
  after: { path: '/etc/sudoers.d/deploy', mode: '0644', size: 3 },
  ...over,
});

const context = { stack: { name: 'prod', labels: {} }, approvals: [] };

describe('compiling a Policy', () => {
  it('reports a CEL syntax error at the rule, with the library excerpt', () => {
    const { policy: p, diagnostics } = check('kind: Policy\nname: p\nspec:\n  rule: "after.mode =="\n');
    expect(p).toBeUndefined();
    expect(diagnostics).toHaveLength(1);
    expect(diagnostics[0]).toMatchObject({ severity: 'error', address: 'Policy/p', source: { file: 'policies.yaml', line: 4, col: 9 } });
    expect(diagnostics[0]!.summary).toContain('is not valid CEL: Unexpected token: EOF');
  });

  it('reports a reference to an unknown top-level variable, naming the known ones', () => {
    const { diagnostics } = check('kind: Policy\nname: p\nspec:\n  match: { kinds: [File] }\n  rule: "spec.mode == \'0440\'"\n');
    expect(diagnostics[0]).toMatchObject({ source: { line: 5, col: 9 } });
    expect(diagnostics[0]!.summary).toContain('Unknown variable: spec');
    expect(diagnostics[0]!.detail).toContain('variables: resource, action, before, after, stack, approvals');
  });

  it('refuses a rule that is not a condition, a rule over the length cap, and a bad effect or action', () => {
    expect(check('kind: Policy\nname: p\nspec:\n  rule: "1 + 2"\n').diagnostics[0]!.summary).toContain('must be a condition (bool), not int');
    expect(check(`kind: Policy\nname: p\nspec:\n  rule: "${'true && '.repeat(MAX_RULE_CHARS / 8)}true"\n`).diagnostics[0]!.summary).toContain(`at most ${MAX_RULE_CHARS} characters`);
    const bad = check('kind: Policy\nname: p\nspec:\n  rule: "true"\n  effect: block\n  match: { actions: [noop] }\n');
    expect(bad.diagnostics.map((d) => d.summary)).toEqual(['spec.match.actions[0]: each action must be one of create, update, replace, delete', 'spec.effect: effect must be deny or warn']);
  });

  it('refuses a target', () => {
    expect(check('kind: Policy\nname: p\ntarget: web-1\nspec:\n  rule: "true"\n').diagnostics[0]!.summary).toContain('a Policy has no target');
  });
});

describe('evaluating policies', () => {
  const sudoers = (effect: string) =>
    policy(`kind: Policy\nname: sudoers\nspec:\n  match: { kinds: [File], actions: [create, update] }\n  rule: "!after.path.startsWith('/etc/sudoers.d/') || after.mode == '0440'"\n  effect: ${effect}\n  message: "{address} ({kind} {name} on {target}, {action} in {stack}) must be 0440"\n`);

  it('denies a failing change, with the interpolated message and the rule position', () => {
    const report = evaluatePolicies([sudoers('deny')], [change()], context);
    expect(report.denied).toBe(true);
    expect(report.verdicts).toEqual([
      { policy: 'sudoers', effect: 'deny', address: 'File/sudo@web-1', action: 'create', message: 'File/sudo@web-1 (File sudo on Host/web-1, create in prod) must be 0440', source: { file: 'policies.yaml', line: 5, col: 9 } },
    ]);
  });

  it('a warn policy gives a verdict without denying; a passing change gives none', () => {
    const warned = evaluatePolicies([sudoers('warn')], [change()], context);
    expect(warned).toMatchObject({ denied: false, verdicts: [{ effect: 'warn' }] });
    expect(evaluatePolicies([sudoers('deny')], [change({ after: { path: '/etc/sudoers.d/deploy', mode: '0440' } })], context).verdicts).toEqual([]);
  });

  it('checks only matching kinds, actions, stacks and labels', () => {
    const p = policy('kind: Policy\nname: p\nspec:\n  match: { kinds: [File], actions: [delete], stacks: [prod], labels: { tier: "*" } }\n  rule: "false"\n');
    expect(evaluatePolicies([p], [change({ action: 'delete', labels: { tier: 'db' } })], context).denied).toBe(true);
    expect(evaluatePolicies([p], [change({ action: 'create', labels: { tier: 'db' } })], context).denied).toBe(false);
    expect(evaluatePolicies([p], [change({ action: 'delete' })], context).denied).toBe(false);
    expect(evaluatePolicies([p], [change({ action: 'delete', kind: 'Directory', labels: { tier: 'db' } })], context).denied).toBe(false);
    expect(evaluatePolicies([p], [change({ action: 'delete', labels: { tier: 'db' } })], { ...context, stack: { name: 'dev', labels: {} } }).denied).toBe(false);
  });

  it('compares whole numbers as CEL ints, sees a secret as its digest only, and counts distinct approvers', () => {
    const port = policy('kind: Policy\nname: p\nspec:\n  rule: "after.size == 3 && after.password == \'sha256:abc\' && size(approvals) == 2"\n');
    const secretChange = change({ after: { size: 3, password: { $sensitive: 'sha256:abc' } } });
    expect(evaluatePolicies([port], [secretChange], { ...context, approvals: ['alice', 'bob', 'alice'] }).verdicts).toEqual([]);
    expect(evaluatePolicies([port], [secretChange], { ...context, approvals: ['alice', 'alice'] }).denied).toBe(true);
  });

  it('a rule that cannot be evaluated on a change fails it, saying why', () => {
    const p = policy('kind: Policy\nname: p\nspec:\n  rule: "after.nothere == 1"\n');
    const report = evaluatePolicies([p], [change()], context);
    expect(report.denied).toBe(true);
    expect(report.verdicts[0]!.message).toMatch(/fails Policy p \(the rule could not be evaluated: .+\)/);
  });

  it('stops after MAX_EVALUATIONS evaluations and denies the plan', () => {
    const p = policy('kind: Policy\nname: p\nspec:\n  rule: "true"\n');
    const many = Array.from({ length: MAX_EVALUATIONS + 1 }, (_, i) => change({ address: `File/f${i}@web-1` }));
    const report = evaluatePolicies([p], many, context);
    expect(report.denied).toBe(true);
    expect(report.verdicts.at(-1)!.message).toContain(`more than ${MAX_EVALUATIONS} policy evaluations`);
  });

  it('changesOf leaves noops out', () => {
    const plan = { changes: [{ address: 'File/a', kind: 'File', target: 'Host/h', action: 'noop', before: null, after: null }, { address: 'File/b', kind: 'File', target: 'Host/h', action: 'delete', before: {}, after: null }] };
    expect(changesOf(plan as never).map((c) => c.address)).toEqual(['File/b']);
  });
});
