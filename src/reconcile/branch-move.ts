/**
 * A branch that moved backwards: its new head is an ancestor of the commit
 * last applied (a force-push to an older commit, a reverted merge pushed as a
 * reset). Applying it reverts what was applied and prunes what the older spec
 * does not have, so the controller says so everywhere (the plan carries a
 * warning and `branchMovedBackwards`, the stack view and the run's events show
 * it, an SSE event is sent) and, under `policy: auto`, waits for an operator's
 * approval before applying a plan that deletes anything.
 */
import { warning } from '../diag/diagnostic.js';
import type { Plan } from '../plan/plan.js';

export interface BranchMove {
  readonly branch: string;
  /** The commit last applied. */
  readonly from: string;
  /** The new head: an ancestor of `from`. */
  readonly to: string;
}

/** The plan the controller stores: a Plan, with the move when there was one. */
export type ControllerPlan = Plan & { readonly branchMovedBackwards?: BranchMove | undefined };

export function describeMove(move: BranchMove): string {
  return `the branch ${move.branch} moved backwards from ${move.from.slice(0, 12)} to ${move.to.slice(0, 12)}`;
}

/** The plan with the move recorded on it and a warning among its diagnostics. */
export function markMovedBackwards(plan: Plan, move: BranchMove): ControllerPlan {
  const w = warning(`${describeMove(move)} (a force-push to an older commit?): this plan reverts to the older commit and deletes what it does not have`);
  return { ...plan, diagnostics: [...plan.diagnostics, w], branchMovedBackwards: move };
}

/** The move a stored plan records, if any. */
export function branchMoveOf(plan: unknown): BranchMove | null {
  const move = (plan as { branchMovedBackwards?: unknown } | null | undefined)?.branchMovedBackwards;
  if (typeof move !== 'object' || move === null) return null;
  const { branch, from, to } = move as Record<string, unknown>;
  return typeof branch === 'string' && typeof from === 'string' && typeof to === 'string' ? { branch, from, to } : null;
}

/** Whether applying the plan removes anything (a delete, or the delete half of a replace). */
export function deletesAnything(plan: Plan): boolean {
  return plan.changes.some((c) => c.action === 'delete' || c.action === 'replace');
}
