/**
 * A commit whose templates loop until their limit must not freeze the controller:
 * the built `capstan serve` with two stacks from a real bare git repository, one
 * of them 3 Files x 10 hosts of a template that runs into the 2 s render limit
 * every time. While it renders (in the render pool), `/healthz` and the other
 * stack answer promptly; the bad stack ends invalid with the render-time budget.
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { api, createToken, fileYaml, gitRemote, hostYaml, killAll, serve, waitFor, type GitRemote } from './controller-harness.js';
import { assertBuilt } from './harness.js';

let remote: GitRemote;
beforeAll(assertBuilt);
afterEach(async () => {
  await killAll();
  await remote?.cleanup();
});

interface StackView {
  name: string;
  status: string;
  error: string | null;
  lastRun: { id: number } | null;
}

/** One timed request. */
async function timed<T>(request: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await request();
  return { ms: performance.now() - started, value };
}

describe('capstan serve with a stack whose templates loop until their limit', () => {
  it('keeps /healthz and the other stack responsive, and marks the bad stack invalid with the budget', async () => {
    remote = await gitRemote();
    const root = path.join(remote.base, 'root');
    const state = `sqlite:${path.join(remote.base, 'state.db')}`;
    const config = path.join(remote.base, 'serve.yaml');
    const stack = (name: string) => `  - name: ${name}\n    repo: remote.git\n    branch: main\n    path: ${name}\n    policy: auto\n    interval: 10m\n`;
    await writeFile(config, `listen: 127.0.0.1:0\nstate: ${state}\ncacheDir: cache\nshutdownGrace: 2s\nlimits:\n  renderTime: 8s\nstacks:\n${stack('bad')}${stack('good')}`);

    const files: Record<string, string> = {
      'good/hosts.yaml': hostYaml('good-1', path.join(root, 'good-1')),
      'good/motd.yaml': fileYaml('motd', 'good-1', '/etc/motd', 'fine\n'),
      // Every render runs into the 2 s limit: 30 of them would be a minute of rendering.
      'bad/slow.liquid': '{% for i in (1..15000000) %}{% for j in (1..1) %}{% endfor %}{% endfor %}',
      'bad/hosts.yaml': Array.from({ length: 10 }, (_, i) => `kind: Host\nname: web-${i}\nspec: { transport: local, root: ${root}/web-${i}, groups: [web] }\n`).join('---\n'),
    };
    for (let f = 0; f < 3; f++) files[`bad/slow-${f}.yaml`] = `kind: File\nname: slow-${f}\ntarget: group:web\nspec: { path: /etc/slow-${f}, template: slow.liquid }\n`;
    await remote.push(files, 'a good stack and a slow one');
    const operator = await createToken(state, 'operator', 'otto');
    const served = await serve(config);
    const stackOf = async (name: string) => (await api<StackView[]>(served, '/api/stacks', { token: operator })).body.find((s) => s.name === name)!;

    // While the bad stack renders: /healthz every 50 ms, and a sync of the good stack.
    const health: number[] = [];
    let badDone = false;
    const probing = (async () => {
      while (!badDone) {
        const probe = await timed(() => fetch(`${served.url}/healthz`).then((r) => r.status));
        expect(probe.value).toBe(200);
        health.push(probe.ms);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    await waitFor('the good stack applied', async () => existsSync(path.join(root, 'good-1/etc/motd')));
    const sync = await timed(() => api(served, '/api/stacks/good/sync', { method: 'POST', token: operator }));
    const badWhileSyncing = await stackOf('bad');
    const bad = await waitFor('the bad stack invalid', async () => {
      const s = await stackOf('bad');
      return s.status === 'invalid' ? s : undefined;
    }, 60_000);
    badDone = true;
    await probing;

    expect(sync.value.status).toBe(202);
    expect(sync.ms).toBeLessThan(1000);
    // The good stack was synced while the bad one was still rendering.
    expect(badWhileSyncing.status).not.toBe('invalid');
    // Rendering on the event loop would hold each of these for 2 s per render.
    expect(health.length).toBeGreaterThanOrEqual(10);
    expect(Math.max(...health)).toBeLessThan(1000);

    const run = await api<{ events: { message: string }[] }>(served, `/api/runs/${bad.lastRun!.id}`, { token: operator });
    const budget = run.body.events.map((e) => e.message).filter((m) => m.includes('budget'));
    expect(budget).toEqual([
      expect.stringMatching(
        /^slow-\d\.yaml:4:38: the stack is over its template render time budget: \d+\.\d s spent \(and stopped there\), over the limit of 8\.0 s for the whole stack \(most used by File\/slow-\d \(slow\.liquid\) .*limits\.renderTime/,
      ),
    ]);
    // Stopped at the budget, not after 30 renders of 2 s.
    expect(run.body.events.filter((e) => e.message.includes('took longer than')).length).toBeLessThan(10);
  }, 90_000);
});
