import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { formatDiagnostic } from '../diag/diagnostic.js';
import { buildResourceGraph } from '../graph/resource-graph.js';
import type { ResourceProvider, TargetProvider } from '../providers/provider.js';
import { ProviderRegistry } from '../providers/registry.js';
import { useTempStack } from './testing/temp-stack.js';

const unused = {
  read: () => Promise.reject(new Error('not in this test')),
  diff: () => ({ action: 'noop' as const, fields: [] }),
  apply: () => Promise.reject(new Error('not in this test')),
};
const host: TargetProvider<{ groups: string[] }> = {
  role: 'target',
  kind: 'Host',
  description: 'a fake host',
  schema: z.strictObject({ groups: z.array(z.string()).default([]) }),
  groupsOf: (spec) => spec.groups,
  connect: () => Promise.reject(new Error('not in this test')),
};
const file: ResourceProvider<{ path: string }> = {
  role: 'resource',
  kind: 'File',
  description: 'a fake file',
  schema: z.strictObject({ path: z.string() }),
  targetKind: 'Host',
  ...unused,
};
const service: ResourceProvider<{ unit: string }> = {
  role: 'resource',
  kind: 'Service',
  description: 'a fake service that can be restarted',
  schema: z.strictObject({ unit: z.string() }),
  targetKind: 'Host',
  ...unused,
  refresh: () => Promise.reject(new Error('not in this test')),
};
const registry = new ProviderRegistry([host, file, service]);

const repo = useTempStack(registry, 'capstan-notify-');
const load = (yaml: string) => repo.load({ 'stack.yaml': yaml });

const HOSTS = `
kind: Host
name: web-1
spec: { groups: [web] }
---
kind: Host
name: web-2
spec: { groups: [web] }
`;

describe('notify:', () => {
  it('resolves to the handler on the same host and makes the handler run after its notifier', async () => {
    const stack = await load(`${HOSTS}---
kind: File
name: conf
target: group:web
notify: [Service/nginx]
spec: { path: /etc/nginx.conf }
---
kind: Service
name: nginx
target: group:web
spec: { unit: nginx }
`);
    expect(stack.diagnostics.map(formatDiagnostic)).toEqual([]);
    const conf = stack.resources.find((r) => r.address === 'File/conf@web-2')!;
    expect(conf.notify).toEqual(['Service/nginx@web-2']);
    const graph = buildResourceGraph(stack.resources, registry);
    expect([...graph.dependenciesOf('Service/nginx@web-2')]).toEqual(['File/conf@web-2']);
    expect(stack.resources.find((r) => r.address === 'Service/nginx@web-1')!.notify).toBeUndefined();
  });

  it('changes the spec hash when a notify edge is added', async () => {
    const body = (notify: string) => `${HOSTS}---
kind: File
name: conf
target: web-1
${notify}spec: { path: /etc/nginx.conf }
---
kind: Service
name: nginx
target: web-1
spec: { unit: nginx }
`;
    const without = await load(body(''));
    const withNotify = await load(body('notify: [Service/nginx]\n'));
    expect(withNotify.specHash).not.toBe(without.specHash);
  });

  it('refuses handlers that cannot react, unknown handlers, targets, itself, and targets with notify', async () => {
    const stack = await load(`${HOSTS}---
kind: File
name: conf
target: web-1
notify: [File/other, Service/ngnix, Host/web-1, File/conf, "not an address"]
spec: { path: /etc/nginx.conf }
---
kind: File
name: other
target: web-1
spec: { path: /etc/other }
---
kind: Service
name: nginx
target: web-1
spec: { unit: nginx }
---
kind: Host
name: web-3
notify: [Service/nginx]
spec: {}
`);
    expect(stack.diagnostics.map(formatDiagnostic)).toEqual([
      'stack.yaml:13:10: File/conf: notify "File/other": a File cannot be notified (only kinds that can react to a change can be notified: Service; use dependsOn for ordering)',
      'stack.yaml:13:22: File/conf: notify "Service/ngnix": no such resource (did you mean "Service/nginx"?)',
      'stack.yaml:13:37: File/conf: notify "Host/web-1" names a target (notify resources; the target a resource lives on is set by target:)',
      'stack.yaml:13:49: File/conf: File/conf notifies itself',
      'stack.yaml:13:60: File/conf: notify "not an address" is not an address (write Kind/name, e.g. Exec/reload-nginx)',
      'stack.yaml:28:9: Host/web-3: Host is a target kind: it cannot have notify (targets are not nodes of the dependency graph)',
    ]);
    expect(stack.resources.map((r) => r.address)).toEqual(['File/other', 'Service/nginx']);
  });

  it('names the cycle when a handler also feeds its notifier', async () => {
    const stack = await load(`${HOSTS}---
kind: File
name: conf
target: web-1
dependsOn: [Service/nginx]
notify: [Service/nginx]
spec: { path: /etc/nginx.conf }
---
kind: Service
name: nginx
target: web-1
spec: { unit: nginx }
`);
    expect(stack.diagnostics.map(formatDiagnostic).join('\n')).toMatch(/cycle.*File\/conf -> Service\/nginx -> File\/conf|cycle.*Service\/nginx -> File\/conf -> Service\/nginx/);
  });
});
