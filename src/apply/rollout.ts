/**
 * Rollouts at apply time. Each batch of a planned rollout ends in a gate: a
 * node of the walk that waits for every change on the batch's hosts, whatever
 * their outcome, then judges the batch. A host fails when one of its changes
 * failed or was skipped, or when its health check fails after its retries.
 * Failed hosts add up over the rollout; one more than `maxFailures` stops it,
 * and every change on the hosts of later batches is skipped, naming the stop.
 *
 * The changes of a host in batch k+1 wait for gate k; on such a host, changes
 * also wait for the host's deletes (what the two-phase walk does for the other
 * hosts), so one walk carries the whole rollout.
 */
import type { PlannedChange, PlannedRollout } from '../plan/plan.js';
import type { Address } from '../spec/resource.js';
import type { ResultStatus } from '../state/store.js';
import { describeProbe } from '../plan/rollout.js';
import { checkHealth, type TransportOf } from './health-check.js';

export interface GateNode {
  readonly key: string;
  readonly waitsFor: readonly string[];
  readonly runsDespiteFailures: true;
  readonly rollout: PlannedRollout;
  /** 0-based. */
  readonly batch: number;
}

export interface RolloutHostFailure {
  readonly host: Address;
  readonly why: string;
}

/** How a rollout went, for the apply result and the CLI. */
export interface RolloutOutcome {
  readonly group: string;
  readonly batches: number;
  /** Batches judged healthy enough to go on (all of them when it completed). */
  readonly batchesPassed: number;
  /** Set when the rollout stopped: the 0-based batch after which it stopped, and why. */
  readonly stopped: { readonly afterBatch: number; readonly message: string } | null;
  readonly failedHosts: readonly RolloutHostFailure[];
  /** Hosts of the rollout where at least one change succeeded. */
  readonly changedHosts: readonly Address[];
  /** Hosts of the rollout where nothing changed (skipped, failed, or never reached). */
  readonly unchangedHosts: readonly Address[];
}

export function gateKey(group: string, batch: number): string {
  return `rollout:${group}#${batch + 1}`;
}

/** Where each host of a rollout sits, and the gate nodes. */
export class RolloutSchedule {
  readonly gates: GateNode[] = [];
  readonly #batchOf = new Map<Address, { rollout: PlannedRollout; batch: number }>();

  constructor(
    readonly rollouts: readonly PlannedRollout[],
    /** The changes of the apply, by target address. */
    changesOn: ReadonlyMap<Address, readonly PlannedChange[]>,
  ) {
    for (const rollout of rollouts) {
      rollout.batches.forEach((hosts, batch) => {
        for (const host of hosts) this.#batchOf.set(host, { rollout, batch });
      });
    }
    for (const rollout of rollouts) {
      rollout.batches.forEach((hosts, batch) => {
        const waitsFor = hosts.flatMap((host) => (changesOn.get(host) ?? []).map((c) => c.address));
        if (batch > 0) waitsFor.push(gateKey(rollout.group, batch - 1));
        this.gates.push({ key: gateKey(rollout.group, batch), waitsFor, runsDespiteFailures: true, rollout, batch });
      });
    }
  }

  /** Is this target part of a rollout? */
  has(target: Address): boolean {
    return this.#batchOf.has(target);
  }

  /** The extra keys a change on a rollout host waits for: the previous gate, and the host's deletes. */
  waitsFor(change: PlannedChange, deletesOnHost: readonly Address[]): string[] {
    const at = this.#batchOf.get(change.target);
    if (!at) return [];
    const extra = at.batch > 0 ? [gateKey(at.rollout.group, at.batch - 1)] : [];
    if (change.action !== 'delete') extra.push(...deletesOnHost);
    return extra;
  }
}

/** Runs the gates of one apply and keeps what they found. */
export class RolloutJudge {
  readonly #state = new Map<string, { failed: RolloutHostFailure[]; passed: number; stopped: RolloutOutcome['stopped'] }>();

