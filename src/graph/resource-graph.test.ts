import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { ResourceProvider, TargetProvider } from '../providers/provider.js';
import { ProviderRegistry } from '../providers/registry.js';
import type { Resource } from '../spec/resource.js';
import { buildResourceGraph } from './resource-graph.js';

interface PathSpec {
  path: string;
}

const unused = {
  read: () => Promise.reject(new Error('unused')),
  diff: () => ({ action: 'noop' as const, fields: [] }),
  apply: () => Promise.reject(new Error('unused')),
};

const seen: { address: string; sameTarget: string[] }[] = [];

const host: TargetProvider = {
  role: 'target',
  kind: 'Host',
  description: 'fake',
  schema: z.object({}),
  groupsOf: () => [],
  connect: () => Promise.reject(new Error('unused')),
};
const directory: ResourceProvider<PathSpec> = {
  role: 'resource',
  kind: 'Directory',
  description: 'fake',
  schema: z.strictObject({ path: z.string() }),
  targetKind: 'Host',
  ...unused,
};
const file: ResourceProvider<PathSpec> = {
  role: 'resource',
  kind: 'File',
  description: 'fake',
  schema: z.strictObject({ path: z.string() }),
  targetKind: 'Host',
  implicitDependencies(r, sameTarget) {
    seen.push({ address: r.address, sameTarget: sameTarget.map((o) => o.address) });
    const parents = sameTarget.filter((o) => o.kind === 'Directory' && r.spec.path.startsWith(`${(o.spec as PathSpec).path}/`));
    // A sloppy provider may name the resource itself or a missing one: the graph ignores both.
    return [...parents.map((o) => o.address), r.address, 'Directory/missing'];
  },
  ...unused,
};
const registry = new ProviderRegistry([host, directory, file]);

function resource(address: string, target: string | undefined, spec: object, dependsOn: string[] = []): Resource {
  const [kind, rest] = address.split('/') as [string, string];
  const position = { file: 'a.yaml', line: 1, col: 1 };
  return { address, kind, name: rest.split('@')[0]!, target, dependsOn, spec, source: position, positionOf: () => position };
}

describe('buildResourceGraph', () => {
  it('adds explicit and implicit edges between resources only', () => {
    seen.length = 0;
    const resources = [
      resource('Directory/app@web-1', 'Host/web-1', { path: '/srv/app' }),
      resource('Directory/app@web-2', 'Host/web-2', { path: '/srv/app' }),
      resource('File/conf@web-1', 'Host/web-1', { path: '/srv/app/conf' }),
      resource('File/conf@web-2', 'Host/web-2', { path: '/srv/app/conf' }),
      resource('File/motd', 'Host/web-1', { path: '/etc/motd' }, ['File/conf@web-1', 'File/conf@web-2', 'Host/web-1']),
    ];
    const g = buildResourceGraph(resources, registry);
    expect(g.nodes()).toEqual(['Directory/app@web-1', 'Directory/app@web-2', 'File/conf@web-1', 'File/conf@web-2', 'File/motd']);
    expect(g.dependenciesOf('File/conf@web-1')).toEqual(['Directory/app@web-1']);
    expect(g.dependenciesOf('File/conf@web-2')).toEqual(['Directory/app@web-2']);
    // Explicit edges may cross targets; a target is never a node.
    expect(g.dependenciesOf('File/motd')).toEqual(['File/conf@web-1', 'File/conf@web-2']);
    expect(g.has('Host/web-1')).toBe(false);
    expect(g.findCycles()).toEqual([]);
    expect(g.topologicalOrder()).toEqual(['Directory/app@web-1', 'Directory/app@web-2', 'File/conf@web-1', 'File/conf@web-2', 'File/motd']);
  });

  it('passes every resource the same frozen array of all resources on its target', () => {
    seen.length = 0;
    const arrays: (readonly Resource[])[] = [];
    const spy = new ProviderRegistry([
      host,
      directory,
      {
        ...file,
        implicitDependencies: (r: Resource, sameTarget: readonly Resource[]) => {
          arrays.push(sameTarget);
          return file.implicitDependencies!(r as Resource<PathSpec>, sameTarget);
        },
      },
    ]);
    buildResourceGraph(
      [
        resource('File/a', 'Host/h1', { path: '/a' }),
        resource('File/b', 'Host/h1', { path: '/b' }),
        resource('Directory/c', 'Host/h1', { path: '/c' }),
        resource('File/d', 'Host/h2', { path: '/d' }),
      ],
      spy,
    );
    expect(seen).toEqual([
      { address: 'File/a', sameTarget: ['File/a', 'File/b', 'Directory/c'] },
      { address: 'File/b', sameTarget: ['File/a', 'File/b', 'Directory/c'] },
      { address: 'File/d', sameTarget: ['File/d'] },
    ]);
    // One array per target, shared by all its resources, so providers can index it once.
    expect(arrays[0]).toBe(arrays[1]);
    expect(arrays[2]).not.toBe(arrays[0]);
    expect(Object.isFrozen(arrays[0])).toBe(true);
  });

  it('orders a resource after those on its target that provide what it references, and only those', () => {
    interface NamedSpec {
      name: string;
      needs?: string[];
    }
    const account: ResourceProvider<NamedSpec> = {
      role: 'resource',
      kind: 'Account',
      description: 'fake',
      schema: z.strictObject({ name: z.string() }),
      targetKind: 'Host',
      provides: (spec) => [`account:${spec.name}`],
      ...unused,
    };
    const owned: ResourceProvider<NamedSpec> = {
      role: 'resource',
      kind: 'Owned',
      description: 'fake',
      schema: z.strictObject({ name: z.string(), needs: z.array(z.string()) }),
      targetKind: 'Host',
      // Itself among what it needs: no self-edge.
      provides: (spec) => [`account:${spec.name}`],
      references: (spec) => (spec.needs ?? []).map((n) => ({ key: `account:${n}`, field: ['needs'], label: `account ${n}` })),
      ...unused,
    };
    const g = buildResourceGraph(
      [
        resource('Owned/conf@h1', 'Host/h1', { name: 'conf', needs: ['alice', 'bob', 'conf', 'nobody-declares-me'] }),
        resource('Account/alice@h1', 'Host/h1', { name: 'alice' }),
        resource('Account/bob@h1', 'Host/h1', { name: 'bob' }),
        resource('Account/bob-again@h1', 'Host/h1', { name: 'bob' }),
        // The same name on another host provides nothing to h1.
        resource('Account/alice@h2', 'Host/h2', { name: 'alice' }),
      ],
      new ProviderRegistry([host, account, owned]),
    );
    expect(g.dependenciesOf('Owned/conf@h1')).toEqual(['Account/alice@h1', 'Account/bob-again@h1', 'Account/bob@h1']);
    expect(g.dependentsOf('Account/alice@h2')).toEqual([]);
    expect(g.topologicalOrder().at(-1)).toBe('Owned/conf@h1');
  });

  it('keeps cycles for the caller to report', () => {
    const g = buildResourceGraph(
      [resource('File/a', 'Host/h', { path: '/a' }, ['File/b']), resource('File/b', 'Host/h', { path: '/b' }, ['File/a'])],
      registry,
    );
    expect(g.findCycles()).toEqual([['File/a', 'File/b', 'File/a']]);
  });
});
