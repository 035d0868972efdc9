/**
 * Walks a set of nodes in dependency order with bounded parallelism. A node
 * whose dependency failed is skipped, and so are its own dependents (unless it
 * `runsDespiteFailures`). Once the
 * signal is aborted no new node starts; nodes already running finish, and the
 * ones never started are reported as interrupted.
 */

export interface WalkNode {
  readonly key: string;
  /** Keys of nodes that must succeed first; keys outside the walked set count as done. */
  readonly waitsFor: readonly string[];
  /**
   * Run once every node in `waitsFor` has settled, whatever its outcome (a
   * rollout's check between batches judges the failures itself).
   */
  readonly runsDespiteFailures?: boolean;
}

export type NodeOutcome = 'succeeded' | 'failed';

export interface WalkCallbacks<N extends WalkNode> {
  run(node: N): Promise<NodeOutcome>;
  skip(node: N, because: string): Promise<void>;
  interrupted(node: N): Promise<void>;
}

export async function walk<N extends WalkNode>(
  nodes: readonly N[],
  callbacks: WalkCallbacks<N>,
  options: { concurrency: number; signal: AbortSignal },
): Promise<void> {
  const byKey = new Map(nodes.map((n) => [n.key, n]));
  const pending = new Map<string, number>();
  const dependents = new Map<string, string[]>();
  const blockedBy = new Map<string, string>();
  for (const n of nodes) {
    let count = 0;
    for (const dep of new Set(n.waitsFor)) {
      if (!byKey.has(dep) || dep === n.key) continue;
      count += 1;
      const list = dependents.get(dep) ?? [];
      list.push(n.key);
      dependents.set(dep, list);
    }
    pending.set(n.key, count);
  }
  const ready = nodes.filter((n) => pending.get(n.key) === 0).map((n) => n.key);
  const settled = new Set<string>();
  let running = 0;

  return new Promise<void>((resolve, reject) => {
    const finishIfDone = (): void => {
      if (running > 0) return;
      if (ready.length > 0 && !options.signal.aborted) return;
      const left = nodes.filter((n) => !settled.has(n.key));
      // Whatever is left either was never reachable (a cycle: validation forbids it) or was interrupted.
      Promise.all(left.map((n) => (settled.add(n.key), callbacks.interrupted(n)))).then(() => resolve(), reject);
    };

    const release = (key: string, outcome: NodeOutcome | 'skipped'): Promise<void> => {
      const after: Promise<void>[] = [];
      for (const d of dependents.get(key) ?? []) {
        if (outcome !== 'succeeded' && !blockedBy.has(d) && !byKey.get(d)!.runsDespiteFailures) blockedBy.set(d, key);
        const left = (pending.get(d) ?? 1) - 1;
        pending.set(d, left);
        if (left === 0) {
          const blocker = blockedBy.get(d);
          if (blocker !== undefined) {
            const node = byKey.get(d)!;
            settled.add(d);
            after.push(callbacks.skip(node, blocker).then(() => release(d, 'skipped')));
          } else {
            ready.push(d);
          }
        }
      }
      return Promise.all(after).then(() => undefined);
    };

    const pump = (): void => {
      while (running < options.concurrency && ready.length > 0 && !options.signal.aborted) {
        const key = ready.shift()!;
        const node = byKey.get(key)!;
        settled.add(key);
        running += 1;
        callbacks
          .run(node)
          .catch(() => 'failed' as const)
          .then((outcome) => release(key, outcome))
          .then(
            () => {
              running -= 1;
              pump();
            },
            (err: unknown) => reject(err),
          );
      }
      finishIfDone();
    };
    pump();
  });
}
