/**
 * The Plan is a value: pure JSON, written to disk by `plan --out`, read back by
 * `apply --plan`. Apply carries out exactly the changes listed here and never
 * decides anything the plan did not say.
 */
import type { Diagnostic } from '../diag/diagnostic.js';
import type { FieldChange } from '../providers/provider.js';
import type { RenderedHealthCheck } from '../spec/host-group.js';
import type { Address } from '../spec/resource.js';
import type { PlanScope } from './scope.js';

export const PLAN_FORMAT_VERSION = 1;

export type Action = 'create' | 'update' | 'replace' | 'delete' | 'noop';

export const ACTIONS: readonly Action[] = ['create', 'update', 'replace', 'delete', 'noop'];

/** The symbol a plan shows in front of a change, as Terraform does. */
export const ACTION_SYMBOL: Record<Action, string> = {
  create: '+',
  update: '~',
  replace: '-/+',
  delete: '-',
  noop: ' ',
};

export function isChange(action: Action): boolean {
  return action !== 'noop';
}

export function isDelete(action: Action): boolean {
  return action === 'delete';
}

/** Where the desired state came from; recorded with every run. */
export interface PlanSource {
  readonly dir: string;
  readonly repo: string | null;
  readonly ref: string | null;
  readonly commit: string | null;
  readonly author: string | null;
  readonly message: string | null;
  readonly dirty: boolean | null;
}

export interface PlannedTarget {
  readonly kind: string;
  readonly spec: unknown;
}

export interface PlannedChange {
  readonly address: Address;
  readonly kind: string;
  /** Target address, e.g. `Host/web-1`. */
  readonly target: Address;
  readonly action: Action;
  /** What the provider calls it for humans (e.g. a path). */
  readonly label?: string | undefined;
  readonly reason?: string | undefined;
  /** Live state read at plan time (null when absent). */
  readonly before: unknown;
  /** Desired spec (null for delete). */
  readonly after: unknown;
  /** Last applied spec from the inventory (null when not managed yet). */
  readonly prior: unknown;
  readonly fields: readonly FieldChange[];
  /** Addresses this change must wait for (for deletes: the resources that depended on it). */
  readonly waitsFor: readonly Address[];
  /** Addresses it depends on, as recorded in the inventory after apply. */
  readonly dependsOn: readonly Address[];
  readonly specHash: string | null;
  readonly liveFingerprint: string | null;
  /** Already in the inventory (created or adopted by Capstan). */
  readonly managed: boolean;
  /** How Capstan came to manage it: kept across applies; null when not managed yet. */
  readonly origin: 'created' | 'adopted' | null;
  /** A noop whose inventory entry is missing or out of date: apply records it without touching the live object. */
  readonly recordOnly: boolean;
  /**
   * The object already exists and is not in the inventory: applying adopts it
   * (records it with origin `adopted`), on a noop without touching it. Absent
   * when false. An adopted resource removed from the spec is forgotten, not
   * deleted, unless pruning of adopted resources is asked for.
   */
  readonly adopt?: true | undefined;
  /**
   * A noop on a resource removed from the spec that Capstan adopted and did not
   * create: applying removes it from the inventory and leaves the object alone.
   * Absent when false.
   */
  readonly forget?: true | undefined;
  /** Handlers (`notify:`) this change notifies when it succeeds. */
  readonly notifies?: readonly Address[] | undefined;
  /**
   * On a handler: the changes of this plan, and the earlier notifications still
   * pending in the state, that make it react.
   */
  readonly notifiedBy?: readonly Address[] | undefined;
  /** An `update` that runs the provider's `refresh` (restart, re-run) rather than `apply`: the object itself already matches. */
  readonly refresh?: boolean | undefined;
}

/**
 * How the changes on the members of a group with `rollout:` settings go out:
 * batch by batch, each batch's hosts checked before the next one starts. Only
 * hosts with changes in this plan take part.
 */
export interface PlannedRollout {
  readonly group: string;
  /** Target addresses, batch by batch, in name order. */
  readonly batches: readonly (readonly Address[])[];
  /** Members of the group: what percentages were taken of. */
  readonly members: number;
  /** Failed hosts tolerated over the whole rollout; one more stops it. */
  readonly maxFailures: number;
  /** The health check rendered for each host of `batches`; null when the group has none. */
  readonly healthChecks: Readonly<Record<Address, RenderedHealthCheck>> | null;
}

export interface Plan {
  readonly formatVersion: typeof PLAN_FORMAT_VERSION;
  readonly stack: string;
  readonly createdAt: string;
  readonly source: PlanSource;
  /** Hash of the whole resolved spec: a saved plan refuses to apply when it moved. */
  readonly specHash: string;
  /** The stack's state serial the plan was made against. */
  readonly priorSerial: number;
  readonly targets: Readonly<Record<Address, PlannedTarget>>;
  readonly changes: readonly PlannedChange[];
  /** Absent in plans made before rollouts existed: read it as none. */
  readonly rollouts?: readonly PlannedRollout[] | undefined;
  /**
   * Present on a plan scoped to a diff (`plan --base REF`): it holds only the
   * resources that diff touches and their dependents; `skipped` were not read.
   */
  readonly scope?: PlanScope | undefined;
  /**
   * Made by `plan --offline`: compared with the last recorded state, not read
   * live (every `before` is null). Such a plan can never be applied.
   */
  readonly offline?: true | undefined;
  readonly diagnostics: readonly Diagnostic[];
}

export type ActionCounts = Record<Action, number>;

export function countActions(changes: readonly PlannedChange[]): ActionCounts {
  const counts: ActionCounts = { create: 0, update: 0, replace: 0, delete: 0, noop: 0 };
  for (const c of changes) counts[c.action] += 1;
  return counts;
}

export function hasChanges(plan: Plan): boolean {
  return plan.changes.some((c) => isChange(c.action));
}
