/**
 * Instantiation through the real loader: templates render off the event loop.
 */
import { describe, expect, it } from 'vitest';
import { formatDiagnostic } from '../diag/diagnostic.js';
import { hostProviders } from '../providers/host/index.js';
import { ProviderRegistry } from '../providers/registry.js';
import { useTempStack } from './testing/temp-stack.js';

/** Sorting three million items is one filter call: LiquidJS's own render limit cannot interrupt it (about 1 s on an idle core; keep the limits below well under that). */
const STUCK_IN_ONE_NODE = '{% assign r = (1..3000000) %}{{ r | sort | size }}';

describe('loading a stack whose template is slow', () => {
  const repo = useTempStack(new ProviderRegistry(hostProviders), 'capstan-render-pool-');

  it('keeps the event loop turning while the template renders, and reports the time limit', async () => {
    const files = {
      'hosts.yaml': `kind: Host\nname: web-1\nspec: { transport: local, root: /tmp/capstan-render-pool-root }\n`,
      'slow.yaml': 'kind: File\nname: slow\ntarget: web-1\nspec: { path: /etc/slow, template: slow.liquid }\n',
      'slow.liquid': STUCK_IN_ONE_NODE,
    };
    // Rendering on the event loop would let this interval run at most once or twice during
    // the load; in the pool it keeps ticking for the whole render.
    let ticks = 0;
    const interval = setInterval(() => ticks++, 5);
    let stack;
    try {
      stack = await repo.load(files, { renderTimeLimitMs: 300 });
    } finally {
      clearInterval(interval);
    }
    expect(ticks).toBeGreaterThanOrEqual(20);
    expect(stack.diagnostics.map(formatDiagnostic)).toEqual(['slow.yaml:4:36: File/slow: slow.liquid: rendering took longer than 300 ms (host web-1)']);
    expect(stack.resources).toEqual([]);
  });
});

describe('loading a stack whose health-check template is slow', () => {
  const repo = useTempStack(new ProviderRegistry(hostProviders), 'capstan-health-pool-');

  it('renders it in the pool too: the event loop keeps turning, and the render time budget stops it', async () => {
    const hosts = Array.from({ length: 5 }, (_, i) => `kind: Host\nname: web-${i}\nspec: { transport: local, root: /tmp/capstan-health-pool/web-${i}, groups: [web] }\n`).join('---\n');
    const files = {
      'hosts.yaml': hosts,
      'group.yaml': `kind: HostGroup\nname: web\nspec:\n  rollout:\n    healthCheck:\n      http: { url: "http://{{ host.name }}/{% assign r = (1..3000000) %}{{ r | sort | size }}" }\n`,
    };
    let ticks = 0;
    const interval = setInterval(() => ticks++, 5);
    let stack;
    try {
      stack = await repo.load(files, { renderTimeLimitMs: 300, maxRenderTimeMs: 700 });
    } finally {
      clearInterval(interval);
    }
    expect(ticks).toBeGreaterThanOrEqual(20);
    const messages = stack.diagnostics.map(formatDiagnostic);
    expect(messages.filter((m) => m.includes('healthCheck.http.url: rendering took longer than 300 ms')).length).toBeGreaterThanOrEqual(1);
    expect(messages.filter((m) => m.includes('the stack is over its template render time budget'))).toEqual([
      expect.stringMatching(/over the limit of 700 ms for the whole stack \(most used by HostGroup \(healthCheck\.http\.url\)/),
    ]);
  });
});
