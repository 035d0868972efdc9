/**
 * A directed graph over string keys where an edge `from -> to` means "from depends
 * on to". Every answer is deterministic: lists come back in key order (plain
 * code-unit comparison, never locale-dependent), so plans and error messages are
 * stable across runs and machines.
 */

/** Thrown by `topologicalOrder` when the graph has a cycle; `cycle` is `[a, b, ..., a]`. */
export class CycleError extends Error {
  constructor(
    readonly cycle: readonly string[],
    options?: ErrorOptions,
  ) {
    super(`dependency cycle: ${cycle.join(' -> ')}`, options);
    this.name = 'CycleError';
  }
}

/** Default bound on `findCycles`: enumerating every elementary cycle can be exponential. */
export const DEFAULT_MAX_CYCLES = 100;

function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export class Dag {
  /** key -> the keys it depends on */
  private readonly out = new Map<string, Set<string>>();
  /** key -> the keys that depend on it */
  private readonly in = new Map<string, Set<string>>();

  addNode(key: string): void {
    if (!this.out.has(key)) {
      this.out.set(key, new Set());
      this.in.set(key, new Set());
    }
  }

  /** `from` depends on `to`. Adds either node when missing; adding an edge twice is a no-op. */
  addEdge(from: string, to: string): void {
    this.addNode(from);
    this.addNode(to);
    this.out.get(from)!.add(to);
    this.in.get(to)!.add(from);
  }

  has(key: string): boolean {
    return this.out.has(key);
  }

  hasEdge(from: string, to: string): boolean {
    return this.out.get(from)?.has(to) ?? false;
  }

  get size(): number {
    return this.out.size;
  }

  nodes(): string[] {
    return [...this.out.keys()].sort(compareKeys);
  }

  /** What `key` depends on (direct edges only), in key order; empty for an unknown key. */
  dependenciesOf(key: string): string[] {
    return [...(this.out.get(key) ?? [])].sort(compareKeys);
  }

  /** What depends on `key` (direct edges only), in key order; empty for an unknown key. */
  dependentsOf(key: string): string[] {
    return [...(this.in.get(key) ?? [])].sort(compareKeys);
  }

  /**
   * Every key, dependencies before their dependents. Among keys that are ready at
   * the same time the smallest key comes first, so the order is a pure function of
   * the graph. Throws `CycleError` naming one cycle when there is none.
   */
  topologicalOrder(): string[] {
    const remaining = new Map<string, number>();
    const ready = new MinHeap();
    for (const [key, deps] of this.out) {
      remaining.set(key, deps.size);
      if (deps.size === 0) ready.push(key);
    }
    const order: string[] = [];
    for (let key = ready.pop(); key !== undefined; key = ready.pop()) {
      order.push(key);
      for (const dependent of this.in.get(key)!) {
        const left = remaining.get(dependent)! - 1;
        remaining.set(dependent, left);
        if (left === 0) ready.push(dependent);
      }
    }
    if (order.length !== this.out.size) {
      const cycle = this.findCycles(1)[0];
      // Unreachable: a graph Kahn's algorithm cannot finish always has a cycle.
      if (!cycle) throw new Error('topological order incomplete but no cycle found');
      throw new CycleError(cycle);
    }
    return order;
  }

  /**
   * The elementary cycles, each once, as `[a, b, ..., a]` starting at its smallest
   * key (a self-dependency is `[a, a]`). Cycles come in key order of their first
   * member. At most `max` cycles are returned: enumerating all of them can be
   * exponential, and the first few are what a person fixes first.
   *
   * Johnson's algorithm, run only inside strongly connected components, iterative
   * so that long chains cannot overflow the call stack.
   */
  findCycles(max: number = DEFAULT_MAX_CYCLES): string[][] {
    const cycles: string[][] = [];
    if (max <= 0) return cycles;
    const successors = (key: string, within: ReadonlySet<string>): string[] =>
      [...this.out.get(key)!].filter((k) => within.has(k)).sort(compareKeys);

    // Work queue of vertex sets, each a strongly connected component still to search. Only
    // what is left after peeling off every node with no dependencies, repeatedly, can be on
    // a cycle: for the usual acyclic graph that is nothing, found in linear time.
    const pending: Set<string>[] = this.components(this.unpeelable()).filter((c) => this.isCyclic(c));
    pending.sort((a, b) => compareKeys(minKey(a), minKey(b)));
    while (pending.length > 0 && cycles.length < max) {
      const component = pending.shift()!;
      const start = minKey(component);
      const adjacency = new Map<string, string[]>();
      for (const key of component) adjacency.set(key, successors(key, component));
      for (const cycle of circuitsFrom(start, adjacency, max - cycles.length)) cycles.push(cycle);
      // Every cycle through `start` is found; the rest lie in the component without it.
      component.delete(start);
      const rest = this.components(component).filter((c) => this.isCyclic(c));
      pending.push(...rest);
      pending.sort((a, b) => compareKeys(minKey(a), minKey(b)));
    }
    return cycles;
  }

  /** The nodes Kahn's algorithm cannot remove: those on a cycle or depending on one. */
  private unpeelable(): Set<string> {
    const remaining = new Map<string, number>();
    const ready: string[] = [];
    for (const [key, deps] of this.out) {
      remaining.set(key, deps.size);
      if (deps.size === 0) ready.push(key);
    }
    while (ready.length > 0) {
      const key = ready.pop()!;
      remaining.delete(key);
      for (const dependent of this.in.get(key)!) {
        const left = remaining.get(dependent)! - 1;
        remaining.set(dependent, left);
        if (left === 0) ready.push(dependent);
      }
    }
    return new Set(remaining.keys());
  }

  private isCyclic(component: ReadonlySet<string>): boolean {
    if (component.size > 1) return true;
    const only = component.values().next().value as string;
    return this.out.get(only)!.has(only);
  }

  /** Strongly connected components of the subgraph induced by `within` (iterative Tarjan). */
  private components(within: ReadonlySet<string>): Set<string>[] {
    const index = new Map<string, number>();
    const low = new Map<string, number>();
    const onStack = new Set<string>();
    const stack: string[] = [];
    const result: Set<string>[] = [];
    let next = 0;
    for (const root of within) {
      if (index.has(root)) continue;
      const frames: { key: string; succ: Iterator<string> }[] = [];
      const enter = (key: string): void => {
        index.set(key, next);
        low.set(key, next);
        next++;
        stack.push(key);
        onStack.add(key);
        frames.push({ key, succ: this.out.get(key)!.values() });
      };
      enter(root);
      while (frames.length > 0) {
        const frame = frames[frames.length - 1]!;
        const step = frame.succ.next();
        if (!step.done) {
          const w = step.value;
          if (!within.has(w)) continue;
          if (!index.has(w)) enter(w);
          else if (onStack.has(w)) low.set(frame.key, Math.min(low.get(frame.key)!, index.get(w)!));
          continue;
        }
        frames.pop();
        const parent = frames[frames.length - 1];
        if (parent) low.set(parent.key, Math.min(low.get(parent.key)!, low.get(frame.key)!));
        if (low.get(frame.key) === index.get(frame.key)) {
          const component = new Set<string>();
          let w: string;
          do {
            w = stack.pop()!;
            onStack.delete(w);
            component.add(w);
          } while (w !== frame.key);
          result.push(component);
        }
      }
    }
    return result;
  }
}

