/**
 * The last line of `capstan apply`, in the words of the plan's summary line
 * (src/plan/render-text.ts `summaryLine`) in the past tense: what the plan
 * called "2 to refresh, 1 to forget" the apply reports as "2 refreshed, 1
 * forgotten", not as updates and no-ops.
 */
import type { ApplyReporter, ChangeOutcome } from '../apply/reporter.js';
import type { PlannedChange } from '../plan/plan.js';

interface Tally {
  created: number;
  updated: number;
  refreshed: number;
  replaced: number;
  deleted: number;
  adopted: number;
  forgotten: number;
  failed: number;
  skipped: number;
}

/** Passes every event on to `inner` and counts the outcomes. */
export class OutcomeTally implements ApplyReporter {
  readonly counts: Tally = { created: 0, updated: 0, refreshed: 0, replaced: 0, deleted: 0, adopted: 0, forgotten: 0, failed: 0, skipped: 0 };
  constructor(private readonly inner: ApplyReporter) {}
  started(total: number, runId: number): void {
    this.inner.started(total, runId);
  }
  began(change: PlannedChange): void {
    this.inner.began(change);
  }
  finished(o: ChangeOutcome): void {
    this.inner.finished(o);
    const c = this.counts;
    if (o.status === 'failed') c.failed += 1;
    else if (o.status === 'skipped') c.skipped += 1;
    else if (o.change.forget) c.forgotten += 1;
    else {
      if (o.change.adopt) c.adopted += 1;
      if (o.change.refresh) c.refreshed += 1;
      else if (o.change.action === 'create') c.created += 1;
      else if (o.change.action === 'update') c.updated += 1;
      else if (o.change.action === 'replace') c.replaced += 1;
      else if (o.change.action === 'delete') c.deleted += 1;
    }
  }
  /**
   * Record-only changes (adopting what already matches, forgetting) are not
   * reported one by one: count those of `changes` that did not fail.
   */
  countRecordOnly(changes: readonly PlannedChange[], failed: ReadonlySet<string>): void {
    for (const c of changes) {
      if (!c.recordOnly || failed.has(c.address)) continue;
      if (c.forget) this.counts.forgotten += 1;
      else if (c.adopt) this.counts.adopted += 1;
    }
  }
  note(message: string): void {
    this.inner.note?.(message);
  }
  ended(): void {
    this.inner.ended();
  }
}

/** `1 created, 0 updated, 2 refreshed, 0 replaced, 0 deleted, 1 forgotten, 0 failed, 0 skipped`: refreshed, adopted, forgotten only when there were some, as in the plan. */
export function applySummary(c: Tally): string {
  const optional = (n: number, word: string): string => (n > 0 ? `, ${n} ${word}` : '');
  return (
    `${c.created} created, ${c.updated} updated${optional(c.refreshed, 'refreshed')}, ${c.replaced} replaced, ${c.deleted} deleted` +
    `${optional(c.adopted, 'adopted')}${optional(c.forgotten, 'forgotten')}, ${c.failed} failed, ${c.skipped} skipped`
  );
}
