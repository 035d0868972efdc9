/**
 * Controller events: what the SSE stream (`GET /api/events`) and the per-stack
 * event list show. In memory only (the store keeps runs, results and their
 * events); a bounded ring per stack.
 */
export type ControllerEventType =
  | 'reconcile.started'
  | 'reconcile.finished'
  | 'plan.failed'
  | 'plan.pending'
  | 'plan.approved'
  | 'plan.stale'
  | 'plan.denied'
  | 'drift.detected'
  | 'apply.started'
  | 'apply.finished'
  | 'resource.started'
  | 'resource.finished'
  | 'rollback.requested'
  | 'rollback.ended'
  | 'branch.moved-backwards'
  | 'sync.requested'
  | 'stack.paused'
  | 'stack.resumed';

export interface ControllerEvent {
  readonly id: number;
  readonly at: string;
  readonly type: ControllerEventType;
  readonly stack: string;
  /** The reconcile pass that emitted it. */
  readonly passId: string | null;
  /** The store's run, when there is one. */
  readonly runId: number | null;
  readonly message: string;
  readonly data?: Record<string, unknown> | undefined;
}

export type EventInput = Omit<ControllerEvent, 'id' | 'at'>;

export class EventBus {
  readonly #listeners = new Set<(event: ControllerEvent) => void>();
  readonly #recent = new Map<string, ControllerEvent[]>();
  readonly #keep: number;
  #nextId = 1;

  constructor(keepPerStack = 200) {
    this.#keep = keepPerStack;
  }

  emit(input: EventInput): ControllerEvent {
    const event: ControllerEvent = { id: this.#nextId++, at: new Date().toISOString(), ...input };
    const ring = this.#recent.get(event.stack) ?? [];
    ring.push(event);
    if (ring.length > this.#keep) ring.splice(0, ring.length - this.#keep);
    this.#recent.set(event.stack, ring);
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch {
        // A broken listener (a closed stream) must not stop the others.
      }
    }
    return event;
  }

  /** Returns the unsubscribe function. */
  subscribe(listener: (event: ControllerEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Newest last. */
  recent(stack: string, limit = 100): ControllerEvent[] {
    return (this.#recent.get(stack) ?? []).slice(-limit);
  }

  get listenerCount(): number {
    return this.#listeners.size;
  }
}
