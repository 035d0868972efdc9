/**
 * Live delivery: a real Prometheus and Alertmanager on loopback, fed through the
 * SLO, AlertRules, Alerting and Dashboard providers on a local Host.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { hostTarget, type HostHandle } from '../../src/providers/host/index.js';
import {
  alertingProvider,
  alertingSpecSchema,
  alertRulesProvider,
  alertRulesSpecSchema,
  dashboardProvider,
  dashboardSpecSchema,
  sloProvider,
  sloSpecSchema,
  type FileSetLive,
} from '../../src/providers/observability/index.js';
import type { ResourceProvider } from '../../src/providers/provider.js';
import { runProviderConformance } from '../../src/providers/testing/conformance.js';
import { freePort } from './harness.js';
import type { Resource } from '../../src/spec/resource.js';

const ctx = { signal: new AbortController().signal };
const processes: ChildProcess[] = [];
let tmp: string;
let root: string;
let host: HostHandle;
let promUrl: string;
let amUrl: string;
const logs: Record<string, string> = { prometheus: '', alertmanager: '' };

function start(name: string, bin: string, args: string[]): void {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (d: Buffer) => (logs[name] += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (logs[name] += d.toString()));
  processes.push(child);
}

async function waitReady(url: string, name: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(`${url}/-/ready`)).status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${name} did not become ready:\n${logs[name]}`);
}

async function get<T>(url: string): Promise<T> {
  const res = await fetch(url);
  return (await res.json()) as T;
}

async function ruleGroups(): Promise<{ name: string; file: string; rules: { health: string }[] }[]> {
  return (await get<{ data: { groups: { name: string; file: string; rules: { health: string }[] }[] } }>(`${promUrl}/api/v1/rules`)).data.groups;
}

async function amOriginal(): Promise<string> {
  return (await get<{ config: { original: string } }>(`${amUrl}/api/v2/status`)).config.original;
}

/** plan → apply for one resource, the way the engine does it. */
async function converge<S>(provider: ResourceProvider<S, FileSetLive, HostHandle>, name: string, spec: S, prior: S | null = null) {
  const [live] = await provider.read(host, [spec], ctx);
  const diff = provider.diff(spec, live ?? null, prior);
  if (diff.action === 'noop') return { diff, live: live ?? null };
  const after = await provider.apply(host, { action: diff.action, address: `${provider.kind}/${name}`, desired: spec, prior, live: live ?? null }, ctx);
  return { diff, live: after };
}

const slo = sloSpecSchema.parse({
  name: 'api-availability',
  service: 'api',
  objective: 99.9,
  window: '30d',
  sli: {
    errorQuery: 'sum(rate(http_requests_total{job="api",code=~"5.."}[{{window}}]))',
    totalQuery: 'sum(rate(http_requests_total{job="api"}[{{window}}]))',
  },
  runbook: 'https://runbooks.example.com/api-availability',
  prometheus: { rulesDir: '/etc/prometheus/rules.d', promtool: '/usr/bin/promtool' },
  grafana: { provisioningDir: '/etc/grafana/provisioning', dashboardsDir: '/var/lib/grafana/dashboards' },
});