function minKey(keys: ReadonlySet<string>): string {
  let min: string | undefined;
  for (const k of keys) if (min === undefined || k < min) min = k;
  return min!;
}

/** Johnson's CIRCUIT(s): every elementary cycle through `start` inside one component. */
function circuitsFrom(start: string, adjacency: ReadonlyMap<string, string[]>, max: number): string[][] {
  const found: string[][] = [];
  const blocked = new Set<string>([start]);
  const blockedBy = new Map<string, Set<string>>();
  const path: string[] = [start];
  const frames: { key: string; next: number; closed: boolean }[] = [{ key: start, next: 0, closed: false }];

  const unblock = (key: string): void => {
    const work = [key];
    while (work.length > 0) {
      const u = work.pop()!;
      if (!blocked.delete(u)) continue;
      const waiting = blockedBy.get(u);
      if (waiting) {
        work.push(...waiting);
        waiting.clear();
      }
    }
  };

  while (frames.length > 0) {
    const frame = frames[frames.length - 1]!;
    const succ = adjacency.get(frame.key)!;
    if (frame.next < succ.length) {
      const w = succ[frame.next++]!;
      if (w === start) {
        found.push([...path, start]);
        frame.closed = true;
        if (found.length >= max) return found;
      } else if (!blocked.has(w)) {
        blocked.add(w);
        path.push(w);
        frames.push({ key: w, next: 0, closed: false });
      }
      continue;
    }
    frames.pop();
    path.pop();
    if (frame.closed) {
      unblock(frame.key);
    } else {
      for (const w of succ) {
        let waiting = blockedBy.get(w);
        if (!waiting) blockedBy.set(w, (waiting = new Set()));
        waiting.add(frame.key);
      }
    }
    const parent = frames[frames.length - 1];
    if (parent && frame.closed) parent.closed = true;
  }
  return found;
}

/** A binary min-heap of strings: the ready set of the topological walk. */
class MinHeap {
  private readonly items: string[] = [];

  push(item: string): void {
    const a = this.items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]! <= item) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = item;
  }

  pop(): string | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length === 0 || last === undefined) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= a.length) break;
      const r = l + 1;
      const c = r < a.length && a[r]! < a[l]! ? r : l;
      if (a[c]! >= last) break;
      a[i] = a[c]!;
      i = c;
    }
    a[i] = last;
    return top;
  }
}
