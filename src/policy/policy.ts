/**
 * `Policy`: a rule every plan must pass before it is applied, written in CEL
 * (the language of Kubernetes ValidatingAdmissionPolicy):
 *
 *   kind: Policy
 *   name: no-world-ssh
 *   spec:
 *     match: { kinds: [Firewall], actions: [create, update, replace] }
 *     rule: "!after.rules.exists(r, r.port == 22 && r.source == '0.0.0.0/0')"
 *     effect: deny
 *     message: "{address} opens port 22 to the world"
 *
 * A Policy is inventory, not a resource: the spec layer reads and compiles it at
 * load time (no target, no dependsOn, no live state); it is never planned or applied.
 * CEL runs in-process but sandboxed: no user JavaScript, no I/O, non-Turing-complete.
 */
import { Environment, ParseError } from '@marcbachmann/cel-js';
import { z } from 'zod';
import { error, type Diagnostic, type SourcePosition } from '../diag/diagnostic.js';
import { parseSpec, type LoadedDocument } from '../spec/envelope.js';
import { baseAddress } from '../spec/resource.js';

export const POLICY_KIND = 'Policy';
/** Fixtures of `capstan policy test` (src/policy/policy-test.ts); the loader skips them. */
export const POLICY_TEST_KIND = 'PolicyTest';

/** Actions a policy can match: the changes of a plan (a noop is never checked). */
export const POLICY_ACTIONS = ['create', 'update', 'replace', 'delete'] as const;
export type PolicyAction = (typeof POLICY_ACTIONS)[number];
export type PolicyEffect = 'deny' | 'warn';

/** Longest rule, in characters. */
export const MAX_RULE_CHARS = 4096;
/** Most CEL syntax nodes in one rule (the library's parse-time limit). */
export const MAX_RULE_NODES = 2000;

/** The variables a rule sees, and their CEL types. */
export const POLICY_VARIABLES = {
  resource: 'map',
  action: 'string',
  before: 'dyn',
  after: 'dyn',
  stack: 'map',
  approvals: 'list<string>',
} as const;

export interface PolicyMatch {
  /** Empty: every kind. */
  readonly kinds: readonly string[];
  /** Empty: every stack. */
  readonly stacks: readonly string[];
  /** Labels the resource must all have (value `*`: any value); empty: any. */
  readonly labels: Readonly<Record<string, string>>;
  /** Empty: every change. */
  readonly actions: readonly PolicyAction[];
}

/** What a rule is evaluated with: one change of a plan, in CEL's types (integers are bigints). */
export interface PolicyInput {
  readonly resource: { readonly kind: string; readonly name: string; readonly address: string; readonly labels: Readonly<Record<string, string>>; readonly target: string };
  readonly action: PolicyAction;
  readonly before: unknown;
  readonly after: unknown;
  readonly stack: { readonly name: string; readonly labels: Readonly<Record<string, string>> };
  readonly approvals: readonly string[];
}

/** A policy whose rule compiled. */
export interface Policy {
  readonly name: string;
  readonly match: PolicyMatch;
  readonly rule: string;
  readonly effect: PolicyEffect;
  /** May hold `{address}`, `{kind}`, `{name}`, `{target}`, `{action}`, `{stack}`. */
  readonly message: string;
  /** Where the rule is written. */
  readonly source: SourcePosition;
  /** True when the change passes; throws when the rule cannot be evaluated on it. */
  readonly passes: (input: PolicyInput) => boolean;
}

const stringList = (what: string) => z.array(z.string({ error: `each entry of ${what} must be a string` }), { error: `${what} must be a list` }).default([]);

const matchSchema = z
  .strictObject({
    kinds: stringList('kinds').meta({ description: 'Kinds the policy applies to; empty: all.', examples: [['Firewall']] }),
    stacks: stringList('stacks').meta({ description: 'Stacks the policy applies to; empty: all.', examples: [['prod']] }),
    labels: z.record(z.string(), z.string({ error: 'a label value must be a string ("*": any value)' })).default({}).meta({ description: 'Labels the resource must have; "*" matches any value.' }),
    actions: z
      .array(z.enum(POLICY_ACTIONS, { error: `each action must be one of ${POLICY_ACTIONS.join(', ')}` }), { error: 'actions must be a list' })
      .default([])
      .meta({ description: 'Changes the policy applies to; empty: all.', examples: [['delete']] }),
  })
  .default({ kinds: [], stacks: [], labels: {}, actions: [] });

