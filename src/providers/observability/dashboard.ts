/**
 * `Dashboard`: a Grafana dashboard, from a small typed model (panels, targets,
 * gridPos) or from Grafana JSON given inline (`json:`) or from a file of the
 * repository (`source:`), validated and written in Grafana's file-provisioning
 * format: one provisioning YAML per dashboard and its JSON in its own folder.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { error, type Diagnostic } from '../../diag/diagnostic.js';
import type { Resource } from '../../spec/resource.js';
import { specNameSchema } from './delivery-settings.js';
import { toYamlText } from './yaml-text.js';

export const GRID_WIDTH = 24;
const DEFAULT_PANEL = { w: 12, h: 8 };
export const SCHEMA_VERSION = 39;

const gridPosSchema = z
  .object({
    x: z.number().int().min(0).max(GRID_WIDTH - 1).meta({ description: `Column of the left edge, 0 to ${GRID_WIDTH - 1}.`, examples: [12] }),
    y: z.number().int().min(0).meta({ description: 'Row of the top edge.', examples: [0] }),
    w: z.number().int().min(1).max(GRID_WIDTH).meta({ description: `Width in columns, 1 to ${GRID_WIDTH}.`, examples: [12] }),
    h: z.number().int().min(1).meta({ description: 'Height in rows.', examples: [8] }),
  })
  .strict()
  .meta({ description: `Where the panel sits on Grafana's ${GRID_WIDTH}-column grid; default: ${DEFAULT_PANEL.w}x${DEFAULT_PANEL.h} panels laid out in order.` });

const datasourceSchema = z.union([
  z.string().min(1).transform((uid) => ({ type: 'prometheus', uid })),
  z
    .object({
      type: z.string().min(1).default('prometheus').meta({ description: 'The data source type.', examples: ['prometheus'] }),
      uid: z.string().min(1).meta({ description: 'The data source UID in Grafana.', examples: ['prom-main'] }),
    })
    .strict(),
]);
const datasourceField = (description: string) => datasourceSchema.optional().meta({ description: `${description}: a Prometheus data source UID, or { type, uid }.`, examples: ['prom-main'] });

const targetSchema = z
  .object({
    expr: z.string().trim().min(1).meta({ description: 'The PromQL query.', examples: ['sum by (code) (rate(http_requests_total{job="api"}[5m]))'] }),
    legend: z.string().optional().meta({ description: 'Legend format, with {{label}} placeholders.', examples: ['{{code}}'] }),
    refId: z.string().regex(/^[A-Za-z0-9_]+$/).optional().meta({ description: 'The query id within the panel; default A, B, C... in order.', examples: ['A'] }),
    instant: z.boolean().optional().meta({ description: 'An instant query (the latest value) instead of a range.', examples: [true] }),
    datasource: datasourceField("This query's data source; default: the panel's"),
  })
  .strict();

const thresholdSchema = z
  .object({
    value: z.number().nullable().meta({ description: 'Where the step starts; null for the first (base) step.', examples: [null, 80] }),
    color: z.string().min(1).meta({ description: 'A Grafana colour name or #rrggbb.', examples: ['red'] }),
  })
  .strict();

export const panelSchema = z
  .object({
    id: z.number().int().positive().optional().meta({ description: 'Panel id, unique in the dashboard; default: the next free id, from 1.', examples: [3] }),
    title: z.string().meta({ description: 'The panel title.', examples: ['Requests by status'] }),
    type: z
      .enum(['timeseries', 'stat', 'gauge', 'bargauge', 'table', 'text'])
      .default('timeseries')
      .meta({ description: 'The Grafana panel type.', examples: ['stat'] }),
    description: z.string().optional().meta({ description: 'Shown in the panel info tooltip.', examples: ['5xx answers per second'] }),
    gridPos: gridPosSchema.optional(),
    datasource: datasourceField("The panel's data source; default: the dashboard's"),
    unit: z.string().optional().meta({ description: 'Grafana unit id of the values.', examples: ['reqps', 'percentunit', 's'] }),
    min: z.number().optional().meta({ description: 'Lowest value of the axis or gauge.', examples: [0] }),
    max: z.number().optional().meta({ description: 'Highest value of the axis or gauge.', examples: [1] }),
    decimals: z.number().int().min(0).optional().meta({ description: 'Decimals shown.', examples: [2] }),
    /** Steps in ascending order of value, the first one `value: null` (the base colour). */
    thresholds: z.array(thresholdSchema).optional().meta({ description: 'Colour steps in ascending order of value, the first one value: null (the base colour).' }),
    /** How a time series panel draws its thresholds (Grafana's `custom.thresholdsStyle.mode`); default: not drawn. */
    thresholdsStyle: z
      .enum(['off', 'line', 'dashed', 'area', 'line+area', 'dashed+area'])
      .optional()
      .meta({ description: "How a time series panel draws its thresholds (Grafana's custom.thresholdsStyle.mode); default: not drawn.", examples: ['dashed'] }),
    targets: z.array(targetSchema).optional().meta({ description: 'The queries of the panel.' }),
    /** Markdown of a text panel. */
    content: z.string().optional().meta({ description: 'Markdown of a text panel.', examples: ['See the [runbook](https://runbooks.example.com/api).'] }),
  })
  .strict();

