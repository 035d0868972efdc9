/**
 * The render pool with real worker processes: renders leave the event loop free,
 * a render stuck inside one Liquid node is terminated at its time limit, a worker
 * over its memory limit dies alone, and the pool goes on with fresh workers.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { RenderPool, type RenderJob } from './render-pool.js';

/** Sorting three million items is one filter call: LiquidJS's own render limit cannot interrupt it (about 5 s on one core). */
const STUCK_IN_ONE_NODE = '{% assign r = (1..3000000) %}{{ r | sort | size }}';

const pool = new RenderPool({ size: 2, maxMemoryMiB: 128, graceMs: 100 });
afterAll(() => pool.close());

const job = (text: string, extra: Partial<RenderJob> = {}): RenderJob => ({
  templateId: text,
  name: 'templates/t.liquid',
  text,
  vars: {},
  maxOutputBytes: 1024 * 1024,
  timeLimitMs: 2000,
  ...extra,
});

describe('RenderPool', () => {
  it('renders with the variables, and reports a template error with its position', async () => {
    const [ok, undefinedVar, syntax] = await Promise.all([
      pool.render(job('port {{ port }}', { vars: { port: 8080 } })),
      pool.render(job('a\n{{ nope }}')),
      pool.render(job('{% if x %}')),
    ]);
    expect(ok).toMatchObject({ ok: true, output: 'port 8080', bytes: 9 });
    expect(undefinedVar).toMatchObject({ ok: false, failure: { file: 'templates/t.liquid', line: 2, col: 4, undefinedVariable: 'nope', phase: 'render' } });
    expect(syntax).toMatchObject({ ok: false, failure: { phase: 'parse', reason: 'tag {% if x %} not closed' } });
  });

  it('terminates a render stuck inside one filter at its time limit, then renders the next one in a fresh worker', async () => {
    const stuck = await pool.render(job(STUCK_IN_ONE_NODE, { timeLimitMs: 200 }));
    expect(stuck).toMatchObject({ ok: false, failure: { reason: 'rendering took longer than 200 ms', limit: 'time' } });
    expect(await pool.render(job('after {{ n }}', { vars: { n: 1 } }))).toMatchObject({ ok: true, output: 'after 1' });
  });

  it('a worker over its memory limit fails that render only, and the next render gets a fresh worker', async () => {
    const small = new RenderPool({ size: 1, maxMemoryMiB: 64 });
    try {
      // Millions of small pieces of output (no single huge allocation, under LiquidJS's own bounds).
      const big = await small.render(job('{% for i in (1..15000000) %}abcdefghij{% endfor %}', { timeLimitMs: 30_000, maxOutputBytes: 2 ** 30 }));
      expect(big).toMatchObject({ ok: false, failure: { reason: 'rendering needs more than 64 MiB of memory', limit: 'memory' } });
      expect(await small.render(job('still {{ n }}', { vars: { n: 2 } }))).toMatchObject({ ok: true, output: 'still 2' });
    } finally {
      await small.close();
    }
  });
});
