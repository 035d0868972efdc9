/**
 * Rollouts through plan and apply on the in-memory provider, with health checks
 * against a real HTTP server on loopback whose answer per host the test sets.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Plan } from '../plan/plan.js';
import { planChanges } from '../plan/planner.js';
import { renderPlanText } from '../plan/render-text.js';
import { testActor as actor, testSource as source, useMemoryEngine } from '../plan/testing/engine.js';
import { item } from '../plan/testing/memory-provider.js';
import { hostGroupSchema, type HostGroupSpec } from '../spec/host-group.js';
import type { Resource } from '../spec/resource.js';
import { applyPlan } from './apply.js';

const HOSTS = ['b1', 'b2', 'b3', 'b4'];

const engine = useMemoryEngine('capstan-rollout-');
const { withTargets } = engine;
let server: http.Server;
let port: number;
/** Hosts whose health endpoint answers 503; every request, in order. */
const unhealthy = new Set<string>();
const probes: string[] = [];

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const host = req.url!.split('/').pop()!;
    probes.push(host);
    res.writeHead(unhealthy.has(host) ? 503 : 200).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

beforeEach(() => {
  unhealthy.clear();
  probes.length = 0;
});

function bucketIn(name: string, groups: string[]): Resource {
  const source = { file: 'hosts.yaml', line: 1, col: 1 };
  return { address: `Bucket/${name}`, kind: 'Bucket', name, target: undefined, dependsOn: [], spec: { groups }, source, positionOf: () => source };
}

function group(rollout: unknown): HostGroupSpec {
  return hostGroupSchema.parse({ rollout });
}

const healthCheck = (retries = 1) => ({ http: { url: `http://127.0.0.1:${port}/health/{{ host.name }}` }, retries, interval: '10ms', timeout: '2s' });

/** One item per host, all at `value`. */
function plan(value: string, web: HostGroupSpec): Promise<Plan> {
  const targets = HOSTS.map((h) => bucketIn(h, ['web']));
  const resources = HOSTS.map((h) => item(`conf-${h}`, value, { bucket: h, key: 'conf' }));
  return withTargets((pool, registry) =>
    planChanges({
      stack: 's',
      desired: {
        targets,
        resources,
        specHash: value,
        diagnostics: [],
        hostGroups: { web },
        groupMembers: { web: targets.map((t) => t.address) },
        varsByTarget: Object.fromEntries(targets.map((t) => [t.address, { host: { name: t.name } }])),
      },
      source,
      registry,
      store: engine.store,
      targets: pool,
    }),
  );
}
const apply = (p: Plan, parallelism = 10) => withTargets((targets, registry) => applyPlan({ plan: p, registry, store: engine.store, targets, actor, parallelism }));
const valueOn = (host: string) => engine.world.data.get(`Bucket/${host}`)?.get('conf');

