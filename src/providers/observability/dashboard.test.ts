import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { Resource } from '../../spec/resource.js';
import { buildDashboard, dashboardFiles, dashboardProblems, dashboardSpecSchema, dashboardUid, validateDashboard, type DashboardSpec } from './dashboard.js';
import { sloDashboard } from './slo-dashboard.js';
import { sloSpecSchema } from './slo.js';

const typed = (extra: Record<string, unknown> = {}): DashboardSpec =>
  dashboardSpecSchema.parse({
    title: 'API overview',
    folder: 'Services',
    datasource: 'prometheus',
    panels: [
      { title: 'Requests', targets: [{ expr: 'sum(rate(http_requests_total{job="api"}[5m])) by (code)', legend: '{{code}}' }], unit: 'reqps' },
      { title: 'Errors', type: 'stat', targets: [{ expr: 'x', instant: true }] },
      { title: 'Latency', id: 1, targets: [{ expr: 'y' }] },
      { title: 'Notes', type: 'text', content: '# hi' },
    ],
    ...extra,
  });

function resource(name: string, spec: DashboardSpec): Resource<DashboardSpec> {
  const source = { file: 'dash.yaml', line: 1, col: 1 };
  return { address: `Dashboard/${name}`, kind: 'Dashboard', name, target: 'Host/mon', dependsOn: [], spec, source, positionOf: () => source };
}

describe('dashboard uids', () => {
  it('keep a name that is a valid uid, and give any other a deterministic hash suffix within 40 characters', () => {
    expect(dashboardUid('api-overview')).toBe('api-overview');
    expect(dashboardUid('x'.repeat(40))).toBe('x'.repeat(40));
    const east = 'slo-checkout-api-availability-eu-west-1-primary';
    const west = 'slo-checkout-api-availability-eu-west-2-primary';
    const uids = [east, west, 'a.b', 'a-b', 'x'.repeat(41)].map(dashboardUid);
    expect(new Set(uids).size).toBe(uids.length);
    for (const uid of uids) expect(uid).toMatch(/^[A-Za-z0-9_-]{1,40}$/);
    expect(uids[0]).toMatch(/^slo-checkout-api-availability-e-[0-9a-f]{8}$/);
    expect(dashboardUid(east)).toBe(uids[0]);
  });

  it('differ for two SLOs whose names share their first 40 characters', () => {
    const spec = sloSpecSchema.parse({
      service: 'checkout',
      objective: 99.9,
      sli: { errorQuery: 'sum(rate(e[{{window}}]))', totalQuery: 'sum(rate(t[{{window}}]))' },
      runbook: 'https://runbooks.example.com/checkout',
    });
    const names = ['checkout-api-availability-eu-west-1-primary', 'checkout-api-availability-eu-west-1-secondary'];
    const [a, b] = names.map((n) => sloDashboard(n, spec)['uid'] as string);
    expect(a).not.toBe(b);
    expect(dashboardProblems(sloDashboard(names[0]!, spec))).toEqual([]);
  });
});

