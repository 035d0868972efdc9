import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { ResourceProvider, TargetProvider } from '../providers/provider.js';
import { ProviderRegistry } from '../providers/registry.js';
import { hostProviders } from '../providers/host/index.js';
import { hostGroupDescription } from './host-group.js';
import { specJsonSchema } from './json-schema.js';

const unused = {
  read: () => Promise.reject(new Error('unused')),
  diff: () => ({ action: 'noop' as const, fields: [] }),
  apply: () => Promise.reject(new Error('unused')),
};

interface Tree {
  name: string;
  children: Tree[];
}
const tree: z.ZodType<Tree> = z.lazy(() => z.strictObject({ name: z.string(), children: z.array(tree) }));

const host: TargetProvider = {
  role: 'target',
  kind: 'Host',
  description: 'a host',
  schema: z.strictObject({ groups: z.array(z.string()).default([]) }),
  groupsOf: () => [],
  connect: () => Promise.reject(new Error('unused')),
};
const file: ResourceProvider = {
  role: 'resource',
  kind: 'File',
  description: 'a file',
  schema: z.strictObject({ path: z.string(), mode: z.string().default('0644') }),
  targetKind: 'Host',
  ...unused,
};
const menu: ResourceProvider = {
  role: 'resource',
  kind: 'Menu',
  description: 'a recursive spec',
  schema: z.strictObject({ root: tree }),
  targetKind: 'Host',
  ...unused,
};

type Json = Record<string, unknown>;

/** Every `$ref` must point at something inside the document. */
function expectRefsResolve(schema: Json): number {
  let count = 0;
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) return v.forEach(walk);
    if (v === null || typeof v !== 'object') return;
    for (const [k, child] of Object.entries(v)) {
      if (k === '$ref') {
        count++;
        expect(typeof child).toBe('string');
        let target: unknown = schema;
        for (const seg of (child as string).replace(/^#\/?/, '').split('/').filter(Boolean)) target = (target as Json)[seg];
        expect(target, `${child as string} resolves`).toBeTypeOf('object');
      } else walk(child);
    }
  };
  walk(schema);
  return count;
}

describe('specJsonSchema', () => {
  const schema = specJsonSchema(new ProviderRegistry([host, file, menu]));

  it('describes the envelope', () => {
    expect(schema['$schema']).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(schema['required']).toEqual(['kind', 'name']);
    expect(schema['additionalProperties']).toBe(false);
    const props = schema['properties'] as Json;
    expect(Object.keys(props)).toEqual(['kind', 'name', 'target', 'dependsOn', 'notify', 'spec']);
    expect((props['kind'] as Json)['anyOf']).toEqual([
      { const: 'File', description: 'a file' },
      { const: 'Host', description: 'a host' },
      { const: 'Menu', description: 'a recursive spec' },
      { const: 'HostGroup', description: hostGroupDescription },
    ]);
    const target = new RegExp((props['target'] as Json)['pattern'] as string);
    expect(['web-1', 'group:web', 'a.b_c'].every((t) => target.test(t))).toBe(true);
    expect(['Web', 'group:', 'group:-x', 'x-'].some((t) => target.test(t))).toBe(false);
    const dep = new RegExp(((props['dependsOn'] as Json)['items'] as Json)['pattern'] as string);
    expect(dep.test('Directory/app')).toBe(true);
    expect(dep.test('Directory/app@web-1')).toBe(false);
  });

  it('has one if/then per kind with the spec schema of its provider', () => {
    const allOf = schema['allOf'] as Json[];
    expect(allOf.map((c) => ((c['if'] as Json)['properties'] as Json)['kind'])).toEqual([
      { const: 'File' },
      { const: 'Host' },
      { const: 'Menu' },
      { const: 'HostGroup' },
    ]);
    const [fileRule, hostRule] = allOf as [Json, Json];
    expect(fileRule['then']).toEqual({ properties: { spec: { $ref: '#/$defs/FileSpec' } }, required: ['target'] });
    expect(hostRule['then']).toEqual({ properties: { spec: { $ref: '#/$defs/HostSpec' }, target: false, dependsOn: false, notify: false } });
    const fileSpec = (schema['$defs'] as Json)['FileSpec'] as Json;
    // Input side: a field with a default is optional; strict objects forbid unknown keys.
    expect(fileSpec['required']).toEqual(['path']);
    expect(fileSpec['additionalProperties']).toBe(false);
    expect(fileSpec['description']).toBe('a file');
  });

  it('describes HostGroup, which the spec layer reads itself: no target, dependsOn or notify, its spec with defaults optional', () => {
    const rule = (schema['allOf'] as Json[]).at(-1)!;
    expect(rule['then']).toEqual({ properties: { spec: { $ref: '#/$defs/HostGroupSpec' }, target: false, dependsOn: false, notify: false } });
    const spec = (schema['$defs'] as Json)['HostGroupSpec'] as Json;
    expect(spec['additionalProperties']).toBe(false);
    expect(spec['required']).toBeUndefined();
    const rollout = (spec['properties'] as Json)['rollout'] as Json;
    expect(Object.keys(rollout['properties'] as Json)).toEqual(['batch', 'maxFailures', 'healthCheck']);
    expect(((rollout['properties'] as Json)['batch'] as Json)['default']).toBe('100%');
  });

  it('hoists nested definitions so every $ref resolves from the root', () => {
    expect(expectRefsResolve(schema)).toBeGreaterThan(3);
    expect(JSON.stringify(schema)).not.toContain('"$ref":"#"');
  });

  it('serialises to JSON', () => {
    expect(JSON.parse(JSON.stringify(schema))).toEqual(schema);
  });

  it('covers the real host providers', () => {
    const real = specJsonSchema(new ProviderRegistry(hostProviders));
    expectRefsResolve(real);
    const defs = real['$defs'] as Json;
    for (const p of hostProviders) expect(defs[`${p.kind}Spec`], p.kind).toBeTypeOf('object');
  });
});
