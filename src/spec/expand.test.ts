import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { ResourceProvider, TargetProvider } from '../providers/provider.js';
import { ProviderRegistry } from '../providers/registry.js';
import type { LoadedDocument } from './envelope.js';
import { expandResources, resolveDependency, TargetIndex, type CheckedResourceDocument } from './expand.js';
import type { Resource } from './resource.js';

const position = { file: 'a.yaml', line: 1, col: 1 };
const unused = {
  read: () => Promise.reject(new Error('unused')),
  diff: () => ({ action: 'noop' as const, fields: [] }),
  apply: () => Promise.reject(new Error('unused')),
};
const host: TargetProvider<{ groups: string[] }> = {
  role: 'target',
  kind: 'Host',
  description: 'fake',
  schema: z.strictObject({ groups: z.array(z.string()) }),
  groupsOf: (spec) => spec.groups,
  connect: () => Promise.reject(new Error('unused')),
};
const other: TargetProvider<{ groups: string[] }> = { ...host, kind: 'Cluster' };
const file: ResourceProvider<object> = {
  role: 'resource',
  kind: 'File',
  description: 'fake',
  schema: z.strictObject({}),
  targetKind: 'Host',
  ...unused,
};
const registry = new ProviderRegistry([host, other, file]);

function target(kind: string, name: string, groups: string[]): Resource {
  return { address: `${kind}/${name}`, kind, name, target: undefined, dependsOn: [], spec: { groups }, source: position, positionOf: () => position };
}

function doc(name: string, targetValue: string, dependsOn: string[] = []): CheckedResourceDocument {
  const d: LoadedDocument = {
    kind: 'File',
    name,
    target: targetValue,
    dependsOn,
    dependsOnAt: dependsOn.map((_, i) => i),
    notify: [],
    notifyAt: [],
    spec: {},
    source: position,
    positionOf: () => position,
    keyPositionOf: () => position,
    index: 0,
  };
  return { doc: d, provider: file, spec: { parsed: name }, specOk: true, valid: true };
}

const index = new TargetIndex(
  [target('Host', 'web-2', ['web']), target('Host', 'web-1', ['web', 'web']), target('Host', 'db-1', ['db']), target('Cluster', 'web-3', ['web'])],
  registry,
);

describe('TargetIndex', () => {
  it('finds targets by name and by group, members in name order, each once', () => {
    expect(index.group('web').map((t) => t.address)).toEqual(['Host/web-1', 'Host/web-2', 'Cluster/web-3']);
    expect(index.select('group:web', 'Host').map((t) => t.address)).toEqual(['Host/web-1', 'Host/web-2']);
    expect(index.select('web-3', 'Host')).toEqual([]);
    expect(index.select('web-3', 'Cluster').map((t) => t.address)).toEqual(['Cluster/web-3']);
    expect(index.select('group:none', 'Host')).toEqual([]);
  });
});

describe('expandResources', () => {
  it('makes one instance per member of a group and keeps single resources as Kind/name', () => {
    const out = expandResources([doc('conf', 'group:web'), doc('motd', 'db-1')], index);
    expect(out.map((r) => [r.address, r.target, r.spec])).toEqual([
      ['File/conf@web-1', 'Host/web-1', { parsed: 'conf' }],
      ['File/conf@web-2', 'Host/web-2', { parsed: 'conf' }],
      ['File/motd', 'Host/db-1', { parsed: 'motd' }],
    ]);
  });

  it('resolves dependencies to the same host, then the single resource, then every instance', () => {
    const out = expandResources(
      [
        doc('dir', 'group:web'),
        doc('single', 'web-1', ['File/dir']), // same host instance exists
        doc('on-db', 'db-1', ['File/dir', 'File/single']), // no instance on db-1: all instances; single stays single
        doc('conf', 'group:web', ['File/dir', 'File/single', 'File/conf', 'File/dir', 'File/gone']),
      ],
      index,
    );
    const deps = Object.fromEntries(out.map((r) => [r.address, r.dependsOn]));
    expect(deps).toEqual({
      'File/dir@web-1': [],
      'File/dir@web-2': [],
      'File/single': ['File/dir@web-1'],
      'File/on-db': ['File/dir@web-1', 'File/dir@web-2', 'File/single'],
      // Duplicates, self-references and unknown addresses (reported by validation) are dropped.
      'File/conf@web-1': ['File/dir@web-1', 'File/single'],
      'File/conf@web-2': ['File/dir@web-2', 'File/single'],
    });
  });

  it('skips documents whose spec or target is unusable', () => {
    const broken = { ...doc('broken', 'web-1'), specOk: false };
    expect(expandResources([broken, doc('nowhere', 'web-9')], index)).toEqual([]);
  });
});

describe('resolveDependency', () => {
  it('applies the rules in order', () => {
    const addresses = new Set(['A/x@h1', 'A/x@h2', 'A/y']);
    const instances = new Map([['A/x', ['A/x@h1', 'A/x@h2']]]);
    expect(resolveDependency('A/x', 'h1', addresses, instances)).toEqual(['A/x@h1']);
    expect(resolveDependency('A/x', 'h3', addresses, instances)).toEqual(['A/x@h1', 'A/x@h2']);
    expect(resolveDependency('A/y', 'h1', addresses, instances)).toEqual(['A/y']);
    expect(resolveDependency('A/z', 'h1', addresses, instances)).toEqual([]);
  });
});
