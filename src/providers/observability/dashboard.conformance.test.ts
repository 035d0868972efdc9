import * as fs from 'node:fs/promises';
import { openSandbox } from '../host/testing/sandbox.js';
import { runProviderConformance } from '../testing/conformance.js';
import { dashboardSpecSchema } from './dashboard.js';
import { dashboardProvider } from './providers.js';

const spec = (title: string) =>
  dashboardSpecSchema.parse({ name: 'api', title, datasource: 'prometheus', panels: [{ title: 'Requests', targets: [{ expr: 'sum(rate(http_requests_total[5m]))' }] }] });

runProviderConformance({
  provider: dashboardProvider,
  connect: async () => {
    const sandbox = await openSandbox();
    return { handle: sandbox.handle, cleanup: sandbox.cleanup };
  },
  create: spec('API'),
  update: { ...spec('API overview'), folder: 'Services' },
  invalidSpecs: [
    { spec: { title: 'x' }, message: /exactly one of panels, json or source/ },
    { spec: { panels: [] }, message: /needs a title/ },
    { spec: { title: 'x', panels: [{ title: 'p', gridPos: { x: 0, y: 0, w: 30, h: 1 } }] }, message: /24/ },
    { spec: { title: 'x', uid: 'not a uid!', panels: [] }, message: /./ },
  ],
  makeDrift: (handle) => fs.writeFile(`${handle.realRoot}/var/lib/grafana/dashboards/capstan/api/api.json`, '{}'),
  driftedField: '/var/lib/grafana/dashboards/capstan/api/api.json',
});
