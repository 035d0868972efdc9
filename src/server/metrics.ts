/**
 * Prometheus metrics of the controller (`GET /metrics`), every name prefixed
 * `capstan_`. monitoring/capstan-alerts.yaml and capstan-dashboard.json use
 * these names: change them together.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { StackConfig } from '../reconcile/config.js';
import type { ControllerObserver, RunnerOutcome } from '../reconcile/controller.js';
import type { StackStatusRecord } from '../state/store.js';

export class ControllerMetrics implements ControllerObserver {
  readonly registry = new Registry();
  readonly #reconcileDuration: Histogram<'stack'>;
  readonly #reconcileTotal: Counter<'stack' | 'outcome'>;
  readonly #drifted: Gauge<'stack'>;
  readonly #lastApplied: Gauge<'stack' | 'commit'>;
  readonly #outOfSync: Gauge<'stack' | 'policy'>;
  readonly #status: Gauge<'stack' | 'status'>;
  readonly #failures: Gauge<'stack'>;
  readonly #lastSuccess: Gauge<'stack'>;
  readonly #webhooks: Counter<'provider' | 'result'>;
  readonly #applyResults: Counter<'kind' | 'status'>;
  readonly #httpRejected: Counter<'reason'>;
  readonly #commitOf = new Map<string, string>();
  readonly #statusOf = new Map<string, string>();

  constructor(version: string) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'capstan_' });
    new Gauge({ name: 'capstan_build_info', help: 'Capstan version', labelNames: ['version'], registers }).set({ version }, 1);
    this.#reconcileDuration = new Histogram({
      name: 'capstan_reconcile_duration_seconds',
      help: 'Duration of reconcile passes, by stack',
      labelNames: ['stack'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800],
      registers,
    });
    this.#reconcileTotal = new Counter({
      name: 'capstan_reconcile_total',
      help: 'Reconcile passes by stack and outcome (error and terminal are failures)',
      labelNames: ['stack', 'outcome'],
      registers,
    });
    this.#drifted = new Gauge({ name: 'capstan_stack_drifted_resources', help: 'Resources whose live state differs from the last applied spec', labelNames: ['stack'], registers });
    this.#lastApplied = new Gauge({ name: 'capstan_stack_last_applied_info', help: 'The commit last applied to each stack', labelNames: ['stack', 'commit'], registers });
    this.#outOfSync = new Gauge({
      name: 'capstan_stack_out_of_sync',
      help: '1 while the branch head differs from the last applied commit',
      labelNames: ['stack', 'policy'],
      registers,
    });
    this.#status = new Gauge({ name: 'capstan_stack_status', help: '1 for the current status of each stack', labelNames: ['stack', 'status'], registers });
    this.#failures = new Gauge({ name: 'capstan_stack_consecutive_failures', help: 'Reconcile passes failed in a row', labelNames: ['stack'], registers });
    this.#lastSuccess = new Gauge({
      name: 'capstan_stack_last_successful_reconcile_timestamp_seconds',
      help: 'When a pass of the stack last ended without error',
      labelNames: ['stack'],
      registers,
    });
    this.#webhooks = new Counter({ name: 'capstan_webhook_deliveries_total', help: 'Webhook deliveries by provider and result', labelNames: ['provider', 'result'], registers });
    this.#httpRejected = new Counter({
      name: 'capstan_http_rejected_total',
      help: 'API requests refused before reaching a route (no valid token, no such route): counted here, never stored in the audit log',
      labelNames: ['reason'],
      registers,
    });
    this.#applyResults = new Counter({ name: 'capstan_apply_results_total', help: 'Resource changes applied, by provider kind and status', labelNames: ['kind', 'status'], registers });
  }

  /** Makes every stack visible from the start, before its first pass. */
  declareStacks(stacks: readonly StackConfig[]): void {
    for (const s of stacks) {
      this.#reconcileTotal.inc({ stack: s.name, outcome: 'error' }, 0);
      this.#failures.set({ stack: s.name }, 0);
      this.#drifted.set({ stack: s.name }, 0);
    }
  }

  passFinished(stack: string, outcome: RunnerOutcome, seconds: number): void {
    this.#reconcileTotal.inc({ stack, outcome });
    if (outcome !== 'unchanged' && outcome !== 'not-owner') this.#reconcileDuration.observe({ stack }, seconds);
    if (outcome !== 'error' && outcome !== 'not-owner') this.#lastSuccess.set({ stack }, Date.now() / 1000);
  }

  stackState(stack: StackConfig, status: StackStatusRecord | undefined, failures: number): void {
    this.#failures.set({ stack: stack.name }, failures);
    if (!status) return;
    this.#drifted.set({ stack: stack.name }, status.drifted);
    const commit = status.lastAppliedCommit;
    const previous = this.#commitOf.get(stack.name);
    if (commit && commit !== previous) {
      if (previous) this.#lastApplied.remove({ stack: stack.name, commit: previous });
      this.#lastApplied.set({ stack: stack.name, commit }, 1);
      this.#commitOf.set(stack.name, commit);
    }
    const outOfSync = status.headCommit !== null && status.headCommit !== status.lastAppliedCommit ? 1 : 0;
    this.#outOfSync.set({ stack: stack.name, policy: stack.policy }, outOfSync);
    const before = this.#statusOf.get(stack.name);
    if (before !== status.status) {
      if (before) this.#status.remove({ stack: stack.name, status: before });
      this.#status.set({ stack: stack.name, status: status.status }, 1);
      this.#statusOf.set(stack.name, status.status);
    }
  }

  resourceApplied(kind: string, status: string): void {
    this.#applyResults.inc({ kind, status });
  }

  /** `reason`: `unauthenticated_<missing|malformed|unknown|revoked|expired>` or `unknown_route`. */
  httpRejected(reason: string): void {
    this.#httpRejected.inc({ reason });
  }

  webhook(provider: string, result: string): void {
    this.#webhooks.inc({ provider, result });
  }
}
