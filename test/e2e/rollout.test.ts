/**
 * A rollout through the built CLI on four real sshd hosts in network namespaces:
 * batches of two, a health check run on each host over SSH between batches. A
 * host that fails its check stops the rollout before the second batch, and the
 * CLI names the hosts that changed and those that did not; once the host is
 * healthy, the next apply finishes the rollout.
 */
import * as fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFleet, type Fleet } from './fleet/netns.js';
import { assertBuilt, capstan, workspace, type Workspace } from './harness.js';

let fleet: Fleet;
let ws: Workspace;
let markers: string;

beforeAll(async () => {
  assertBuilt();
  fleet = await createFleet({ size: 4 });
  ws = await workspace();
  markers = path.join(path.dirname(ws.repo), 'down');
  await fs.mkdir(markers);
}, 60_000);
afterAll(async () => {
  await fleet?.destroy();
  await ws?.cleanup();
});

const motd = (h: (typeof fleet.hosts)[number]) => fs.readFile(path.join(h.root, 'etc/motd'), 'utf8').catch(() => null);

describe('rollout over ssh', () => {
  it('stops after the batch with an unhealthy host, then finishes once it is healthy', async () => {
    await ws.write('hosts.yaml', fleet.hosts.map((h) => fleet.hostDoc(h.index, { groups: ['web'] })).join('---\n'));
    await ws.write(
      'web.yaml',
      `kind: HostGroup
name: web
spec:
  vars: { markers: ${JSON.stringify(markers)} }
  rollout:
    batch: 2
    maxFailures: 0
    healthCheck:
      command: [test, "!", -e, "{{ markers }}/{{ host.name }}"]
      retries: 2
      interval: 100ms
      timeout: 10s
---
kind: File
name: motd
target: group:web
spec: { path: /etc/motd, content: "release 2\\n" }
`,
    );
    const [h1, h2, h3, h4] = fleet.hosts;
    await fs.writeFile(path.join(markers, h2!.name), '');

    const plan = await capstan(['plan', ws.repo, '--state', ws.state]);
    expect(plan.stderr).toBe('');
    expect(plan.stdout).toContain(`Rollout of group web: 2 batches, ${h1!.name}, ${h2!.name} | ${h3!.name}, ${h4!.name}`);

    const stopped = await capstan(['apply', ws.repo, '--yes', '--state', ws.state]);
    expect(stopped.exitCode).toBe(1);
    expect(stopped.stderr).toContain('Rollout of group web stopped after batch 1 of 2.');
    expect(stopped.stderr).toMatch(new RegExp(`failed: +${h2!.name}: health check failed: command test ! -e \\S+/${h2!.name}: exit status 1 \\(2 attempts\\)`));
    expect(stopped.stderr).toMatch(new RegExp(`changed: +${h1!.name}, ${h2!.name}\\n`));
    expect(stopped.stderr).toMatch(new RegExp(`not changed: +${h3!.name}, ${h4!.name}$`));
    expect(await Promise.all(fleet.hosts.map(motd))).toEqual(['release 2\n', 'release 2\n', null, null]);

    await fs.rm(path.join(markers, h2!.name));
    const finished = await capstan(['apply', ws.repo, '--yes', '--state', ws.state]);
    expect(finished.stderr).toBe('');
    expect(finished.exitCode).toBe(0);
    expect(finished.stdout).toContain(`rollout of group web, batch 1 of 1 (${h3!.name}, ${h4!.name}): every host healthy`);
    expect(await Promise.all(fleet.hosts.map(motd))).toEqual(Array(4).fill('release 2\n'));
    expect((await capstan(['plan', ws.repo, '--state', ws.state, '--detailed-exitcode'])).exitCode).toBe(0);
  }, 120_000);
});
