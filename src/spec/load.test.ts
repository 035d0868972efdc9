import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { error, formatDiagnostic, hasErrors } from '../diag/diagnostic.js';
import { ProviderError, type ResourceProvider, type TargetProvider } from '../providers/provider.js';
import { hostProviders } from '../providers/host/index.js';
import { ProviderRegistry } from '../providers/registry.js';
import { buildResourceGraph } from '../graph/resource-graph.js';
import { canonicalJson, loadStack, type LoadedStack } from './load.js';
import type { Resource } from './resource.js';

const testdata = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../testdata');

// A fake registry: two target kinds, three resource kinds with strict schemas,
// a resolve hook reading files, a validate hook and an implicitDependencies hook.
const hostSchema = z.strictObject({ groups: z.array(z.string()).default([]), root: z.string().optional() });
const databaseSchema = z.strictObject({ url: z.string() });
const pathSchema = z.string().startsWith('/', 'must be an absolute path');
const directorySchema = z.strictObject({ path: pathSchema, mode: z.string().regex(/^0[0-7]{3}$/).optional() });
const fileSchema = z.strictObject({
  path: pathSchema,
  content: z.string().optional(),
  source: z.string().optional(),
  mode: z.string().regex(/^0[0-7]{3}$/, 'a quoted octal mode like "0644"').optional(),
});
const tableSchema = z.strictObject({ columns: z.array(z.string()).min(1) });
type FileSpec = z.infer<typeof fileSchema>;
type DirectorySpec = z.infer<typeof directorySchema>;

const unused = {
  read: () => Promise.reject(new Error('not in this test')),
  diff: () => ({ action: 'noop' as const, fields: [] }),
  apply: () => Promise.reject(new Error('not in this test')),
};

const hostKind: TargetProvider<z.infer<typeof hostSchema>> = {
  role: 'target',
  kind: 'Host',
  description: 'a fake host',
  schema: hostSchema,
  groupsOf: (spec) => spec.groups,
  validate: (r) => (r.spec.root !== undefined && !r.spec.root.startsWith('/') ? [error('root must be absolute', { source: r.positionOf(['spec', 'root']) })] : []),
  connect: () => Promise.reject(new Error('not in this test')),
};
const databaseKind: TargetProvider<z.infer<typeof databaseSchema>> = {
  role: 'target',
  kind: 'Database',
  description: 'a fake database server',
  schema: databaseSchema,
  groupsOf: () => [],
  connect: () => Promise.reject(new Error('not in this test')),
};
const directoryKind: ResourceProvider<DirectorySpec> = {
  role: 'resource',
  kind: 'Directory',
  description: 'a fake directory',
  schema: directorySchema,
  targetKind: 'Host',
  ...unused,
};
const fileKind: ResourceProvider<FileSpec> = {
  role: 'resource',
  kind: 'File',
  description: 'a fake file',
  schema: fileSchema,
  targetKind: 'Host',
  async resolve(spec, from, ctx) {
    if (spec.source === undefined) return spec;
    const { source, ...rest } = spec;
    return { ...rest, content: (await ctx.readFile(source, from.file)).toString('utf8') };
  },
  validate(r, sameTarget) {
    // sameTarget includes r itself.
    const clash = sameTarget.filter((o) => o.kind === 'File' && o.address !== r.address && (o.spec as FileSpec).path === r.spec.path);
    return clash.map((o) => error(`path ${r.spec.path} is also managed by ${o.address}`, { source: r.positionOf(['spec', 'path']) }));
  },
  implicitDependencies(r, sameTarget) {
    return sameTarget.filter((o) => o.kind === 'Directory' && r.spec.path.startsWith(`${(o.spec as DirectorySpec).path}/`)).map((o) => o.address);
  },
  ...unused,
};
const tableKind: ResourceProvider<z.infer<typeof tableSchema>> = {
  role: 'resource',
  kind: 'Table',
  description: 'a fake table',
  schema: tableSchema,
  targetKind: 'Database',
  ...unused,
};
const registry = new ProviderRegistry([hostKind, databaseKind, directoryKind, fileKind, tableKind]);

const load = (fixture: string): Promise<LoadedStack> => loadStack(path.join(testdata, fixture), registry);
const messages = (stack: LoadedStack): string[] => stack.diagnostics.map(formatDiagnostic);
const byAddress = (resources: readonly Resource[]) => new Map(resources.map((r) => [r.address, r]));

