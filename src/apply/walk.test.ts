import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { walk, type WalkNode } from './walk.js';

function node(key: string, waitsFor: string[] = []): WalkNode {
  return { key, waitsFor };
}

async function record(nodes: WalkNode[], opts: { fail?: Set<string>; concurrency?: number; signal?: AbortSignal; delayMs?: number } = {}) {
  const order: string[] = [];
  const skipped: [string, string][] = [];
  const interrupted: string[] = [];
  let running = 0;
  let maxRunning = 0;
  await walk(
    nodes,
    {
      run: async (n) => {
        running += 1;
        maxRunning = Math.max(maxRunning, running);
        await new Promise((r) => setTimeout(r, opts.delayMs ?? 1));
        running -= 1;
        order.push(n.key);
        return opts.fail?.has(n.key) ? 'failed' : 'succeeded';
      },
      skip: async (n, because) => void skipped.push([n.key, because]),
      interrupted: async (n) => void interrupted.push(n.key),
    },
    { concurrency: opts.concurrency ?? 4, signal: opts.signal ?? new AbortController().signal },
  );
  return { order, skipped, interrupted, maxRunning };
}

describe('walk', () => {
  it('runs a node that runsDespiteFailures once its dependencies settled, failed or skipped, and still skips its dependents on its own failure', async () => {
    const gate: WalkNode = { key: 'gate', waitsFor: ['a', 'b'], runsDespiteFailures: true };
    const { order, skipped } = await record([node('a'), node('b', ['a']), gate, node('next', ['gate'])], { fail: new Set(['a', 'gate']) });
    expect(order).toEqual(['a', 'gate']);
    expect(skipped).toEqual([
      ['b', 'a'],
      ['next', 'gate'],
    ]);
  });

  it('runs dependencies before dependents', async () => {
    const { order } = await record([node('c', ['b']), node('b', ['a']), node('a')]);
    expect(order).toEqual(['a', 'b', 'c']);
  });

  it('never runs more than the concurrency limit at once', async () => {
    const nodes = Array.from({ length: 30 }, (_, i) => node(`n${i}`));
    const { order, maxRunning } = await record(nodes, { concurrency: 3, delayMs: 5 });
    expect(order).toHaveLength(30);
    expect(maxRunning).toBe(3);
  });

  it('skips every transitive dependent of a failure and runs the rest', async () => {
    const { order, skipped } = await record(
      [node('a'), node('b', ['a']), node('c', ['b']), node('d'), node('e', ['d'])],
      { fail: new Set(['a']) },
    );
    expect(order.sort()).toEqual(['a', 'd', 'e']);
    expect(skipped).toEqual([
      ['b', 'a'],
      ['c', 'b'],
    ]);
  });

  it('treats dependencies outside the walked set as done', async () => {
    const { order } = await record([node('x', ['not-in-plan'])]);
    expect(order).toEqual(['x']);
  });

  it('starts nothing new once aborted and reports the rest as interrupted', async () => {
    const controller = new AbortController();
    const nodes = Array.from({ length: 10 }, (_, i) => node(`n${i}`, i > 0 ? [`n${i - 1}`] : []));
    const done: string[] = [];
    const interrupted: string[] = [];
    await walk(
      nodes,
      {
        run: async (n) => {
          if (n.key === 'n2') controller.abort();
          done.push(n.key);
          return 'succeeded';
        },
        skip: async () => undefined,
        interrupted: async (n) => void interrupted.push(n.key),
      },
      { concurrency: 2, signal: controller.signal },
    );
    expect(done).toEqual(['n0', 'n1', 'n2']);
    expect(interrupted).toEqual(['n3', 'n4', 'n5', 'n6', 'n7', 'n8', 'n9']);
  });

  it('respects every edge of random DAGs', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(fc.nat(), { maxLength: 4 }), { minLength: 1, maxLength: 25 }), async (deps) => {
        // node i may only wait for nodes with a smaller index: always acyclic
        const nodes = deps.map((d, i) => node(`n${i}`, i === 0 ? [] : d.map((x) => `n${x % i}`)));
        const { order, interrupted } = await record(nodes, { concurrency: 3, delayMs: 0 });
        expect(interrupted).toEqual([]);
        const at = new Map(order.map((k, i) => [k, i]));
        for (const n of nodes) for (const w of n.waitsFor) expect(at.get(w)!).toBeLessThan(at.get(n.key)!);
      }),
      { numRuns: 50 },
    );
  });
});