describe('rollouts', () => {
  it('plans batches of the changed hosts, with the health check rendered per host', async () => {
    const p = await plan('v1', group({ batch: 2, maxFailures: '25%', healthCheck: healthCheck(3) }));
    expect(p.rollouts).toEqual([
      {
        group: 'web',
        batches: [
          ['Bucket/b1', 'Bucket/b2'],
          ['Bucket/b3', 'Bucket/b4'],
        ],
        members: 4,
        maxFailures: 1,
        healthChecks: Object.fromEntries(
          HOSTS.map((h) => [`Bucket/${h}`, { type: 'http', url: `http://127.0.0.1:${port}/health/${h}`, expectStatus: 200, timeoutMs: 2000, retries: 3, intervalMs: 10 }]),
        ),
      },
    ]);
    expect(renderPlanText(p)).toContain('Rollout of group web: 2 batches, b1, b2 | b3, b4');
    expect(renderPlanText(p)).toContain('stops when more than 1 host of 4 fails');
  });

  it('applies batch after batch, checking each batch before the next starts', async () => {
    const r = await apply(await plan('v1', group({ batch: 2, healthCheck: healthCheck() })));
    expect(r.status).toBe('succeeded');
    // Parallelism 10 would write all four at once; the rollout holds b3 and b4 back until b1 and b2 are healthy.
    expect(engine.world.applied.slice(0, 2).sort()).toEqual(['create Item/conf-b1', 'create Item/conf-b2']);
    expect(probes.slice(0, 2).sort()).toEqual(['b1', 'b2']);
    expect(probes.sort()).toEqual(HOSTS);
    expect(r.rollouts).toEqual([
      { group: 'web', batches: 2, batchesPassed: 2, stopped: null, failedHosts: [], changedHosts: HOSTS.map((h) => `Bucket/${h}`), unchangedHosts: [] },
    ]);
    const events = await engine.store.listEvents(r.run.id);
    expect(events.map((e) => e.message)).toEqual([
      'rollout of group web, batch 1 of 2 (b1, b2): every host healthy',
      'rollout of group web, batch 2 of 2 (b3, b4): every host healthy',
    ]);
  });

  it('stops before the next batch when a host fails its health check, naming the hosts that changed and those that did not', async () => {
    unhealthy.add('b2');
    const r = await apply(await plan('v1', group({ batch: 2, healthCheck: healthCheck(2) })));
    expect(r.status).toBe('failed');
    expect(probes.filter((h) => h === 'b2')).toHaveLength(2);
    expect(valueOn('b3')).toBeUndefined();
    expect(r.rollouts[0]).toMatchObject({
      batchesPassed: 0,
      stopped: { afterBatch: 0 },
      failedHosts: [{ host: 'Bucket/b2', why: `health check failed: GET http://127.0.0.1:${port}/health/b2: status 503, expected 200 (2 attempts)` }],
      changedHosts: ['Bucket/b1', 'Bucket/b2'],
      unchangedHosts: ['Bucket/b3', 'Bucket/b4'],
    });
    expect(r.rollouts[0]!.stopped!.message).toMatch(/1 failed host in all, over the budget of 0: the rollout stops, later batches are not changed/);
    expect(r.counts).toMatchObject({ create: 2, skipped: 2 });
    const skipped = (await engine.store.listResults(r.run.id)).filter((x) => x.status === 'skipped');
    expect(skipped.map((x) => x.error)).toEqual(Array(2).fill('skipped: the rollout of group web stopped after batch 1 of 2'));

    // The next apply, once the host is healthy again, finishes the rollout.
    unhealthy.clear();
    const next = await apply(await plan('v1', group({ batch: 2, healthCheck: healthCheck() })));
    expect(next.status).toBe('succeeded');
    expect(HOSTS.map(valueOn)).toEqual(['v1', 'v1', 'v1', 'v1']);
  });

  it('tolerates failures up to maxFailures, counting a host whose change failed', async () => {
    engine.world.failing.add('conf');
    const r = await apply(await plan('v1', group({ batch: 1, maxFailures: 1 })));
    // Every host's change fails: the first failure is within the budget, the second stops the rollout.
    expect(engine.world.applied).toEqual(['create Item/conf-b1', 'create Item/conf-b2']);
    expect(r.rollouts[0]).toMatchObject({
      batchesPassed: 1,
      stopped: { afterBatch: 1 },
      failedHosts: [
        { host: 'Bucket/b1', why: 'Item/conf-b1 failed' },
        { host: 'Bucket/b2', why: 'Item/conf-b2 failed' },
      ],
      changedHosts: [],
    });
  });

  it('leaves hosts without changes out of the batches', async () => {
    await apply(await plan('v1', group({ batch: 1 })));
    engine.world.data.get('Bucket/b3')!.set('conf', 'changed by hand');
    const p = await plan('v1', group({ batch: 1 }));
    expect(p.rollouts![0]!.batches).toEqual([['Bucket/b3']]);
  });
});