/** Specs for the shared provider suite; their URLs are set once the backends listen. */
const deliverTo = () => ({ url: 'http://127.0.0.1:1', rulesDir: '/etc/prometheus/rules.d', promtool: '/usr/bin/promtool' });
const conformance = {
  slo: {
    create: { ...slo, name: 'conformance', prometheus: deliverTo(), grafana: undefined },
    update: { ...slo, name: 'conformance', objective: 99.5, prometheus: deliverTo(), grafana: undefined },
  },
  rules: {
    create: alertRulesSpecSchema.parse({ name: 'conformance', groups: [{ name: 'c', rules: [{ record: 'job:up:sum', expr: 'sum(up)' }] }], prometheus: deliverTo() }),
    update: alertRulesSpecSchema.parse({
      name: 'conformance',
      groups: [{ name: 'c', rules: [{ alert: 'NothingUp', expr: 'absent(up)', annotations: { runbook_url: 'https://runbooks.example.com/up' } }] }],
      prometheus: deliverTo(),
    }),
  },
  alerting: {
    create: alertingSpecSchema.parse({ defaultTeam: 'sre', teams: [{ name: 'sre' }], alertmanager: { configFile: '/etc/alertmanager/alertmanager.yml', amtool: '/usr/bin/amtool' } }),
    update: alertingSpecSchema.parse({
      defaultTeam: 'sre',
      teams: [{ name: 'sre' }, { name: 'db', webhook: { url: 'http://127.0.0.1:9/db' } }],
      routes: [{ services: 'db', team: 'db' }],
      alertmanager: { configFile: '/etc/alertmanager/alertmanager.yml', amtool: '/usr/bin/amtool' },
    }),
  },
};

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'capstan-obs-e2e-'));
  root = join(tmp, 'root');
  await mkdir(join(root, 'etc/prometheus/rules.d'), { recursive: true });
  await mkdir(join(root, 'etc/alertmanager'), { recursive: true });
  const [promPort, amPort] = [await freePort(), await freePort()];
  promUrl = `http://127.0.0.1:${promPort}`;
  amUrl = `http://127.0.0.1:${amPort}`;
  slo.prometheus.url = promUrl;
  for (const spec of [conformance.slo.create, conformance.slo.update, conformance.rules.create, conformance.rules.update]) spec.prometheus.url = promUrl;
  for (const spec of [conformance.alerting.create, conformance.alerting.update]) spec.alertmanager.url = amUrl;

  const promConfig = join(tmp, 'prometheus.yml');
  await writeFile(promConfig, `global:\n  evaluation_interval: 1s\nrule_files:\n  - ${root}/etc/prometheus/rules.d/*.yml\n`);
  const amConfig = join(root, 'etc/alertmanager/alertmanager.yml');
  await writeFile(amConfig, 'route:\n  receiver: nobody\nreceivers:\n  - name: nobody\n');

  start('prometheus', '/usr/bin/prometheus', [
    `--config.file=${promConfig}`,
    `--storage.tsdb.path=${join(tmp, 'prom-data')}`,
    `--web.listen-address=127.0.0.1:${promPort}`,
    '--web.enable-lifecycle',
  ]);
  start('alertmanager', '/usr/bin/prometheus-alertmanager', [
    '--config.file',
    amConfig,
    '--storage.path',
    join(tmp, 'am-data'),
    '--web.listen-address',
    `127.0.0.1:${amPort}`,
    '--cluster.listen-address=',
  ]);
  const source = { file: 'hosts.yaml', line: 1, col: 1 };
  const hostResource: Resource = { address: 'Host/mon', kind: 'Host', name: 'mon', target: undefined, dependsOn: [], spec: { transport: 'local', root, groups: [], vars: {} }, source, positionOf: () => source };
  host = await hostTarget.connect(hostResource as Parameters<typeof hostTarget.connect>[0], ctx);
  await Promise.all([waitReady(promUrl, 'prometheus'), waitReady(amUrl, 'alertmanager')]);
}, 60_000);

