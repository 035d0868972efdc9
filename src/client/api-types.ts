/**
 * What the CLI reads of the controller's API answers (src/server/app.ts): the
 * fields it shows, not every field the server sends. `--json` prints the
 * server's answer as it came.
 */
import type { AuditRecord, RunCounts } from '../state/store.js';

export type { AuditRecord };

export interface RunView {
  readonly id: number;
  readonly stack: string;
  readonly kind: string;
  readonly status: string;
  readonly commit: string | null;
  readonly author: string | null;
  readonly message: string | null;
  readonly actor: string;
  readonly startedAt: string;
  readonly finishedAt: string | null;
  readonly counts: RunCounts;
  readonly error: string | null;
}

export interface RunDetail extends RunView {
  readonly results: readonly { address: string; action: string; status: string; error: string | null; durationMs: number }[];
  readonly events: readonly { at: string; address: string | null; type: string; message: string }[];
}

export interface StackView {
  readonly name: string;
  readonly status: string;
  readonly lastAppliedCommit: string | null;
  readonly headCommit: string | null;
  readonly policy: string;
  readonly selfHeal: boolean;
  readonly drifted: number;
  readonly lastRun: RunView | null;
  readonly repo: string;
  readonly branch: string;
  readonly path: string;
  readonly error: string | null;
  readonly rollback: { commit: string; head: string | null; by?: string | null } | null;
  readonly paused?: { by: string; at: string } | null;
  readonly branchMovedBackwards: { message: string } | null;
  readonly owner: string | null;
  readonly ownedHere: boolean;
  readonly failures: number;
  /** The last reconcile pass of the replica that answered. */
  readonly lastPass: { passId: string; outcome: string; error: string | null; finishedAt: string; durationMs: number } | null;
  readonly nextPassInMs: number | null;
  readonly updatedAt: string | null;
}

export interface PlanSummary {
  readonly id: string;
  readonly state: string;
  readonly commit: string | null;
  readonly createdAt: string;
  readonly decidedBy: string | null;
  readonly decidedAt: string | null;
  readonly counts: Record<string, number>;
  readonly diagnostics: readonly { severity?: string }[];
}

export interface StackDetail extends StackView {
  readonly plan: PlanSummary | null;
}

export interface PlanView extends PlanSummary {
  readonly text: string;
  readonly plan: unknown;
}
