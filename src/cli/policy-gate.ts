/** The CLI's side of policies: check a plan, print the verdicts on stderr, say whether it may be applied. */
import { changesOf, evaluatePolicies, renderVerdicts, type PolicyReport } from '../policy/evaluate.js';
import type { Plan } from '../plan/plan.js';
import type { LoadedStack } from '../spec/load.js';

export function checkPlanPolicies(plan: Plan, stack: LoadedStack): PolicyReport {
  // The CLI records no approvals: a policy that needs them denies a CLI apply (the controller records them).
  const report = evaluatePolicies(stack.policies, changesOf(plan), { stack: { name: plan.stack, labels: {} }, approvals: [] });
  process.stderr.write(renderVerdicts(report));
  return report;
}