afterAll(async () => {
  await host?.close();
  await Promise.all(
    processes.map(
      (p) =>
        new Promise<void>((resolve) => {
          if (p.exitCode !== null || p.signalCode !== null) return resolve();
          const kill = setTimeout(() => p.kill('SIGKILL'), 5_000);
          p.once('exit', () => {
            clearTimeout(kill);
            resolve();
          });
          p.kill('SIGTERM');
        }),
    ),
  );
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('observability delivery to a live Prometheus and Alertmanager', () => {
  it('delivers SLO rules: checked, written, reloaded and confirmed loaded and healthy; then a no-op', async () => {
    const { diff, live } = await converge(sloProvider, 'api-availability', slo);
    expect(diff.action).toBe('create');
    expect(Object.keys(live!.files).sort()).toEqual([
      '/etc/grafana/provisioning/dashboards/capstan-slo-api-availability.yaml',
      '/etc/prometheus/rules.d/capstan-slo-api-availability.yml',
      '/var/lib/grafana/dashboards/slo-api-availability/slo-api-availability.json',
    ]);
    const groups = (await ruleGroups()).filter((g) => g.file.endsWith('capstan-slo-api-availability.yml'));
    expect(groups.map((g) => g.name).sort()).toEqual(['slo:api-availability:alerts', 'slo:api-availability:recordings']);
    expect(groups.flatMap((g) => g.rules.map((r) => r.health)).every((h) => h !== 'err')).toBe(true);
    expect((await converge(sloProvider, 'api-availability', slo)).diff.action).toBe('noop');
  });

  it('refuses an invalid rule before it reaches Prometheus and leaves the running rules alone', async () => {
    const before = await ruleGroups();
    const bad = alertRulesSpecSchema.parse({
      name: 'broken',
      groups: [{ name: 'broken', rules: [{ alert: 'Broken', expr: 'sum(rate(http_requests_total[5m]', runbookWaiver: 'test' }] }],
      prometheus: { url: promUrl, rulesDir: '/etc/prometheus/rules.d', promtool: '/usr/bin/promtool' },
    });
    await expect(converge(alertRulesProvider, 'broken', bad)).rejects.toThrow(/promtool refused the rule file .*capstan-alertrules-broken\.yml/);
    await expect(stat(join(root, 'etc/prometheus/rules.d/capstan-alertrules-broken.yml'))).rejects.toMatchObject({ code: 'ENOENT' });
    const shape = (groups: Awaited<ReturnType<typeof ruleGroups>>) => groups.map((g) => [g.file, g.name, g.rules.length]);
    expect(shape(await ruleGroups())).toEqual(shape(before));
  });

  it('rolls back a file Prometheus does not load, and reloads again', async () => {
    const unseen = alertRulesSpecSchema.parse({
      name: 'elsewhere',
      groups: [{ name: 'elsewhere', rules: [{ record: 'job:up:sum', expr: 'sum(up)' }] }],
      prometheus: { url: promUrl, rulesDir: '/etc/prometheus/not-loaded.d', promtool: '/usr/bin/promtool' },
    });
    await expect(converge(alertRulesProvider, 'elsewhere', unseen)).rejects.toThrow(/does not run the rule groups elsewhere .*the previous files were restored/);
    await expect(stat(join(root, 'etc/prometheus/not-loaded.d/capstan-alertrules-elsewhere.yml'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('detects drift when a delivered rule file is edited by hand, and heals it', async () => {
    const file = join(root, 'etc/prometheus/rules.d/capstan-slo-api-availability.yml');
    const original = await readFile(file, 'utf8');
    await writeFile(file, original.replace('> 0.0144', '> 0.5'));
    const [live] = await sloProvider.read(host, [slo], ctx);
    const diff = sloProvider.diff(slo, live ?? null, slo);
    expect(diff.action).toBe('update');
    expect(diff.fields.map((f) => f.path)).toEqual(['/etc/prometheus/rules.d/capstan-slo-api-availability.yml']);
    expect(diff.fields[0]).toMatchObject({ format: 'text' });
    expect(String(diff.fields[0]!.before)).toContain('> 0.5');
    await converge(sloProvider, 'api-availability', slo, slo);
    expect(await readFile(file, 'utf8')).toBe(original);
  });

  it('delivers the Alertmanager configuration and confirms it through /api/v2/status', async () => {
    const spec = alertingSpecSchema.parse({
      defaultTeam: 'sre',
      teams: [
        { name: 'sre', webhook: { url: 'http://127.0.0.1:9/sre' } },
        { name: 'api-oncall', webhook: { url: 'http://127.0.0.1:9/api' } },
      ],
      routes: [{ services: 'api', severities: 'page', team: 'api-oncall', escalation: [{ after: '20m', team: 'sre' }] }],
      alertmanager: { url: amUrl, configFile: '/etc/alertmanager/alertmanager.yml', amtool: '/usr/bin/amtool' },
    });
    const { diff, live } = await converge(alertingProvider, 'oncall', spec);
    expect(diff.action).toBe('update'); // the file existed: Capstan adopts and rewrites it
    const delivered = await readFile(join(root, 'etc/alertmanager/alertmanager.yml'), 'utf8');
    expect(live!.files['/etc/alertmanager/alertmanager.yml']!.content).toBe(delivered);
    expect(parse(await amOriginal())).toMatchObject(parse(delivered) as object);
    expect(delivered).toContain('inhibit_rules:');

    // amtool refuses an invalid regex: nothing is written, the running config is untouched.
    const bad = alertingSpecSchema.parse({ ...spec, routes: [{ matchers: ['service=~"("'], team: 'sre' }] });
    await expect(converge(alertingProvider, 'oncall', bad, spec)).rejects.toThrow(/amtool refused the Alertmanager configuration/);
    expect(await readFile(join(root, 'etc/alertmanager/alertmanager.yml'), 'utf8')).toBe(delivered);
    expect(parse(await amOriginal())).toMatchObject(parse(delivered) as object);

    // Drift: a hand edit is seen.
    await writeFile(join(root, 'etc/alertmanager/alertmanager.yml'), delivered + '# edited by hand\n');
    const [drifted] = await alertingProvider.read(host, [spec], ctx);
    expect(alertingProvider.diff(spec, drifted ?? null, spec).action).toBe('update');
  });

  it('delivers dashboards with their provisioning file and sees edits', async () => {
    const spec = dashboardSpecSchema.parse({
      name: 'api-overview',
      title: 'API overview',
      datasource: 'prometheus',
      panels: [{ title: 'Requests', targets: [{ expr: 'sum(rate(http_requests_total[5m]))' }] }],
      grafana: { provisioningDir: '/etc/grafana/provisioning', dashboardsDir: '/var/lib/grafana/dashboards' },
    });
    expect((await converge(dashboardProvider, 'api-overview', spec)).diff.action).toBe('create');
    const json = join(root, 'var/lib/grafana/dashboards/api-overview/api-overview.json');
    expect(JSON.parse(await readFile(json, 'utf8'))).toMatchObject({ uid: 'api-overview', title: 'API overview' });
    await writeFile(json, '{}');
    const [live] = await dashboardProvider.read(host, [spec], ctx);
    expect(dashboardProvider.diff(spec, live ?? null, spec).fields.map((f) => f.path)).toEqual(['/var/lib/grafana/dashboards/api-overview/api-overview.json']);
  });

  it('deletes an SLO: files gone and its groups unloaded', async () => {
    const [live] = await sloProvider.read(host, [slo], ctx);
    await sloProvider.apply(host, { action: 'delete', address: 'SLO/api-availability', desired: null, prior: slo, live: live ?? null }, ctx);
    await expect(stat(join(root, 'etc/prometheus/rules.d/capstan-slo-api-availability.yml'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await ruleGroups()).filter((g) => g.name.startsWith('slo:api-availability'))).toEqual([]);
  });
});

// The shared provider suite, against the same live backends (after the tests above).
const onHost = (remove?: string) => async () => {
  if (remove) await rm(join(root, remove), { force: true });
  return { handle: host, cleanup: async () => undefined };
};

runProviderConformance({
  provider: sloProvider,
  connect: onHost(),
  create: conformance.slo.create,
  update: conformance.slo.update,
  invalidSpecs: [
    { spec: { ...slo, objective: 100 }, message: /objective is a percentage above 0 and below 100/ },
    { spec: { ...slo, window: 'a month' }, message: /Prometheus duration/ },
    { spec: { ...slo, sli: { errorQuery: 'x' } }, message: /./ },
    { spec: { ...slo, colour: 'blue' }, message: /colour/ },
  ],
  makeDrift: (_h, spec) => writeFile(join(root, 'etc/prometheus/rules.d', `capstan-slo-${spec.name!}.yml`), 'groups: []\n'),
  driftedField: '/etc/prometheus/rules.d/capstan-slo-conformance.yml',
});

runProviderConformance({
  provider: alertRulesProvider,
  connect: onHost(),
  create: conformance.rules.create,
  update: conformance.rules.update,
  invalidSpecs: [
    { spec: { groups: [{ name: 'g', rules: [{ alert: 'A', record: 'b', expr: 'x' }] }] }, message: /exactly one of alert or record/ },
    { spec: { groups: [{ name: 'g', rules: [] }] }, message: /at least one rule/ },
    { spec: {}, message: /exactly one of groups or source/ },
  ],
  makeDrift: (_h, spec) => writeFile(join(root, 'etc/prometheus/rules.d', `capstan-alertrules-${spec.name!}.yml`), 'groups: []\n'),
  driftedField: '/etc/prometheus/rules.d/capstan-alertrules-conformance.yml',
});

runProviderConformance({
  provider: alertingProvider,
  // Alertmanager keeps running on the configuration it loaded when its file is removed.
  connect: onHost('etc/alertmanager/alertmanager.yml'),
  create: conformance.alerting.create,
  update: conformance.alerting.update,
  invalidSpecs: [
    { spec: { defaultTeam: 'a', teams: [] }, message: /too_small|>=1|at least/i },
    { spec: { defaultTeam: 'a', teams: [{ name: 'a', pagerduty: { routingKey: 'secret' } }] }, message: /takes only \{ secret: PATH \}/ },
  ],
  makeDrift: () => writeFile(join(root, 'etc/alertmanager/alertmanager.yml'), 'route:\n  receiver: x\nreceivers:\n  - name: x\n'),
  driftedField: '/etc/alertmanager/alertmanager.yml',
});
