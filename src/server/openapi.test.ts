import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { apiPage, operationsOf } from '../reference/api-page.js';
import { REGENERATE_COMMAND } from '../reference/kind-page.js';
import { openApiDocumentAndRoutes } from './openapi-document.js';
import { ROUTE_DOCS } from './route-schemas.js';

const API_PAGE = new URL('../../docs/api.md', import.meta.url);

describe('OpenAPI document', () => {
  it('lists every route the server registers, each documented (summary, answers) and with the role it needs', async () => {
    const { document, routes } = await openApiDocumentAndRoutes();
    // The routes seen by fastify's onRoute hook, in OpenAPI's path syntax.
    const registered = routes.map((r) => r.replace(/:(\w+)/g, '{$1}')).sort();
    expect(registered.length).toBeGreaterThan(15);
    const ops = operationsOf(document);
    expect(ops.map((o) => `${o.method} ${o.path}`).sort()).toEqual(registered);
    const undocumented = routes.filter((r) => ROUTE_DOCS[r] === undefined);
    expect(undocumented, 'add these routes to src/server/route-schemas.ts').toEqual([]);
    for (const o of ops) {
      expect(o.op['summary'], `${o.method} ${o.path}`).toEqual(expect.any(String));
      expect(['none', 'viewer', 'operator', 'admin'], `${o.method} ${o.path}`).toContain(o.op['x-capstan-role']);
    }
    const role = (method: string, path: string) => ops.find((o) => o.method === method && o.path === path)?.op['x-capstan-role'];
    expect(role('GET', '/api/stacks')).toBe('viewer');
    expect(role('POST', '/api/stacks/{name}/sync')).toBe('operator');
    expect(role('POST', '/api/tokens')).toBe('admin');
    expect(role('POST', '/api/webhooks/{provider}')).toBe('none');
    expect(role('GET', '/api/openapi.json')).toBe('viewer');
  });

  it('is OpenAPI 3.1 with the answers of a route and a bearer security scheme', async () => {
    const { document } = await openApiDocumentAndRoutes();
    expect(document['openapi']).toBe('3.1.0');
    const stacks = operationsOf(document).find((o) => o.method === 'GET' && o.path === '/api/stacks')!;
    const ok = (stacks.op['responses'] as Record<string, { content: Record<string, { schema: { type: string; items: { required: string[] } } }> }>)['200']!;
    expect(ok.content['application/json']!.schema.type).toBe('array');
    expect(ok.content['application/json']!.schema.items.required).toEqual(expect.arrayContaining(['name', 'status', 'lastAppliedCommit']));
    expect(stacks.op['security']).toEqual([{ bearer: [] }]);
  });

  it(`docs/api.md is the page generated from it (regenerate: ${REGENERATE_COMMAND})`, async () => {
    const { document } = await openApiDocumentAndRoutes();
    const committed = await readFile(API_PAGE, 'utf8').catch(() => '');
    expect(committed, `docs/api.md is stale: run ${REGENERATE_COMMAND} and commit the result`).toBe(apiPage(document));
  });
});