describe('loadStack on testdata', () => {
  it('loads a valid stack: files, targets, expansion, resolve, dependencies', async () => {
    const stack = await load('valid');
    expect(messages(stack)).toEqual([]);
    expect(stack.repoDir).toBe(path.join(testdata, 'valid'));
    expect(stack.files).toEqual(['app/dirs.yaml', 'app/files.yml', 'db/tables.yaml', 'hosts.yaml']);
    expect(stack.targets.map((t) => t.address)).toEqual(['Host/web-1', 'Host/web-2', 'Host/db-1', 'Database/main']);
    expect(stack.resources.map((r) => r.address)).toEqual([
      'Directory/app@web-1',
      'Directory/app@web-2',
      'File/config@web-1',
      'File/config@web-2',
      'File/motd',
      'Table/users',
    ]);
    const r = byAddress(stack.resources);
    expect(r.get('Directory/app@web-2')!.target).toBe('Host/web-2');
    expect(r.get('File/motd')!.target).toBe('Host/web-1');
    expect(r.get('Table/users')!.target).toBe('Database/main');
    // Dependencies resolve to the instance on the same host.
    expect(r.get('File/motd')!.dependsOn).toEqual(['Directory/app@web-1', 'File/config@web-1']);
    // resolve read the source file relative to the document's directory.
    expect(r.get('File/config@web-1')!.spec).toEqual({ path: '/srv/app/config', content: 'listen = 8080\n' });
    // Schema defaults are applied.
    expect(stack.targets[2]!.spec).toEqual({ groups: [] });
    // Positions are 1-based and relative to the repository.
    expect(r.get('File/motd')!.source).toEqual({ file: 'app/files.yml', line: 8, col: 1 });
    expect(r.get('File/motd')!.positionOf(['spec', 'content'])).toEqual({ file: 'app/files.yml', line: 14, col: 12 });
    expect(r.get('File/motd')!.positionOf(['spec', 'nothing', 'here'])).toEqual({ file: 'app/files.yml', line: 13, col: 3 });
    expect(stack.specHash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('gives the same hash for the same stack, and a different one when a spec changes', async () => {
    const a = await load('valid');
    const b = await load('valid');
    expect(b.specHash).toBe(a.specHash);
    const dir = await mkdtemp(path.join(tmpdir(), 'capstan-hash-'));
    try {
      await writeFile(path.join(dir, 'a.yaml'), 'kind: Host\nname: h\nspec: {groups: [x]}\n');
      const one = await loadStack(dir, registry);
      await writeFile(path.join(dir, 'a.yaml'), '# comments and key order do not matter\nspec: {groups: [x]}\nname: h\nkind: Host\n');
      const same = await loadStack(dir, registry);
      await writeFile(path.join(dir, 'a.yaml'), 'kind: Host\nname: h\nspec: {groups: [y]}\n');
      const other = await loadStack(dir, registry);
      expect(same.specHash).toBe(one.specHash);
      expect(other.specHash).not.toBe(one.specHash);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reports a duplicate at the second declaration, naming the first', async () => {
    const stack = await load('duplicate-names');
    expect(messages(stack)).toEqual(['b.yaml:2:7: File/motd: duplicate File/motd: already declared at a.yaml:6:7 (names are unique per kind in a stack)']);
    // The same name in another kind is fine; the first declaration wins.
    expect(stack.resources.map((r) => r.address)).toEqual(['File/motd', 'Directory/motd']);
    expect((stack.resources[0]!.spec as FileSpec).content).toBe('one');
  });

  it('reports unknown targets, empty groups and targets of the wrong kind', async () => {
    const stack = await load('unknown-target');
    expect(messages(stack)).toEqual([
      'stack.yaml:13:9: File/typo: unknown target "web-3" (did you mean "web-1"?) (no Host named web-3)',
      'stack.yaml:18:9: File/empty-group: group "db" has no members (no Host belongs to group db)',
      'stack.yaml:23:9: File/on-database: target "main" is a Database, but File lives on a Host',
      'stack.yaml:28:9: Table/on-host: target "web-1" is a Host, but Table lives on a Database',
      'stack.yaml:33:9: Table/group-of-hosts: group "web" has no Database members: Table lives on a Database (its members are Host/web-1)',
    ]);
    expect(stack.resources).toEqual([]);
  });

  it('reports each cycle once, at its first document, and self-dependencies', async () => {
    const stack = await load('cycle');
    expect(messages(stack)).toEqual([
      'stack.yaml:9:1: File/a: dependency cycle: File/a -> File/b -> File/a',
      'stack.yaml:21:1: Directory/d@web-1: dependency cycle: Directory/d@web-1 -> Directory/e@web-1 -> Directory/d@web-1 (the same cycle repeats on 1 other instance)',
      'stack.yaml:36:13: File/self: File/self depends on itself',
    ]);
  });

  it('reports YAML syntax errors with positions and keeps going', async () => {
    const stack = await load('bad-yaml');
    const m = messages(stack);
    expect(m.some((l) => l.startsWith('broken.yaml:') && l.includes('YAML syntax error'))).toBe(true);
    expect(m).toContain('dup-key.yaml:3:1: YAML syntax error: Map keys must be unique (a key may appear only once in a map: remove or rename one of them)');
    // The valid file still loads; the reference to the broken document does not cascade into "no such resource".
    expect(m.filter((l) => l.startsWith('good.yaml'))).toEqual([]);
    expect(stack.targets.map((t) => t.address)).toEqual(['Host/web-1']);
    expect(stack.resources.map((r) => r.address)).toEqual(['File/uses-broken']);
    expect(hasErrors(stack.diagnostics)).toBe(true);
  });

  it('refuses a billion-laughs document quickly', async () => {
    const started = performance.now();
    const stack = await load('alias-bomb');
    expect(performance.now() - started).toBeLessThan(2000);
    expect(messages(stack)).toEqual([
      'bomb.yaml:1:1: too many alias expansions (more than 100): refusing what looks like an alias bomb',
    ]);
  });

  it('refuses documents that are not maps and ignores empty ones', async () => {
    const stack = await load('not-a-map');
    expect(messages(stack)).toEqual([
      'docs.yaml:2:1: a document must be a map with kind, name and spec; found a list',
      'docs.yaml:5:1: a document must be a map with kind, name and spec; found the scalar "just a string"',
      'docs.yaml:12:1: a document must be a map with kind, name and spec; found the scalar "42"',
    ]);
    expect(stack.targets.map((t) => t.address)).toEqual(['Host/web-1']);
  });

  it('collects every problem in one pass', async () => {
    const stack = await load('many-errors');
    expect(messages(stack)).toEqual([
      'stack.yaml:3:9: Host/web-1: Host is a target kind: it cannot have a target (remove target:)',
      'stack.yaml:6:7: Fiel/typo-kind: unknown kind "Fiel" (did you mean "File"?) (known kinds: Database, Directory, File, Host, HostGroup, Policy, PolicyTest, Table)',
      'stack.yaml:12:7: name "Bad_Name" is not valid (lowercase letters, digits, ".", "_" and "-", starting and ending with a letter or digit)',
      'stack.yaml:19:1: File/extra-keys: unknown key "depends_on" (did you mean "dependsOn"?) (a document has only kind, name, target, dependsOn, notify, spec; the kind\'s own fields go under spec)',
      'stack.yaml:22:3: File/extra-keys: spec.contnet: unknown key (did you mean "content"?) (known keys: content, mode, path, source)',
      'stack.yaml:23:9: File/extra-keys: spec.mode: Invalid input: expected string, received number',
      'stack.yaml:25:1: File/missing-target: File needs a target: the Host it lives on (add target: NAME, or target: group:GROUP for every Host of a group)',
      'stack.yaml:32:13: File/bad-deps: dependsOn "File/nope": no such resource',
      'stack.yaml:32:24: File/bad-deps: dependsOn "Directory/ap": no such resource (did you mean "Directory/app"?)',
      'stack.yaml:32:38: File/bad-deps: dependsOn "not an address" is not an address (write Kind/name, e.g. Directory/app)',
      'stack.yaml:32:56: File/bad-deps: dependsOn "File/x@web-1" names an instance (write File/x: the instance on the same target is chosen automatically)',
      'stack.yaml:38:15: Directory/app: spec.path: must be an absolute path',
      'stack.yaml:43:13: File/dep-on-host: dependsOn "Host/web-1" names a target (depend on resources; the target a resource lives on is set by target:)',
      'stack.yaml:49:15: File/conflict-1: path /same is also managed by File/conflict-2',
      'stack.yaml:54:15: File/conflict-2: path /same is also managed by File/conflict-1',
    ]);
    // The host has an error, so nothing on it is a resource of the stack.
    expect(stack.targets).toEqual([]);
    expect(stack.resources).toEqual([]);
  });

  it('confines resolve to the repository', async () => {
    const stack = await load('path-escape/stack');
    expect(messages(stack)).toEqual([
      'sub/files.yaml:6:11: File/up-and-out: cannot read "../../secret.txt": the path leaves the repository',
      'sub/files.yaml:13:11: File/absolute: cannot read "/etc/passwd": absolute paths are not allowed; write a path relative to this file',
      'sub/files.yaml:20:11: File/missing: cannot read "nope.txt": no such file (sub/nope.txt in the repository)',
    ]);
    expect(stack.resources.map((r) => [r.address, (r.spec as FileSpec).content])).toEqual([['File/sibling', 'ok\n']]);
  });
});

describe('loadStack with the real host providers', () => {
  const real = new ProviderRegistry(hostProviders);

  it('loads a host stack, and the graph carries the providers\' implicit dependencies', async () => {
    const stack = await loadStack(path.join(testdata, 'host-stack'), real);
    expect(messages(stack)).toEqual([]);
    expect(stack.resources.map((r) => r.address)).toEqual([
      'Directory/app@web-1',
      'Directory/app@web-2',
      'File/config@web-1',
      'File/config@web-2',
      'Symlink/current',
    ]);
    const graph = buildResourceGraph(stack.resources, real);
    expect(graph.dependenciesOf('File/config@web-2')).toContain('Directory/app@web-2');
    expect(graph.dependenciesOf('Symlink/current')).toContain('File/config@web-1');
    const order = graph.topologicalOrder();
    expect(order.indexOf('Directory/app@web-1')).toBeLessThan(order.indexOf('File/config@web-1'));
  });

  it('rejects unknown keys in every host kind, with a hint', async () => {
    const stack = await loadStack(path.join(testdata, 'host-unknown-keys'), real);
    expect(stack.diagnostics.map((d) => [d.source?.line, d.address, d.summary])).toEqual([
      [5, 'Host/web-1', 'spec.rooot: unknown key (did you mean "root"?)'],
      [12, 'Directory/d', 'spec.mod: unknown key (did you mean "mode"?)'],
      [20, 'File/f', 'spec.contnet: unknown key (did you mean "content"?)'],
      [28, 'Symlink/s', 'spec.taget: unknown key (did you mean "target"?)'],
    ]);
  });
});

describe('loadStack on hostile or unusual repositories', () => {
  let base: string;
  let repo: string;

  beforeAll(async () => {
    base = await mkdtemp(path.join(tmpdir(), 'capstan-load-'));
  });
  afterAll(async () => {
    await rm(base, { recursive: true, force: true });
  });

  async function freshRepo(files: Record<string, string | Buffer>): Promise<string> {
    repo = await mkdtemp(path.join(base, 'repo-'));
    for (const [rel, content] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(repo, rel)), { recursive: true });
      await writeFile(path.join(repo, rel), content);
    }
    return repo;
  }

  it('loads an empty directory as an empty, valid stack', async () => {
    const stack = await loadStack(await freshRepo({}), registry);
    expect(stack).toMatchObject({ files: [], targets: [], resources: [], diagnostics: [] });
    expect(stack.specHash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('rejects a directory that does not exist', async () => {
    await expect(loadStack(path.join(base, 'missing'), registry)).rejects.toThrow(/ENOENT/);
  });

  it('does not follow symlinks out of the repository, nor symlinked directories', async () => {
    const dir = await freshRepo({ 'hosts.yaml': 'kind: Host\nname: h\n', '.shared/inner.yaml': 'kind: Host\nname: inner\n' });
    await writeFile(path.join(base, 'outside.yaml'), 'kind: Host\nname: outside\n');
    await symlink(path.join(base, 'outside.yaml'), path.join(dir, 'escape.yaml'));
    // A symlink to a file in a skipped dot-folder is how a file is shared: it is read once, under the link's name.
    await symlink('.shared/inner.yaml', path.join(dir, 'alias.yaml'));
    await symlink(base, path.join(dir, 'loop'));
    await symlink('nowhere.yaml', path.join(dir, 'dangling.yaml'));
    const stack = await loadStack(dir, registry);
    expect(messages(stack)).toEqual([
      'dangling.yaml:1:1: broken symlink: ENOENT',
      'escape.yaml:1:1: symlink leads out of the repository: not read',
      'loop:1:1: warning: symlinked directory not followed',
    ]);
    expect(stack.files).toEqual(['alias.yaml', 'hosts.yaml']);
    expect(stack.targets.map((t) => [t.address, t.source.file])).toEqual([
      ['Host/inner', 'alias.yaml'],
      ['Host/h', 'hosts.yaml'],
    ]);
  });

  it('refuses files over the size limit and files that are not UTF-8', async () => {
    const dir = await freshRepo({
      'big.yaml': `kind: Host\nname: big\nspec: { groups: [${'x,'.repeat(100)}x] }\n`,
      'latin1.yaml': Buffer.from('kind: Host\nname: caf\xe9\n', 'latin1'),
      'bom.yaml': '\ufeffkind: Host\nname: bom\n',
    });
    const stack = await loadStack(dir, registry, { maxFileBytes: 150 });
    expect(messages(stack)).toEqual(['big.yaml:1:1: file is 243 bytes, over the limit of 150', 'latin1.yaml:1:1: file is not valid UTF-8']);
    expect(stack.targets.map((t) => t.address)).toEqual(['Host/bom']);
  });

  it('stops at the document limit across files, reporting it once', async () => {
    const docs = (prefix: string) => Array.from({ length: 3 }, (_, i) => `kind: Host\nname: ${prefix}${i}\n`).join('---\n');
    const dir = await freshRepo({ 'a.yaml': docs('a'), 'b.yaml': docs('b'), 'c.yaml': docs('c') });
    const stack = await loadStack(dir, registry, { maxDocuments: 4 });
    expect(messages(stack)).toEqual(['b.yaml:3:1: too many YAML documents: a stack may hold at most 4 (split the stack or remove generated documents)']);
    expect(stack.targets.map((t) => t.name)).toEqual(['a0', 'a1', 'a2', 'b0']);
  });

  it('reports a resolve that fails for another reason at the spec', async () => {
    const failing: ResourceProvider<{ x: string }> = {
      role: 'resource',
      kind: 'Failing',
      description: 'fake',
      schema: z.strictObject({ x: z.string() }),
      targetKind: 'Host',
      resolve: (spec) => Promise.reject(spec.x === 'expected' ? new ProviderError('template has an error') : new TypeError('undefined is not a function')),
      ...unused,
    };
    const dir = await freshRepo({
      'a.yaml': 'kind: Host\nname: h\n---\nkind: Failing\nname: a\ntarget: h\nspec: { x: expected }\n---\nkind: Failing\nname: b\ntarget: h\nspec: { x: other }\n',
    });
    const stack = await loadStack(dir, new ProviderRegistry([hostKind, failing]));
    expect(messages(stack)).toEqual([
      'a.yaml:7:7: Failing/a: template has an error',
      'a.yaml:12:7: Failing/b: Failing could not resolve its spec: undefined is not a function',
    ]);
    expect(stack.resources).toEqual([]);
  });

  it('sorts diagnostics by file and position', async () => {
    const dir = await freshRepo({
      'b.yaml': 'kind: Nope\nname: x\n---\nkind: Host\nname: h\nspec: { bad: 1 }\n',
      'a.yaml': 'kind: File\nname: x\n',
    });
    const files = (await loadStack(dir, registry)).diagnostics.map((d) => `${d.source!.file}:${d.source!.line}`);
    expect(files).toEqual(['a.yaml:1', 'a.yaml:1', 'b.yaml:1', 'b.yaml:6']);
  });
});

describe('canonicalJson', () => {
  it('sorts keys at every level and drops undefined members', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: true, y: null }], c: undefined } })).toBe('{"a":{"d":[1,{"y":null,"z":true}]},"b":1}');
  });

  it('keeps values JSON cannot tell apart from null distinct', () => {
    expect(canonicalJson([Number.POSITIVE_INFINITY, Number.NaN, 10n, Buffer.from('hi')])).toBe('["Infinity","NaN","10","aGk="]');
  });
});
