/**
 * Checking a plan against the stack's policies: every change (noops aside) that a
 * policy matches is given to its rule. The result is data, a verdict per failed
 * check: the CLI prints them and refuses a denied plan, the controller does not
 * apply one. Bounded: at most MAX_EVALUATIONS rule evaluations per plan.
 */
import type { SourcePosition } from '../diag/diagnostic.js';
import type { Plan, PlannedChange } from '../plan/plan.js';
import { digestOf } from '../secrets/sensitive.js';
import { toCel, type Policy, type PolicyAction, type PolicyEffect, type PolicyInput } from './policy.js';

/** Rule evaluations one plan may take (policies × matching changes); beyond, the plan is denied. */
export const MAX_EVALUATIONS = 100_000;

export interface PolicyVerdict {
  readonly policy: string;
  readonly effect: PolicyEffect;
  readonly address: string;
  readonly action: PolicyAction;
  readonly message: string;
  /** Where the policy's rule is written. */
  readonly source: SourcePosition;
}

export interface PolicyReport {
  /** One per failed check, in change order then policy order. */
  readonly verdicts: readonly PolicyVerdict[];
  /** A verdict with effect deny: the plan must not be applied. */
  readonly denied: boolean;
}

/** What a change is checked with, besides the change itself. */
export interface PolicyContext {
  readonly stack: { readonly name: string; readonly labels: Readonly<Record<string, string>> };
  /** Who approved the plan (the controller records them); empty on the CLI. */
  readonly approvals: readonly string[];
  /** Labels of each resource, by address; missing: none. */
  readonly labels?: Readonly<Record<string, Readonly<Record<string, string>>>> | undefined;
}

/** One change as a policy sees it: what `policy test` fixtures describe too. */
export interface PolicyChange {
  readonly address: string;
  readonly kind: string;
  readonly target: string;
  readonly action: PolicyAction;
  readonly labels: Readonly<Record<string, string>>;
  readonly before: unknown;
  readonly after: unknown;
}

export function changesOf(plan: Plan, labels: PolicyContext['labels'] = {}): PolicyChange[] {
  return plan.changes.filter((c): c is PlannedChange & { action: PolicyAction } => c.action !== 'noop').map((c) => ({
    address: c.address,
    kind: c.kind,
    target: c.target,
    action: c.action,
    labels: labels?.[c.address] ?? {},
    before: c.before,
    after: c.after,
  }));
}

export function evaluatePolicies(policies: readonly Policy[], changes: readonly PolicyChange[], context: PolicyContext): PolicyReport {
  const verdicts: PolicyVerdict[] = [];
  let evaluations = 0;
  for (const change of changes) {
    for (const policy of policies) {
      if (!matches(policy, change, context.stack.name)) continue;
      if (++evaluations > MAX_EVALUATIONS) {
        const first = policies[0]!;
        verdicts.push({ policy: first.name, effect: 'deny', address: change.address, action: change.action, source: first.source, message: `the plan needs more than ${MAX_EVALUATIONS} policy evaluations: split the stack` });
        return { verdicts, denied: true };
      }
      const input = inputOf(change, context);
      let message: string | undefined;
      try {
        if (!policy.passes(input)) message = interpolate(policy.message, change, context.stack.name);
      } catch (e) {
        message = `${interpolate(policy.message, change, context.stack.name)} (the rule could not be evaluated: ${(e as Error).message.split('\n')[0]})`;
      }
      if (message !== undefined) verdicts.push({ policy: policy.name, effect: policy.effect, address: change.address, action: change.action, message, source: policy.source });
    }
  }
  return { verdicts, denied: verdicts.some((v) => v.effect === 'deny') };
}

function matches(policy: Policy, change: PolicyChange, stack: string): boolean {
  const m = policy.match;
  if (m.kinds.length > 0 && !m.kinds.includes(change.kind)) return false;
  if (m.stacks.length > 0 && !m.stacks.includes(stack)) return false;
  if (m.actions.length > 0 && !m.actions.includes(change.action)) return false;
  return Object.entries(m.labels).every(([k, v]) => change.labels[k] !== undefined && (v === '*' || change.labels[k] === v));
}

function nameOf(address: string): string {
  return address.slice(address.indexOf('/') + 1).split('@')[0]!;
}

function inputOf(change: PolicyChange, context: PolicyContext): PolicyInput {
  return {
    resource: { kind: change.kind, name: nameOf(change.address), address: change.address, labels: change.labels, target: change.target },
    action: change.action,
    before: toCel(digestSecrets(change.before)),
    after: toCel(digestSecrets(change.after)),
    stack: context.stack,
    approvals: [...new Set(context.approvals)],
  };
}

/** A secret is seen as its digest string only, never its value. */
function digestSecrets(value: unknown): unknown {
  const digest = digestOf(value);
  if (digest !== undefined) return digest;
  if (Array.isArray(value)) return value.map(digestSecrets);
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, digestSecrets(v)]));
  return value;
}

function interpolate(message: string, change: PolicyChange, stack: string): string {
  const values: Record<string, string> = { address: change.address, kind: change.kind, name: nameOf(change.address), target: change.target, action: change.action, stack };
  return message.replace(/\{(address|kind|name|target|action|stack)\}/g, (_, key: string) => values[key]!);
}

/** Verdicts for people: `FILE:LINE:COL: Policy/NAME: deny: ADDRESS: MESSAGE`. */
export function renderVerdicts(report: PolicyReport): string {
  if (report.verdicts.length === 0) return '';
  const lines = report.verdicts.map((v) => `  ${v.effect === 'deny' ? 'DENY' : 'WARN'} ${v.address} (${v.action}): ${v.message} [Policy/${v.policy} at ${v.source.file}:${v.source.line}:${v.source.col}]`);
  const head = report.denied ? '\nDenied by policy:' : '\nPolicy warnings:';
  return [head, ...lines].join('\n') + '\n';
}
