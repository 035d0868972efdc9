import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { error, formatDiagnostic, type Diagnostic } from '../diag/diagnostic.js';
import type { AnyProvider, ResourceProvider, TargetProvider } from '../providers/provider.js';
import { ProviderRegistry } from '../providers/registry.js';
import { loadStack } from './load.js';
import type { Resource } from './resource.js';

// Validation is exercised through loadStack on one-file stacks, with providers
// whose hooks each test shapes.

interface Spec {
  path?: string;
  groups?: string[];
  parent?: string;
}

const unused = {
  read: () => Promise.reject(new Error('unused')),
  diff: () => ({ action: 'noop' as const, fields: [] }),
  apply: () => Promise.reject(new Error('unused')),
};

function hostKind(validate?: (r: Resource<Spec>) => Diagnostic[]): TargetProvider<Spec> {
  return {
    role: 'target',
    kind: 'Host',
    description: 'fake',
    schema: z.strictObject({ groups: z.array(z.string()).optional(), path: z.string().optional() }),
    groupsOf: (spec) => spec.groups ?? [],
    ...(validate ? { validate } : {}),
    connect: () => Promise.reject(new Error('unused')),
  };
}

function itemKind(hooks: Partial<Pick<ResourceProvider<Spec>, 'validate' | 'implicitDependencies'>> = {}): ResourceProvider<Spec> {
  return {
    role: 'resource',
    kind: 'Item',
    description: 'fake',
    schema: z.strictObject({ path: z.string().optional(), parent: z.string().optional() }),
    targetKind: 'Host',
    ...hooks,
    ...unused,
  };
}

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function validate(yaml: string, providers: AnyProvider[]) {
  const dir = await mkdtemp(path.join(tmpdir(), 'capstan-validate-'));
  dirs.push(dir);
  await writeFile(path.join(dir, 'stack.yaml'), yaml);
  const stack = await loadStack(dir, new ProviderRegistry(providers));
  return { stack, messages: stack.diagnostics.map(formatDiagnostic) };
}

const hosts = 'kind: Host\nname: h1\nspec: { groups: [g] }\n---\nkind: Host\nname: h2\nspec: { groups: [g] }\n---\n';

describe('validation', () => {
  it('does not cascade from a target whose spec is invalid', async () => {
    const { messages } = await validate(
      'kind: Host\nname: bad\nspec: { groups: 1 }\n---\nkind: Item\nname: a\ntarget: bad\n---\nkind: Item\nname: b\ntarget: group:g\n',
      [hostKind(), itemKind()],
    );
    // Neither "unknown target bad" nor "group g has no members": the host's own error explains both.
    expect(messages).toEqual(['stack.yaml:3:17: Host/bad: spec.groups: Invalid input: expected array, received number']);
  });

  it('does not cascade from a dependency whose document is invalid', async () => {
    const { messages, stack } = await validate(`${hosts}kind: Item\nname: a\ntarget: h1\nspec: { nope: 1 }\n---\nkind: Item\nname: b\ntarget: h1\ndependsOn: [Item/a]\n`, [
      hostKind(),
      itemKind(),
    ]);
    expect(messages).toEqual(['stack.yaml:12:9: Item/a: spec.nope: unknown key (known keys: parent, path)']);
    expect(stack.resources.map((r) => r.address)).toEqual(['Item/b']);
  });

  it('fills in the address and position of provider diagnostics, and reports a provider that throws', async () => {
    const { messages } = await validate(`${hosts}kind: Item\nname: a\ntarget: group:g\nspec: { path: /x }\n`, [
      hostKind((r) => (r.name === 'h2' ? [error('host check')] : [])),
      itemKind({
        validate: (r) => {
          if (r.target === 'Host/h2') throw new Error('kaboom');
          return [error('item check', { source: r.positionOf(['spec', 'path']) })];
        },
      }),
    ]);
    expect(messages).toEqual([
      'stack.yaml:5:1: Host/h2: host check',
      'stack.yaml:12:15: Item/a@h1: item check',
      'stack.yaml:9:1: Item/a@h2: Item validation failed: kaboom',
    ].sort((a, b) => Number(a.split(':')[1]) - Number(b.split(':')[1])));
  });

  it('reports a cycle made through implicit dependencies once, however many hosts repeat it', async () => {
    const implicit = itemKind({
      implicitDependencies: (r, same) => same.filter((o) => o.name === r.spec.parent).map((o) => o.address),
    });
    const { messages } = await validate(
      `${hosts}kind: Item\nname: a\ntarget: group:g\nspec: { parent: b }\n---\nkind: Item\nname: b\ntarget: group:g\nspec: { parent: a }\n`,
      [hostKind(), implicit],
    );
    expect(messages).toEqual([
      'stack.yaml:9:1: Item/a@h1: dependency cycle: Item/a@h1 -> Item/b@h1 -> Item/a@h1 (the same cycle repeats on 1 other instance)',
    ]);
  });

  it('starts a cycle at the member declared first', async () => {
    const { messages } = await validate(
      `${hosts}kind: Item\nname: z\ntarget: h1\ndependsOn: [Item/a]\n---\nkind: Item\nname: a\ntarget: h1\ndependsOn: [Item/z]\n`,
      [hostKind(), itemKind()],
    );
    expect(messages).toEqual(['stack.yaml:9:1: Item/z: dependency cycle: Item/z -> Item/a -> Item/z']);
  });

  it('reports a provider whose implicitDependencies throws', async () => {
    const { messages } = await validate(`${hosts}kind: Item\nname: a\ntarget: h1\n`, [
      hostKind(),
      itemKind({
        implicitDependencies: () => {
          throw new Error('bad hook');
        },
      }),
    ]);
    expect(messages).toEqual(['could not build the dependency graph: bad hook']);
  });

  it('reports a duplicate even when the first declaration is broken YAML', async () => {
    const { messages } = await validate(`${hosts}kind: Item\nname: a\ntarget: h1\nspec: { path: [ }\n---\nkind: Item\nname: a\ntarget: h1\n`, [
      hostKind(),
      itemKind(),
    ]);
    expect(messages.filter((m) => m.includes('duplicate'))).toEqual([
      'stack.yaml:15:7: Item/a: duplicate Item/a: already declared at stack.yaml:9:1 (names are unique per kind in a stack)',
    ]);
  });

  it('reports targets and dependsOn on a target kind', async () => {
    const { messages } = await validate('kind: Host\nname: h\ntarget: x\ndependsOn: [Host/y]\n', [hostKind(), itemKind()]);
    expect(messages).toEqual([
      'stack.yaml:3:9: Host/h: Host is a target kind: it cannot have a target (remove target:)',
      'stack.yaml:4:12: Host/h: Host is a target kind: it cannot have dependsOn (targets are not nodes of the dependency graph)',
    ]);
  });

  it('suggests a group name', async () => {
    const { messages } = await validate(`${hosts}kind: Item\nname: a\ntarget: group:gg\n`, [hostKind(), itemKind()]);
    expect(messages).toEqual(['stack.yaml:11:9: Item/a: group "gg" has no members (did you mean "g"?) (no Host belongs to group gg)']);
  });
});