  constructor(
    private readonly schedule: RolloutSchedule,
    private readonly changesOn: (host: Address) => readonly PlannedChange[],
    private readonly outcomeOf: (address: Address) => ResultStatus | undefined,
    private readonly transportOf: (host: Address) => TransportOf,
    private readonly signal: AbortSignal,
  ) {
    for (const r of schedule.rollouts) this.#state.set(r.group, { failed: [], passed: 0, stopped: null });
  }

  /**
   * Judges one batch; resolves to whether the rollout goes on, a message for the
   * run's events (null when the rollout had already stopped and this batch was
   * never started), and the reason its later changes are skipped.
   */
  async judge(gate: GateNode): Promise<{ ok: boolean; message: string | null; skipReason: string }> {
    const { rollout, batch } = gate;
    const state = this.#state.get(rollout.group)!;
    const skipReason = (afterBatch: number) => `the rollout of group ${rollout.group} stopped after batch ${afterBatch + 1} of ${rollout.batches.length}`;
    if (state.stopped) return { ok: false, message: null, skipReason: skipReason(state.stopped.afterBatch) };
    const hosts = rollout.batches[batch]!;
    const failedHere: RolloutHostFailure[] = [];
    const toCheck: Address[] = [];
    for (const host of hosts) {
      const bad = this.changesOn(host).find((c) => this.outcomeOf(c.address) !== 'succeeded');
      if (bad) failedHere.push({ host, why: `${bad.address} ${this.outcomeOf(bad.address) ?? 'did not run'}` });
      else toCheck.push(host);
    }
    if (rollout.healthChecks) {
      const checks = await Promise.all(
        toCheck.map(async (host) => {
          const check = rollout.healthChecks![host];
          if (!check) return { host, why: 'no health check was planned for it' };
          try {
            const result = await checkHealth(check, this.transportOf(host), this.signal);
            return result.healthy ? null : { host, why: `health check failed: ${result.detail}` };
          } catch (err) {
            if (this.signal.aborted) throw err;
            return { host, why: `health check ${describeProbe(check)} could not run: ${err instanceof Error ? err.message : String(err)}` };
          }
        }),
      );
      for (const c of checks) if (c) failedHere.push(c);
    }
    state.failed.push(...failedHere);
    const label = `rollout of group ${rollout.group}, batch ${batch + 1} of ${rollout.batches.length} (${hosts.map(nameOf).join(', ')})`;
    const failures = failedHere.length === 0 ? 'every host healthy' : failedHere.map((f) => `${nameOf(f.host)}: ${f.why}`).join('; ');
    if (state.failed.length > rollout.maxFailures) {
      const more = batch + 1 < rollout.batches.length;
      const message =
        `${label}: ${failures}; ${state.failed.length} failed host${state.failed.length === 1 ? '' : 's'} in all, over the budget of ${rollout.maxFailures}` +
        (more ? `: the rollout stops, later batches are not changed` : '');
      state.stopped = { afterBatch: batch, message };
      return { ok: false, message, skipReason: skipReason(batch) };
    }
    state.passed = batch + 1;
    return { ok: true, message: `${label}: ${failures}`, skipReason: '' };
  }

  outcomes(): RolloutOutcome[] {
    return this.schedule.rollouts.map((rollout) => {
      const state = this.#state.get(rollout.group)!;
      const hosts = rollout.batches.flat();
      const changed = hosts.filter((h) => this.changesOn(h).some((c) => this.outcomeOf(c.address) === 'succeeded' && c.action !== 'noop'));
      return {
        group: rollout.group,
        batches: rollout.batches.length,
        batchesPassed: state.passed,
        stopped: state.stopped,
        failedHosts: state.failed,
        changedHosts: changed,
        unchangedHosts: hosts.filter((h) => !changed.includes(h)),
      };
    });
  }
}

/** `Host/web-1` -> `web-1`. */
export function nameOf(target: Address): string {
  return target.slice(target.indexOf('/') + 1);
}
