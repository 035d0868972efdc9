import type { RunCounts } from '../state/store.js';

/** A run's changes on one line: `+create ~update -/+replace -delete`, then failures and skips when there are any. */
export function formatCounts(c: RunCounts): string {
  return `+${c.create} ~${c.update} -/+${c.replace} -${c.delete}${c.failed ? ` failed ${c.failed}` : ''}${c.skipped ? ` skipped ${c.skipped}` : ''}`;
}