export const GRAFANA_DEFAULTS = { provisioningDir: '/etc/grafana/provisioning', dashboardsDir: '/var/lib/grafana/dashboards/capstan' } as const;

export const grafanaDeliverySchema = z
  .object({
    /** Grafana's provisioning directory; the provisioning file goes to `<provisioningDir>/dashboards/`. */
    provisioningDir: z
      .string()
      .startsWith('/')
      .default(GRAFANA_DEFAULTS.provisioningDir)
      .meta({ description: "Grafana's provisioning directory on the host; the provisioning file goes to <provisioningDir>/dashboards/.", examples: ['/etc/grafana/provisioning'] }),
    /** Where dashboard JSON files are written, one folder per dashboard. */
    dashboardsDir: z
      .string()
      .startsWith('/')
      .default(GRAFANA_DEFAULTS.dashboardsDir)
      .meta({ description: 'Where dashboard JSON files are written on the host, one folder per dashboard.', examples: ['/var/lib/grafana/dashboards/capstan'] }),
  })
  .strict()
  .meta({ description: 'Where the dashboard is delivered when the resource has a target Host: the Grafana on that host (file provisioning).' });

export const dashboardSpecSchema = z
  .object({
    /** The resource name, filled in at load time. */
    name: specNameSchema,
    title: z.string().min(1).optional().meta({ description: 'The dashboard title; needed with panels.', examples: ['API overview'] }),
    /** Grafana UID (at most 40 characters); default: the resource name. */
    uid: z.string().regex(/^[A-Za-z0-9_-]{1,40}$/).optional().meta({ description: 'Grafana UID (letters, digits, _ and -, at most 40); default: the resource name.', examples: ['api-overview'] }),
    folder: z.string().optional().meta({ description: 'The Grafana folder it is provisioned in.', examples: ['Services'] }),
    tags: z.array(z.string()).optional().meta({ description: 'Grafana dashboard tags.', examples: [['api', 'slo']] }),
    refresh: z.string().optional().meta({ description: 'Auto-refresh interval.', examples: ['1m'] }),
    time: z
      .object({
        from: z.string().meta({ description: 'Start of the default time range.', examples: ['now-6h'] }),
        to: z.string().meta({ description: 'End of the default time range.', examples: ['now'] }),
      })
      .strict()
      .optional()
      .meta({ description: 'The default time range.' }),
    /** Default data source of every panel and target. */
    datasource: datasourceField('Default data source of every panel and target'),
    panels: z.array(panelSchema).optional().meta({ description: 'The panels, in order (a small typed model of Grafana panels); instead of json or source.' }),
    /** A whole Grafana dashboard model... */
    json: z.record(z.string(), z.unknown()).optional().meta({ description: 'A whole Grafana dashboard model, as Grafana exports it; instead of panels or source.', examples: [{ title: 'Imported', panels: [], schemaVersion: SCHEMA_VERSION }] }),
    /** ...or a file of the repository holding one (read at load time into `json`). */
    source: z.string().min(1).optional().meta({ description: 'A dashboard JSON file in the repository, relative to this document (read at load time); instead of panels or json.', examples: ['dashboards/api.json'] }),
    grafana: grafanaDeliverySchema.default(() => ({ ...GRAFANA_DEFAULTS })),
  })
  .strict()
  .superRefine((s, ctx) => {
    const given = [s.panels, s.json, s.source].filter((v) => v !== undefined).length;
    if (given !== 1) ctx.addIssue({ code: 'custom', message: 'give exactly one of panels, json or source' });
    if (s.panels !== undefined && s.title === undefined) ctx.addIssue({ code: 'custom', path: ['title'], message: 'a dashboard built from panels needs a title' });
  })
  .meta({
    examples: [
      {
        title: 'API overview',
        folder: 'Services',
        datasource: 'prom-main',
        panels: [
          { title: 'Requests by status', targets: [{ expr: 'sum by (code) (rate(http_requests_total{job="api"}[5m]))', legend: '{{code}}' }], unit: 'reqps' },
          { title: 'Error ratio', type: 'stat', unit: 'percentunit', targets: [{ expr: 'sum(rate(http_requests_total{job="api",code=~"5.."}[5m])) / sum(rate(http_requests_total{job="api"}[5m]))' }] },
        ],
      },
    ],
  });