describe('Dashboard builder', () => {
  it('assigns free panel ids, lays panels out on the grid and sets data sources', () => {
    const d = buildDashboard('api-overview', typed());
    expect(d).toMatchObject({ uid: 'api-overview', title: 'API overview', schemaVersion: 39 });
    const panels = d['panels'] as Record<string, unknown>[];
    expect(panels.map((p) => p['id'])).toEqual([2, 3, 1, 4]);
    expect(panels.map((p) => p['gridPos'])).toEqual([
      { x: 0, y: 0, w: 12, h: 8 },
      { x: 12, y: 0, w: 12, h: 8 },
      { x: 0, y: 8, w: 12, h: 8 },
      { x: 12, y: 8, w: 12, h: 8 },
    ]);
    expect(panels[0]).toMatchObject({
      datasource: { type: 'prometheus', uid: 'prometheus' },
      fieldConfig: { defaults: { unit: 'reqps' } },
      targets: [{ refId: 'A', datasource: { type: 'prometheus', uid: 'prometheus' }, expr: 'sum(rate(http_requests_total{job="api"}[5m])) by (code)', legendFormat: '{{code}}' }],
    });
    expect(dashboardProblems(d)).toEqual([]);
  });

  it('never places a panel without gridPos over one with it, in the rendered JSON', () => {
    const spec = typed({
      panels: [
        { title: 'auto-1', targets: [{ expr: 'a' }] },
        { title: 'auto-2', targets: [{ expr: 'b' }] },
        { title: 'auto-3', targets: [{ expr: 'c' }] },
        // Written after the automatic ones, but where the first two would have gone.
        { title: 'pinned', gridPos: { x: 6, y: 0, w: 12, h: 4 }, targets: [{ expr: 'd' }] },
        { title: 'auto-4', targets: [{ expr: 'e' }] },
      ],
    });
    const rendered = JSON.parse(dashboardFiles('api-overview', spec).json) as { panels: { title: string; gridPos: { x: number; y: number; w: number; h: number } }[] };
    const rects = rendered.panels.map((p) => ({ title: p.title, ...p.gridPos }));
    expect(rects.find((r) => r.title === 'pinned')).toEqual({ title: 'pinned', x: 6, y: 0, w: 12, h: 4 });
    for (const a of rects) {
      for (const b of rects) {
        if (a === b) continue;
        const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
        expect(overlap, `${a.title} overlaps ${b.title}`).toBe(false);
      }
      expect(a.x + a.w).toBeLessThanOrEqual(24);
    }
    expect(dashboardProblems(rendered)).toEqual([]);
  });

  it('lays out any mix of pinned and automatic panels without overlap (property)', () => {
    const pinned = fc.record({ x: fc.integer({ min: 0, max: 20 }), y: fc.integer({ min: 0, max: 30 }), w: fc.integer({ min: 1, max: 24 }), h: fc.integer({ min: 1, max: 10 }) });
    const panel = fc.option(pinned, { nil: undefined, freq: 3 });
    fc.assert(
      fc.property(fc.array(panel, { maxLength: 12 }), (layout) => {
        // Pinned panels that overlap each other are the user's mistake: keep the first of them.
        const kept: { x: number; y: number; w: number; h: number }[] = [];
        const panels = layout.map((g, i) => {
          if (g) {
            const fitted = { ...g, w: Math.min(g.w, 24 - g.x) };
            if (!kept.some((k) => k.x < fitted.x + fitted.w && fitted.x < k.x + k.w && k.y < fitted.y + fitted.h && fitted.y < k.y + k.h)) {
              kept.push(fitted);
              return { title: `p${i}`, gridPos: fitted };
            }
          }
          return { title: `p${i}` };
        });
        const dashboard = JSON.parse(JSON.stringify(buildDashboard('grid', typed({ panels })))) as { panels: { gridPos: { x: number; y: number; w: number; h: number } }[] };
        const rects = dashboard.panels.map((p) => p.gridPos);
        rects.forEach((a, i) => {
          expect(a.x + a.w).toBeLessThanOrEqual(24);
          for (const b of rects.slice(i + 1)) expect(a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h).toBe(false);
        });
        expect(dashboardProblems(dashboard).filter((p) => p.includes('overlaps') || p.includes('wider'))).toEqual([]);
      }),
    );
  });

  it('reports panels that overlap in Grafana JSON given as is', () => {
    const json = { uid: 'u', title: 't', panels: [{ id: 1, title: 'a', gridPos: { x: 0, y: 0, w: 12, h: 8 } }, { id: 2, title: 'b', gridPos: { x: 6, y: 4, w: 12, h: 8 } }] };
    expect(dashboardProblems(json)).toEqual(['panel "b" overlaps panel "a" on the grid']);
  });

  it('reports threshold steps that are not in ascending order', () => {
    const panel = (steps: unknown[]) => ({ id: 1, title: 'p', fieldConfig: { defaults: { thresholds: { mode: 'absolute', steps } } } });
    const problems = dashboardProblems({
      uid: 'u',
      title: 't',
      panels: [
        panel([{ value: null, color: 'green' }, { value: 14.4, color: 'red' }, { value: 6, color: 'red' }]),
        { ...panel([{ value: null, color: 'green' }, { value: 1, color: 'orange' }, { value: 6, color: 'red' }]), id: 2 },
      ],
    });
    expect(problems).toEqual(['panel "p" has thresholds out of order: Grafana needs a base step (value null) first, then ascending values (got null, 14.4, 6)']);
  });

  it('reports duplicate panel ids, missing data sources and grid overflow', () => {
    const dup = typed({ panels: [{ title: 'a', id: 3, targets: [{ expr: 'x' }] }, { title: 'b', id: 3, targets: [{ expr: 'y' }] }] });
    expect(validateDashboard(resource('d', dup)).map((x) => x.summary)).toEqual(['panel id 3 is used by both panel "a" and panel "b"']);
    const noDs = typed({ datasource: undefined });
    expect(validateDashboard(resource('d', noDs)).map((x) => x.summary)).toContain('panel "Requests" has queries but no data source (set datasource on the panel or the dashboard)');
    expect(dashboardProblems({ uid: 'x', title: 't', panels: [{ id: 1, title: 'wide', gridPos: { x: 20, y: 0, w: 8, h: 4 } }] })).toEqual(['panel "wide" is wider than the grid: x 20 + w 8 > 24']);
  });

  it('validates Grafana JSON given as is, rows included', () => {
    const json = {
      title: 'Imported',
      id: 42,
      panels: [
        { id: 1, type: 'row', title: 'row', panels: [{ id: 2, title: 'inner', targets: [{ expr: 'up' }] }] },
        { id: 2, title: 'again', datasource: { uid: 'p' }, targets: [{ expr: 'up' }] },
      ],
    };
    const spec = dashboardSpecSchema.parse({ json });
    const d = buildDashboard('imported', spec);
    expect(d['id']).toBeUndefined();
    expect(d['uid']).toBe('imported');
    expect(dashboardProblems(d)).toEqual([
      'panel "inner" has queries but no data source (set datasource on the panel or the dashboard)',
      'panel id 2 is used by both panel "inner" and panel "again"',
    ]);
  });

  it('writes a provisioning file pointing at its own folder', () => {
    const files = dashboardFiles('api-overview', typed());
    expect(files.provisioningFile).toBe('/etc/grafana/provisioning/dashboards/capstan-api-overview.yaml');
    expect(files.dashboardFile).toBe('/var/lib/grafana/dashboards/capstan/api-overview/api-overview.json');
    expect(parse(files.provisioning)).toEqual({
      apiVersion: 1,
      providers: [
        {
          name: 'capstan-api-overview',
          orgId: 1,
          folder: 'Services',
          type: 'file',
          disableDeletion: false,
          allowUiUpdates: false,
          updateIntervalSeconds: 30,
          options: { path: '/var/lib/grafana/dashboards/capstan/api-overview', foldersFromFilesStructure: false },
        },
      ],
    });
    expect(JSON.parse(files.json)).toMatchObject({ uid: 'api-overview' });
  });

  it('needs exactly one of panels, json and source', () => {
    expect(dashboardSpecSchema.safeParse({ title: 'x' }).success).toBe(false);
    expect(dashboardSpecSchema.safeParse({ title: 'x', panels: [], json: {} }).success).toBe(false);
    expect(dashboardSpecSchema.safeParse({ panels: [] }).success).toBe(false);
  });
});
