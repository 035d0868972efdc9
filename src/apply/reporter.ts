import type { PlannedChange } from '../plan/plan.js';
import type { ResultStatus } from '../state/store.js';

export interface ChangeOutcome {
  readonly change: PlannedChange;
  readonly status: ResultStatus;
  readonly error: string | null;
  readonly durationMs: number;
}

/** Hears about an apply as it happens: the CLI shows progress, the controller streams events. */
export interface ApplyReporter {
  started(total: number, runId: number): void;
  began(change: PlannedChange): void;
  finished(outcome: ChangeOutcome): void;
  /** A line about the run as a whole, e.g. a rollout batch judged. */
  note?(message: string): void;
  ended(): void;
}

export const silentReporter: ApplyReporter = {
  started: () => undefined,
  began: () => undefined,
  finished: () => undefined,
  ended: () => undefined,
};