export const policySchema = z.strictObject({
  match: matchSchema.meta({ description: 'Which changes of a plan the rule is checked on.' }),
  rule: z
    .string({ error: 'rule must be a CEL expression (a string)' })
    .min(1, { error: 'rule must not be empty' })
    .max(MAX_RULE_CHARS, { error: `rule must be at most ${MAX_RULE_CHARS} characters` })
    .meta({ description: 'A CEL expression that must be true for the change to pass.', examples: ["after.mode == '0440'"] }),
  effect: z.enum(['deny', 'warn'], { error: 'effect must be deny or warn' }).default('deny').meta({ description: 'deny: the plan is not applied; warn: it is, with a warning.' }),
  message: z.string({ error: 'message must be a string' }).optional().meta({ description: 'Shown when the rule fails; may hold {address}, {kind}, {name}, {target}, {action}, {stack}.' }),
});

export const policyDescription = 'A CEL rule every plan is checked against before it is applied (deny or warn); inventory, never applied.';

const environment = (() => {
  const env = new Environment({ limits: { maxAstNodes: MAX_RULE_NODES, maxDepth: 64, maxListElements: 256, maxMapEntries: 256, maxCallArguments: 16 } });
  for (const [name, type] of Object.entries(POLICY_VARIABLES)) env.registerVariable(name, type);
  return env;
})();

/** The rule compiled, or why not (the library's message, caret excerpt included). */
export function compileRule(rule: string): { ok: true; passes: (input: PolicyInput) => boolean } | { ok: false; reason: string } {
  let parsed: ReturnType<Environment['parse']>;
  try {
    parsed = environment.parse(rule);
  } catch (e) {
    if (e instanceof ParseError || e instanceof Error) return { ok: false, reason: (e as Error).message };
    throw e;
  }
  const checked = parsed.check();
  if (!checked.valid) return { ok: false, reason: checked.error?.message ?? 'the rule does not type-check' };
  if (checked.type !== 'bool' && checked.type !== 'dyn') return { ok: false, reason: `the rule must be a condition (bool), not ${checked.type}` };
  return {
    ok: true,
    passes: (input) => {
      const value = parsed(toCel(input) as Record<string, unknown>);
      if (typeof value !== 'boolean') throw new Error(`the rule gave ${typeof value === 'bigint' ? 'an int' : typeof value}, not true or false`);
      return value;
    },
  };
}

/** Plan JSON into CEL's types: whole numbers become ints (bigint), so `port == 22` compares ints. */
export function toCel(value: unknown): unknown {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? BigInt(value) : value;
  if (Array.isArray(value)) return value.map(toCel);
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toCel(v)]));
  return value === undefined ? null : value;
}

/** Parses and compiles a Policy document; a target, dependsOn or notify is an error, and so is a rule that does not compile. */
export function checkPolicyDocument(doc: LoadedDocument, invalidTarget: boolean): { policy: Policy | undefined; diagnostics: Diagnostic[] } {
  const address = baseAddress(doc.kind, doc.name);
  const diagnostics: Diagnostic[] = [];
  if (doc.target !== undefined || invalidTarget) {
    diagnostics.push(error('a Policy has no target: it is checked against every plan', { address, source: doc.positionOf(['target']), detail: 'remove target:; use match: to choose what it checks' }));
  }
  for (const key of ['dependsOn', 'notify'] as const) {
    if (doc[key].length > 0) diagnostics.push(error(`a Policy cannot have ${key}: it is not applied`, { address, source: doc.positionOf([key]), detail: `remove ${key}:` }));
  }
  const parsed = parseSpec(policySchema, doc);
  if (!parsed.ok) return { policy: undefined, diagnostics: [...diagnostics, ...parsed.diagnostics] };
  const spec = parsed.spec;
  const source = doc.positionOf(['spec', 'rule']);
  const compiled = compileRule(spec.rule);
  if (!compiled.ok) {
    diagnostics.push(
      error(`the rule of Policy ${doc.name} is not valid CEL: ${firstLine(compiled.reason)}`, {
        address,
        source,
        detail: `${compiled.reason.split('\n').slice(1).join('\n').trim()}\nvariables: ${Object.keys(POLICY_VARIABLES).join(', ')}`.trim(),
      }),
    );
  }
  if (diagnostics.length > 0 || !compiled.ok) return { policy: undefined, diagnostics };
  const policy: Policy = {
    name: doc.name,
    match: spec.match,
    rule: spec.rule,
    effect: spec.effect,
    message: spec.message ?? `{address} (${'{action}'}) fails Policy ${doc.name}`,
    source,
    passes: compiled.passes,
  };
  return { policy, diagnostics };
}

function firstLine(text: string): string {
  return text.split('\n')[0]!.trim();
}
