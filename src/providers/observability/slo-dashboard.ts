/** The Grafana dashboard generated for each SLO: SLI, error budget remaining, burn rates. */
import { compare, formatDecimal, parseDecimal } from './decimal.js';
import { buildDashboard, dashboardSpecSchema, type GrafanaDashboard, type PanelSpec } from './dashboard.js';
import { recordName, sloModel, type SloSpec } from './slo.js';

export function sloDashboardName(sloName: string): string {
  return `slo-${sloName}`;
}

export function sloDashboard(name: string, spec: SloSpec): GrafanaDashboard {
  const model = sloModel(name, spec);
  const sel = `{slo="${name}"}`;
  const budget = formatDecimal(model.budget);
  const objective = formatDecimal(model.objective);
  const burnWindows = [...new Set(model.alerts.flatMap((a) => [a.longWindow, a.shortWindow]))];
  const sorted = model.windows.filter((w) => burnWindows.includes(w));
  // The shortest window shows the present, 1h (when recorded) smooths it.
  const sliWindows = [...new Set([model.windows[0]!, ...(model.windows.includes('1h') ? ['1h'] : [])])];
  // Grafana reads threshold steps in ascending order: tickets (orange) below pages (red); a factor both use is a page.
  const steps = new Map<string, { value: number; color: string }>();
  for (const a of [...model.alerts].sort((x, y) => compare(x.factor, y.factor))) {
    const key = formatDecimal(a.factor);
    if (steps.get(key)?.color !== 'red') steps.set(key, { value: Number(key), color: a.severity === 'page' ? 'red' : 'orange' });
  }
  const factors = [...steps.keys()];
  const panels: PanelSpec[] = [
    {
      title: `SLI over ${model.window} (objective ${formatDecimal(parseDecimal(spec.objective))}%)`,
      type: 'stat',
      unit: 'percentunit',
      decimals: 3,
      gridPos: { x: 0, y: 0, w: 6, h: 6 },
      targets: [{ expr: `1 - ${recordName(model.window)}${sel}`, legend: `SLI ${model.window}`, instant: true }],
      thresholds: [
        { value: null, color: 'red' },
        { value: Number(objective), color: 'green' },
      ],
    },
    {
      title: `Error budget remaining (${model.window})`,
      type: 'stat',
      unit: 'percentunit',
      decimals: 1,
      gridPos: { x: 6, y: 0, w: 6, h: 6 },
      targets: [{ expr: `slo:error_budget_remaining:ratio${sel}`, legend: 'remaining', instant: true }],
      thresholds: [
        { value: null, color: 'red' },
        { value: 0, color: 'orange' },
        { value: 0.25, color: 'green' },
      ],
    },
    {
      title: 'Error budget remaining over time',
      type: 'timeseries',
      unit: 'percentunit',
      gridPos: { x: 12, y: 0, w: 12, h: 6 },
      targets: [{ expr: `slo:error_budget_remaining:ratio${sel}`, legend: 'remaining' }],
    },
    {
      title: 'SLI: good events ratio',
      type: 'timeseries',
      unit: 'percentunit',
      max: 1,
      gridPos: { x: 0, y: 6, w: 12, h: 8 },
      targets: [
        ...sliWindows.map((w) => ({ expr: `1 - ${recordName(w)}${sel}`, legend: `SLI ${w}` })),
        { expr: `slo:objective:ratio${sel}`, legend: 'objective' },
      ],
    },
    {
      title: 'Burn rate (1 = budget spent exactly over the window)',
      type: 'timeseries',
      gridPos: { x: 12, y: 6, w: 12, h: 8 },
      description: `Alert thresholds: ${factors.join(', ') || 'none'} (× the ${budget} error budget)`,
      targets: sorted.map((w) => ({ expr: `${recordName(w)}${sel} / ${budget}`, legend: w })),
      thresholds: [{ value: null, color: 'green' }, ...steps.values()],
      thresholdsStyle: 'dashed',
    },
  ];
  return buildDashboard(
    sloDashboardName(name),
    dashboardSpecSchema.parse({
      title: `SLO ${name} (${spec.service})`,
      tags: ['slo', spec.service],
      datasource: spec.dashboard?.datasource ?? 'prometheus',
      ...(spec.dashboard?.folder !== undefined ? { folder: spec.dashboard.folder } : {}),
      panels,
    }),
  );
}
