import { describe, expect, it } from 'vitest';
import { ReconcileQueue } from './queue.js';
import { FakeClock, settle } from './testing/fake-clock.js';

/** A handler whose passes end only when the test says so. */
function controlledHandler() {
  const started: string[] = [];
  const finishers: (() => void)[] = [];
  let running = 0;
  let maxRunning = 0;
  const handler = async (key: string): Promise<void> => {
    started.push(key);
    running += 1;
    maxRunning = Math.max(maxRunning, running);
    await new Promise<void>((resolve) => finishers.push(resolve));
    running -= 1;
  };
  return {
    handler,
    started,
    get maxRunning() {
      return maxRunning;
    },
    async finishNext() {
      finishers.shift()?.();
      await settle();
    },
  };
}

describe('ReconcileQueue', () => {
  it('queues a stack once however many times it is asked for', async () => {
    const h = controlledHandler();
    const q = new ReconcileQueue(h.handler, { concurrency: 1, clock: new FakeClock() });
    q.add('a');
    q.add('b');
    q.add('b');
    q.add('b');
    await settle();
    expect(h.started).toEqual(['a']);
    await h.finishNext();
    expect(h.started).toEqual(['a', 'b']);
    await h.finishNext();
    expect(h.started).toEqual(['a', 'b']);
  });

  it('runs at most one pass per stack; requests during a pass coalesce into one follow-up', async () => {
    const h = controlledHandler();
    const q = new ReconcileQueue(h.handler, { concurrency: 4, clock: new FakeClock() });
    q.add('prod');
    await settle();
    for (let i = 0; i < 10; i++) q.add('prod');
    await settle();
    expect(h.started).toEqual(['prod']);
    await h.finishNext();
    expect(h.started).toEqual(['prod', 'prod']);
    expect(h.maxRunning).toBe(1);
    await h.finishNext();
    expect(h.started).toEqual(['prod', 'prod']);
  });

  it('bounds the stacks reconciled at once', async () => {
    const h = controlledHandler();
    const q = new ReconcileQueue(h.handler, { concurrency: 2, clock: new FakeClock() });
    for (const k of ['a', 'b', 'c', 'd']) q.add(k);
    await settle();
    expect(h.started).toEqual(['a', 'b']);
    await h.finishNext();
    expect(h.started).toEqual(['a', 'b', 'c']);
    expect(h.maxRunning).toBe(2);
  });

  it('schedule replaces the pending timer; after keeps the sooner one', async () => {
    const clock = new FakeClock();
    const h = controlledHandler();
    const q = new ReconcileQueue(h.handler, { concurrency: 1, clock });
    q.schedule('a', 60_000);
    q.schedule('a', 10_000);
    expect(clock.pendingDelays()).toEqual([10_000]);
    q.after('a', 30_000);
    expect(q.nextIn('a')).toBe(10_000);
    q.after('a', 5_000);
    expect(q.nextIn('a')).toBe(5_000);
    await clock.advance(4_999);
    expect(h.started).toEqual([]);
    await clock.advance(1);
    expect(h.started).toEqual(['a']);
  });

  it('survives a handler that throws', async () => {
    const seen: string[] = [];
    const q = new ReconcileQueue(
      async (k) => {
        seen.push(k);
        throw new Error('boom');
      },
      { concurrency: 1, clock: new FakeClock() },
    );
    q.add('a');
    await settle();
    q.add('a');
    await settle();
    expect(seen).toEqual(['a', 'a']);
  });

  it('stop waits for passes in flight and takes no more work', async () => {
    const clock = new FakeClock();
    const h = controlledHandler();
    const q = new ReconcileQueue(h.handler, { concurrency: 1, clock });
    q.add('a');
    q.add('b');
    q.schedule('c', 1_000);
    await settle();
    let stopped = false;
    const stopping = q.stop().then(() => (stopped = true));
    await settle();
    expect(stopped).toBe(false);
    q.add('d');
    await h.finishNext();
    await stopping;
    expect(stopped).toBe(true);
    await clock.advance(5_000);
    expect(h.started).toEqual(['a']);
  });
});