export type DashboardSpec = z.infer<typeof dashboardSpecSchema>;
export type PanelSpec = z.infer<typeof panelSchema>;
export type Datasource = { type: string; uid: string };
export type GrafanaDashboard = Record<string, unknown>;

export async function resolveDashboardSource(
  spec: DashboardSpec,
  from: { file: string },
  readFile: (relativePath: string, fromFile: string) => Promise<Buffer>,
): Promise<DashboardSpec> {
  if (spec.source === undefined) return spec;
  const text = (await readFile(spec.source, from.file)).toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`${spec.source}: not JSON: ${(err as Error).message}`, { cause: err });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`${spec.source}: a dashboard is a JSON object`);
  const { source: _source, ...rest } = spec;
  return { ...rest, json: json as Record<string, unknown> };
}

interface GridRect {
  readonly x: number;
  readonly y: number;
  readonly w: number;
  readonly h: number;
}

function overlaps(a: GridRect, b: GridRect): boolean {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

/**
 * Places panels without gridPos in reading order (left to right, wrapping at
 * the grid width), each at the first free place at or after the previous one:
 * never over a panel with an explicit gridPos, wherever that one is in the
 * list. An explicit panel further down moves the next automatic ones to its
 * row at least, so the list order still reads top to bottom.
 */
function layout(panels: readonly PanelSpec[]): GridRect[] {
  const occupied: GridRect[] = panels.flatMap((p) => (p.gridPos ? [p.gridPos] : []));
  let cursor = { x: 0, y: 0 };
  return panels.map((p) => {
    if (p.gridPos) {
      if (p.gridPos.y > cursor.y) cursor = { x: 0, y: p.gridPos.y };
      return p.gridPos;
    }
    const { w, h } = DEFAULT_PANEL;
    for (let y = cursor.y; ; y++) {
      for (let x = y === cursor.y ? cursor.x : 0; x + w <= GRID_WIDTH; x++) {
        const rect = { x, y, w, h };
        if (occupied.some((o) => overlaps(o, rect))) continue;
        occupied.push(rect);
        cursor = { x: x + w, y };
        return rect;
      }
    }
  });
}

function buildPanel(p: PanelSpec, id: number, gridPos: object, fallback: Datasource | undefined): Record<string, unknown> {
  const datasource = p.datasource ?? fallback;
  const defaults: Record<string, unknown> = {};
  if (p.unit !== undefined) defaults['unit'] = p.unit;
  if (p.min !== undefined) defaults['min'] = p.min;
  if (p.max !== undefined) defaults['max'] = p.max;
  if (p.decimals !== undefined) defaults['decimals'] = p.decimals;
  if (p.thresholds !== undefined) defaults['thresholds'] = { mode: 'absolute', steps: p.thresholds };
  if (p.thresholdsStyle !== undefined) defaults['custom'] = { thresholdsStyle: { mode: p.thresholdsStyle } };
  const panel: Record<string, unknown> = { id, type: p.type, title: p.title, gridPos };
  if (p.description !== undefined) panel['description'] = p.description;
  if (p.type === 'text') {
    panel['options'] = { mode: 'markdown', content: p.content ?? '' };
    return panel;
  }
  if (datasource) panel['datasource'] = datasource;
  panel['fieldConfig'] = { defaults, overrides: [] };
  panel['targets'] = (p.targets ?? []).map((t, i) => ({
    refId: t.refId ?? String.fromCharCode(65 + (i % 26)) + (i >= 26 ? String(Math.floor(i / 26)) : ''),
    ...(t.datasource ?? datasource ? { datasource: t.datasource ?? datasource } : {}),
    expr: t.expr,
    ...(t.legend !== undefined ? { legendFormat: t.legend } : {}),
    ...(t.instant ? { instant: true, range: false } : {}),
  }));
  return panel;
}

/** The Grafana dashboard model of a Dashboard spec (typed panels or JSON), with uid and title set and no numeric `id`. */
export function buildDashboard(name: string, spec: DashboardSpec): GrafanaDashboard {
  const uid = spec.uid ?? dashboardUid(name);
  if (spec.json) {
    const { id: _id, ...json } = spec.json;
    return { ...json, uid, title: spec.title ?? json['title'] ?? name, ...(spec.tags ? { tags: spec.tags } : {}) };
  }
  const panels = spec.panels ?? [];
  const positions = layout(panels);
  const used = new Set(panels.map((p) => p.id).filter((id): id is number => id !== undefined));
  let next = 1;
  const ids = panels.map((p) => {
    if (p.id !== undefined) return p.id;
    while (used.has(next)) next++;
    used.add(next);
    return next;
  });
  return {
    uid,
    title: spec.title ?? name,
    tags: spec.tags ?? [],
    timezone: 'browser',
    editable: false,
    graphTooltip: 1,
    schemaVersion: SCHEMA_VERSION,
    version: 1,
    refresh: spec.refresh ?? '1m',
    time: spec.time ?? { from: 'now-6h', to: 'now' },
    annotations: { list: [] },
    templating: { list: [] },
    panels: panels.map((p, i) => buildPanel(p, ids[i]!, positions[i]!, spec.datasource)),
  };
}

export const MAX_UID_LENGTH = 40;
const UID_HASH_LENGTH = 8;

/**
 * A Grafana UID from a resource name. A name that is a valid uid (at most 40
 * letters, digits, `_`, `-`) is its own uid; any other (longer, or with a `.`)
 * is cut to 31 characters and given `-` and 8 hex digits of the SHA-256 of the
 * whole name, so that two names with a long common prefix (`slo-checkout-api-
 * availability-eu-west-1` and `...-eu-west-2`), or `a.b` and `a-b`, never share a
 * uid, and the same name always gives the same one.
 */
export function dashboardUid(name: string): string {
  if (name.length <= MAX_UID_LENGTH && /^[A-Za-z0-9_-]+$/.test(name)) return name;
  const digest = createHash('sha256').update(name).digest('hex').slice(0, UID_HASH_LENGTH);
  return `${name.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, MAX_UID_LENGTH - UID_HASH_LENGTH - 1)}-${digest}`;
}

/** Problems of a Grafana dashboard model: missing title or uid, duplicate panel ids, panels without a data source, grid overflow or overlap, thresholds out of order. */
export function dashboardProblems(dashboard: GrafanaDashboard): string[] {
  const problems: string[] = [];
  if (typeof dashboard['title'] !== 'string' || dashboard['title'] === '') problems.push('the dashboard has no title');
  const uid = dashboard['uid'];
  if (typeof uid !== 'string' || !/^[A-Za-z0-9_-]{1,40}$/.test(uid)) problems.push('the dashboard uid must be 1 to 40 letters, digits, "_" or "-"');
  const topPanels = dashboard['panels'];
  if (topPanels !== undefined && !Array.isArray(topPanels)) {
    problems.push('panels is not a list');
    return problems;
  }
  const seen = new Map<number, string>();
  const visit = (panels: unknown[], rowDatasource: unknown): void => {
    for (const [i, raw] of panels.entries()) {
      if (typeof raw !== 'object' || raw === null) {
        problems.push(`panel #${i + 1} is not an object`);
        continue;
      }
      const panel = raw as Record<string, unknown>;
      const label = typeof panel['title'] === 'string' && panel['title'] !== '' ? `panel "${panel['title']}"` : `panel #${i + 1}`;
      const id = panel['id'];
      if (typeof id !== 'number' || !Number.isInteger(id) || id <= 0) problems.push(`${label} has no positive integer id`);
      else if (seen.has(id)) problems.push(`panel id ${id} is used by both ${seen.get(id)} and ${label}`);
      else seen.set(id, label);
      const steps = thresholdSteps(panel);
      if (steps) {
        const values = steps.map((st) => (typeof st === 'object' && st !== null ? (st as Record<string, unknown>)['value'] : undefined));
        if (!stepsAscending(values)) problems.push(`${label} has thresholds out of order: Grafana needs a base step (value null) first, then ascending values (got ${values.map(String).join(', ')})`);
      }
      const grid = panel['gridPos'] as Record<string, unknown> | undefined;
      if (grid && typeof grid['x'] === 'number' && typeof grid['w'] === 'number' && grid['x'] + grid['w'] > GRID_WIDTH) {
        problems.push(`${label} is wider than the grid: x ${grid['x']} + w ${grid['w']} > ${GRID_WIDTH}`);
      }
      const targets = Array.isArray(panel['targets']) ? (panel['targets'] as unknown[]) : [];
      const panelDs = panel['datasource'] ?? rowDatasource;
      if (targets.length > 0 && !isDatasource(panelDs)) {
        const unset = targets.filter((t) => !(typeof t === 'object' && t !== null && isDatasource((t as Record<string, unknown>)['datasource'])));
        if (unset.length > 0) problems.push(`${label} has queries but no data source (set datasource on the panel or the dashboard)`);
      }
      if (Array.isArray(panel['panels'])) visit(panel['panels'] as unknown[], panelDs);
    }
  };
  visit((topPanels as unknown[] | undefined) ?? [], undefined);
  problems.push(...overlapProblems((topPanels as unknown[] | undefined) ?? []));
  return problems;
}

/** Panels of one level whose gridPos overlap (Grafana would push one down, not show the layout written). */
function overlapProblems(panels: readonly unknown[]): string[] {
  const placed: { label: string; rect: GridRect }[] = [];
  const problems: string[] = [];
  panels.forEach((raw, i) => {
    if (typeof raw !== 'object' || raw === null) return;
    const panel = raw as Record<string, unknown>;
    const g = panel['gridPos'] as Record<string, unknown> | undefined;
    if (!g || ![g['x'], g['y'], g['w'], g['h']].every((v) => typeof v === 'number')) return;
    const rect = { x: g['x'] as number, y: g['y'] as number, w: g['w'] as number, h: g['h'] as number };
    const label = typeof panel['title'] === 'string' && panel['title'] !== '' ? `panel "${panel['title']}"` : `panel #${i + 1}`;
    for (const other of placed) if (overlaps(other.rect, rect)) problems.push(`${label} overlaps ${other.label} on the grid`);
    placed.push({ label, rect });
  });
  return problems;
}

/** A base step (null, Grafana's minus infinity) or a number first, then strictly ascending numbers. */
function stepsAscending(values: readonly unknown[]): boolean {
  return values.every((v, k) => {
    if (k === 0) return v === null || typeof v === 'number';
    const before = values[k - 1];
    return typeof v === 'number' && (typeof before !== 'number' || v > before);
  });
}

function thresholdSteps(panel: Record<string, unknown>): unknown[] | undefined {
  const fieldConfig = panel['fieldConfig'] as Record<string, unknown> | undefined;
  const defaults = fieldConfig?.['defaults'] as Record<string, unknown> | undefined;
  const thresholds = defaults?.['thresholds'] as Record<string, unknown> | undefined;
  const steps = thresholds?.['steps'];
  return Array.isArray(steps) ? steps : undefined;
}

function isDatasource(ds: unknown): boolean {
  if (typeof ds === 'string') return ds !== '';
  if (typeof ds !== 'object' || ds === null) return false;
  const uid = (ds as Record<string, unknown>)['uid'];
  return typeof uid === 'string' && uid !== '';
}

export function validateDashboard(resource: Resource<DashboardSpec>): Diagnostic[] {
  const source = ((): Diagnostic['source'] => {
    try {
      return resource.positionOf(['spec']);
    } catch {
      return resource.source;
    }
  })();
  return dashboardProblems(buildDashboard(resource.name, resource.spec)).map((p) => error(p, { address: resource.address, source }));
}

/** Stable JSON text of a dashboard as written to disk. */
export function dashboardJsonText(dashboard: GrafanaDashboard): string {
  return `${JSON.stringify(dashboard, null, 2)}\n`;
}

/** Grafana's dashboard provider file for one dashboard folder. */
export function provisioningYaml(name: string, folder: string | undefined, dashboardDir: string): string {
  return toYamlText({
    apiVersion: 1,
    providers: [
      {
        name: `capstan-${name}`,
        orgId: 1,
        folder: folder ?? '',
        type: 'file',
        disableDeletion: false,
        allowUiUpdates: false,
        updateIntervalSeconds: 30,
        options: { path: dashboardDir, foldersFromFilesStructure: false },
      },
    ],
  });
}

/** The files one dashboard is delivered as: absolute paths on the Grafana host → content. */
export function dashboardFiles(name: string, spec: DashboardSpec): { provisioningFile: string; dashboardFile: string; provisioning: string; json: string } {
  const dir = `${spec.grafana.dashboardsDir.replace(/\/+$/, '')}/${name}`;
  return {
    provisioningFile: `${spec.grafana.provisioningDir.replace(/\/+$/, '')}/dashboards/capstan-${name}.yaml`,
    dashboardFile: `${dir}/${name}.json`,
    provisioning: provisioningYaml(name, spec.folder, dir),
    json: dashboardJsonText(buildDashboard(name, spec)),
  };
}
