import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CycleError, Dag } from './dag.js';

function dagOf(edges: readonly (readonly [string, string])[], nodes: readonly string[] = []): Dag {
  const g = new Dag();
  for (const n of nodes) g.addNode(n);
  for (const [from, to] of edges) g.addEdge(from, to);
  return g;
}

/** Checks that a reported cycle is a real closed walk without repeated vertices. */
function expectRealCycle(g: Dag, cycle: readonly string[]): void {
  expect(cycle.length).toBeGreaterThanOrEqual(2);
  expect(cycle[0]).toBe(cycle[cycle.length - 1]);
  const members = cycle.slice(0, -1);
  expect(new Set(members).size).toBe(members.length);
  for (let i = 0; i + 1 < cycle.length; i++) expect(g.hasEdge(cycle[i]!, cycle[i + 1]!)).toBe(true);
  // Canonical rotation: starts at its smallest member.
  expect([...members].sort()[0]).toBe(cycle[0]);
}

/** Random DAG: nodes k00..k(n-1) with edges only from a higher to a lower index, under shuffled names. */
const randomDag = (maxNodes: number, edgesPerNode: number) =>
  fc
  .integer({ min: 1, max: maxNodes })
  .chain((n) =>
    fc.record({
      names: fc.shuffledSubarray(
        Array.from({ length: n }, (_, i) => `k${String(i).padStart(2, '0')}`),
        { minLength: n, maxLength: n },
      ),
      edges: fc.array(
        fc.tuple(fc.integer({ min: 0, max: n - 1 }), fc.integer({ min: 0, max: n - 1 })),
        { maxLength: n * edgesPerNode },
      ),
    }),
  )
  .map(({ names, edges }) => ({
    nodes: names,
    edges: edges.filter(([a, b]) => a !== b).map(([a, b]) => [names[Math.max(a, b)]!, names[Math.min(a, b)]!] as const),
  }));

describe('Dag', () => {
  it('answers structural questions in key order', () => {
    const g = dagOf([
      ['c', 'a'],
      ['c', 'b'],
      ['b', 'a'],
    ]);
    g.addNode('d');
    expect(g.nodes()).toEqual(['a', 'b', 'c', 'd']);
    expect(g.has('d')).toBe(true);
    expect(g.has('z')).toBe(false);
    expect(g.dependenciesOf('c')).toEqual(['a', 'b']);
    expect(g.dependentsOf('a')).toEqual(['b', 'c']);
    expect(g.dependenciesOf('z')).toEqual([]);
    expect(g.size).toBe(4);
  });

  it('orders dependencies first and breaks ties by key', () => {
    const g = dagOf(
      [
        ['app', 'dir'],
        ['motd', 'dir'],
        ['dir', 'pkg'],
      ],
      ['zeta', 'alpha'],
    );
    expect(g.topologicalOrder()).toEqual(['alpha', 'pkg', 'dir', 'app', 'motd', 'zeta']);
  });

  it('is deterministic regardless of insertion order', () => {
    const edges = [
      ['b', 'a'],
      ['c', 'a'],
      ['d', 'b'],
      ['d', 'c'],
    ] as const;
    const forward = dagOf(edges).topologicalOrder();
    const backward = dagOf([...edges].reverse()).topologicalOrder();
    expect(forward).toEqual(['a', 'b', 'c', 'd']);
    expect(backward).toEqual(forward);
  });

  it('throws CycleError carrying the cycle', () => {
    const g = dagOf([
      ['a', 'b'],
      ['b', 'c'],
      ['c', 'a'],
      ['d', 'a'],
    ]);
    let thrown: unknown;
    try {
      g.topologicalOrder();
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(CycleError);
    expect((thrown as CycleError).cycle).toEqual(['a', 'b', 'c', 'a']);
    expect((thrown as CycleError).message).toBe('dependency cycle: a -> b -> c -> a');
  });

  it('finds self-dependencies and every elementary cycle once', () => {
    const g = dagOf([
      ['a', 'a'],
      ['b', 'c'],
      ['c', 'b'],
      ['c', 'd'],
      ['d', 'b'],
      ['e', 'b'],
    ]);
    expect(g.findCycles()).toEqual([
      ['a', 'a'],
      ['b', 'c', 'b'],
      ['b', 'c', 'd', 'b'],
    ]);
  });

  it('finds no cycles in a DAG', () => {
    expect(dagOf([['a', 'b']]).findCycles()).toEqual([]);
  });

  it('bounds the number of cycles reported', () => {
    // A complete graph on 8 nodes has thousands of elementary cycles.
    const keys = 'abcdefgh'.split('');
    const g = new Dag();
    for (const a of keys) for (const b of keys) if (a !== b) g.addEdge(a, b);
    const cycles = g.findCycles(50);
    expect(cycles).toHaveLength(50);
    for (const c of cycles) expectRealCycle(g, c);
    expect(new Set(cycles.map((c) => c.join())).size).toBe(50);
  });

  it('handles long chains without overflowing the stack', () => {
    const g = new Dag();
    const n = 10_000;
    for (let i = 1; i < n; i++) g.addEdge(`n${i}`, `n${i - 1}`);
    expect(g.topologicalOrder()).toHaveLength(n);
    g.addEdge('n0', `n${n - 1}`);
    const cycles = g.findCycles();
    expect(cycles).toHaveLength(1);
    expect(cycles[0]).toHaveLength(n + 1);
  });

  it('property: every edge target comes before its source', () => {
    fc.assert(
      fc.property(randomDag(30, 3), ({ nodes, edges }) => {
        const g = dagOf(edges, nodes);
        const order = g.topologicalOrder();
        expect([...order].sort()).toEqual([...nodes].sort());
        const at = new Map(order.map((k, i) => [k, i]));
        for (const [from, to] of edges) expect(at.get(to)!).toBeLessThan(at.get(from)!);
        expect(g.findCycles()).toEqual([]);
        // Same graph built in another order gives the same answer.
        expect(dagOf([...edges].reverse(), [...nodes].reverse()).topologicalOrder()).toEqual(order);
      }),
    );
  });

  it('property: a planted cycle is found', () => {
    fc.assert(
      fc.property(
        // Small and sparse: every elementary cycle is enumerated, and their number grows fast.
        randomDag(12, 2).chain((g) =>
          fc.record({
            g: fc.constant(g),
            planted: fc.shuffledSubarray(g.nodes, { minLength: 1, maxLength: Math.min(g.nodes.length, 6) }),
          }),
        ),
        ({ g: { nodes, edges }, planted }) => {
          const ring = planted.map((k, i) => [k, planted[(i + 1) % planted.length]!] as const);
          const g = dagOf([...edges, ...ring], nodes);
          expect(() => g.topologicalOrder()).toThrow(CycleError);
          const cycles = g.findCycles(Number.MAX_SAFE_INTEGER);
          expect(cycles.length).toBeGreaterThan(0);
          for (const c of cycles) expectRealCycle(g, c);
          // The planted ring itself is among them, in canonical rotation.
          const start = planted.indexOf([...planted].sort()[0]!);
          const expected = [...planted.slice(start), ...planted.slice(0, start), planted[start]!];
          expect(cycles.map((c) => c.join())).toContain(expected.join());
          // Each once.
          expect(new Set(cycles.map((c) => c.join())).size).toBe(cycles.length);
        },
      ),
    );
  });
});
