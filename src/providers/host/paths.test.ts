import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Resource } from '../../spec/resource.js';
import { ProviderError, type ResourceProvider } from '../provider.js';
import { directoryProvider } from './directory.js';
import { fileProvider } from './file.js';
import type { HostHandle } from './host.js';
import { realPathOf, rootPathSchema, specPathOf, specPathProblem, specPathSchema } from './paths.js';
import { symlinkProvider } from './symlink.js';
import { ctx, openSandbox, testResource, type Sandbox } from './testing/sandbox.js';

describe('spec paths', () => {
  it.each([
    ['relative', 'etc/motd', /must be absolute/],
    ['empty', '', /must be absolute/],
    ['the root itself', '/', /below "\/"/],
    ['a trailing slash', '/etc/', /must not end with "\/"/],
    ['an empty segment', '/etc//motd', /empty segments/],
    ['a ".." segment', '/etc/../motd', /"\.\." segments/],
    ['a leading ".."', '/../etc', /"\.\." segments/],
    ['a "." segment', '/etc/./motd', /"\." segments/],
    ['a NUL', '/etc/mo\0td', /NUL/],
  ])('refuses %s', (_what, path, message) => {
    expect(specPathProblem(path)).toMatch(message);
    const result = specPathSchema.safeParse(path);
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.message).toMatch(message);
  });

  it('accepts normal absolute paths, dots inside names included', () => {
    for (const p of ['/etc/motd', '/srv/app/.env', '/a/..b/c..', '/x/...']) expect(specPathProblem(p)).toBeNull();
  });

  it('never accepts a path with a ".." or "." segment, and accepts any path of plain segments', () => {
    const plain = fc.stringMatching(/^[A-Za-z0-9_.-]{1,12}$/).filter((s) => s !== '.' && s !== '..');
    const segment = fc.oneof(plain, fc.constantFrom('.', '..', ''));
    fc.assert(
      fc.property(fc.array(segment, { minLength: 1, maxLength: 8 }), (segments) => {
        const path = `/${segments.join('/')}`;
        const bad = segments.some((s) => s === '.' || s === '..' || s === '');
        expect(specPathProblem(path) !== null).toBe(bad);
        if (!bad) expect(realPathOf('/srv/root', path).startsWith('/srv/root/')).toBe(true);
      }),
    );
  });

  it('maps spec paths under the root and back', () => {
    expect(realPathOf('/', '/etc/motd')).toBe('/etc/motd');
    expect(realPathOf('/srv/sandbox', '/etc/motd')).toBe('/srv/sandbox/etc/motd');
    expect(specPathOf('/srv/sandbox', '/srv/sandbox/etc/motd')).toBe('/etc/motd');
    expect(specPathOf('/srv/sandbox', '/etc/passwd')).toBe('/etc/passwd');
    expect(() => realPathOf('/srv/sandbox', '/../etc/passwd')).toThrow(ProviderError);
  });

  it('normalises a root and refuses a bad one', () => {
    expect(rootPathSchema.parse('/srv/sandbox/')).toBe('/srv/sandbox');
    expect(rootPathSchema.parse('/')).toBe('/');
    expect(rootPathSchema.safeParse('srv').error?.issues[0]?.message).toMatch(/root must be absolute/);
    expect(rootPathSchema.safeParse('/srv/../etc').error?.issues[0]?.message).toMatch(/root must not contain "\.\."/);
  });
});

/** Every entry below `dir` as relative paths, never descending into symbolic links. */
async function tree(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const rel = prefix + entry.name;
    out.push(rel);
    if (entry.isDirectory()) out.push(...(await tree(join(dir, entry.name), `${rel}/`)));
  }
  return out.sort();
}

type AnyHostProvider = ResourceProvider<{ path: string }, unknown, HostHandle>;

const cases: { kind: string; provider: AnyHostProvider; spec: (path: string) => { path: string } }[] = [
  { kind: 'File', provider: fileProvider as unknown as AnyHostProvider, spec: (path) => ({ path, content: 'pwned\n' }) },
  { kind: 'Directory', provider: directoryProvider as unknown as AnyHostProvider, spec: (path) => ({ path, mode: '0777' }) },
  { kind: 'Symlink', provider: symlinkProvider as unknown as AnyHostProvider, spec: (path) => ({ path, target: '/tmp' }) },
];

describe('root confinement', () => {
  let sandbox: Sandbox;
  let sibling: string;
  const marker = `capstan-confinement-test-${process.pid}`;

  beforeEach(async () => {
    sandbox = await openSandbox({ createRoot: true });
    sibling = join(sandbox.dir, 'sibling');
    await fs.mkdir(sibling);
  });
  afterEach(async () => {
    await fs.rm(join('/etc', marker), { recursive: true, force: true });
    await sandbox.cleanup();
  });

  for (const { kind, provider, spec } of cases) {
    describe(kind, () => {
      it.each([
        ['/etc', () => '/etc'],
        ['a sibling temp dir', () => sibling],
      ])('refuses a parent that is a symlink to %s, at read and at apply, writing nothing outside', async (_what, target) => {
        await fs.mkdir(sandbox.real('/srv'));
        await fs.symlink(target(), sandbox.real('/srv/link'));
        const desired = provider.schema.parse(spec(`/srv/link/${marker}`));
        const siblingBefore = await tree(sibling);

        const read = provider.read(sandbox.handle, [desired], ctx);
        await expect(read).rejects.toThrow(ProviderError);
        await expect(read).rejects.toThrow(
          new RegExp(`refusing /srv/link/${marker} on Host/sandbox .*through the symbolic link /srv/link -> ${target()}`),
        );
        const apply = provider.apply(
          sandbox.handle,
          { action: 'create', address: `${kind}/escape`, desired, prior: null, live: null },
          ctx,
        );
        await expect(apply).rejects.toThrow(/leads outside the root/);

        await expect(fs.lstat(join('/etc', marker))).rejects.toMatchObject({ code: 'ENOENT' });
        expect(await tree(sibling)).toEqual(siblingBefore);
      });

      it('refuses a deeper missing path below an escaping link, creating no parents outside', async () => {
        await fs.symlink(sibling, sandbox.real('/out'));
        const desired = provider.schema.parse(spec('/out/a/b/c'));
        await expect(
          provider.apply(sandbox.handle, { action: 'create', address: `${kind}/escape`, desired, prior: null, live: null }, ctx),
        ).rejects.toThrow(/refusing \/out\/a\/b\/c .* \/out -> /);
        expect(await tree(sibling)).toEqual([]);
      });

      it('refuses to delete through an escaping link', async () => {
        await fs.writeFile(join(sibling, 'victim'), 'keep');
        await fs.mkdir(join(sibling, 'victim-dir'));
        await fs.symlink('victim', join(sibling, 'victim-link'));
        await fs.symlink(sibling, sandbox.real('/out'));
        for (const name of ['victim', 'victim-dir', 'victim-link']) {
          const prior = provider.schema.parse(spec(`/out/${name}`));
          await expect(
            provider.apply(sandbox.handle, { action: 'delete', address: `${kind}/escape`, desired: null, prior, live: null }, ctx),
          ).rejects.toThrow(ProviderError);
        }
        expect(await tree(sibling)).toEqual(['victim', 'victim-dir', 'victim-link']);
      });

      it('refuses a parent that is a link to a missing target', async () => {
        await fs.symlink(join(sibling, 'missing'), sandbox.real('/dangling'));
        const desired = provider.schema.parse(spec('/dangling/x'));
        await expect(provider.read(sandbox.handle, [desired], ctx)).rejects.toThrow(/whose target does not exist/);
        await expect(
          provider.apply(sandbox.handle, { action: 'create', address: `${kind}/d`, desired, prior: null, live: null }, ctx),
        ).rejects.toThrow(/whose target does not exist/);
        expect(await tree(sibling)).toEqual([]);
      });

      it('follows a link that stays inside the root', async () => {
        await fs.mkdir(sandbox.real('/releases/v1'), { recursive: true });
        await fs.symlink('releases/v1', sandbox.real('/current'));
        const desired = provider.schema.parse(spec('/current/thing'));
        await provider.apply(sandbox.handle, { action: 'create', address: `${kind}/ok`, desired, prior: null, live: null }, ctx);
        expect(await tree(sandbox.real('/releases/v1'))).toEqual(['thing']);
      });

      it('refuses when the prior path of a replace escapes, before writing the new one', async () => {
        await fs.symlink(sibling, sandbox.real('/out'));
        const prior = provider.schema.parse(spec('/out/old'));
        const desired = provider.schema.parse(spec('/new'));
        await expect(
          provider.apply(sandbox.handle, { action: 'replace', address: `${kind}/m`, desired, prior, live: null }, ctx),
        ).rejects.toThrow(/refusing \/out\/old/);
        await expect(fs.lstat(sandbox.real('/new'))).rejects.toMatchObject({ code: 'ENOENT' });
      });
    });
  }

  it('reads a root that does not exist as empty, and the first write creates it', async () => {
    const fresh = await openSandbox();
    try {
      const desired = fileProvider.schema.parse({ path: '/a/b/motd', content: 'hi\n' });
      expect(await fileProvider.read(fresh.handle, [desired], ctx)).toEqual([null]);
      await expect(fs.lstat(fresh.root)).rejects.toMatchObject({ code: 'ENOENT' });
      await fileProvider.apply(fresh.handle, { action: 'create', address: 'File/m', desired, prior: null, live: null }, ctx);
      expect(await fs.readFile(join(fresh.root, 'a/b/motd'), 'utf8')).toBe('hi\n');
      expect(await tree(fresh.dir)).toEqual(['root', 'root/a', 'root/a/b', 'root/a/b/motd']);
    } finally {
      await fresh.cleanup();
    }
  });
});

describe('path conflicts and implicit dependencies', () => {
  const on = (kind: string, name: string, spec: object): Resource =>
    testResource(kind, name, spec, { target: 'Host/web-1', file: 'stack.yaml' });

  it('claims the real path, root included, for the engine to find the same path managed twice', () => {
    const host = testResource('Host', 'web-1', { transport: 'local', root: '/srv/sandbox' });
    expect(fileProvider.claims!({ path: '/etc/motd', content: 'a' }, host)).toEqual([{ key: 'path:/srv/sandbox/etc/motd', field: ['path'] }]);
    expect(symlinkProvider.claims!({ path: '/etc/motd', target: 'x' }, { ...host, spec: { transport: 'local', root: '/' } })).toEqual([
      { key: 'path:/etc/motd', field: ['path'] },
    ]);
    // The same path twice is the engine's to report (src/spec/claims.ts), not each provider's again.
    const a = on('File', 'a', { path: '/etc/motd', content: 'a' });
    const b = on('Symlink', 'b', { path: '/etc/motd', target: 'x' });
    expect(fileProvider.validate!(a as Resource<never>, [a, b])).toEqual([]);
  });

  it('reports a path below a managed file or symbolic link', () => {
    const all = [
      on('File', 'conf', { path: '/etc/app', content: '' }),
      on('Symlink', 'cur', { path: '/srv/current', target: 'v1' }),
      on('File', 'below-file', { path: '/etc/app/x', content: '' }),
      on('Directory', 'below-link', { path: '/srv/current/logs' }),
    ];
    expect(fileProvider.validate!(all[2] as Resource<never>, all).map((d) => d.summary)).toEqual([
      'path /etc/app/x lies below /etc/app, which File/conf manages as a file',
    ]);
    expect(directoryProvider.validate!(all[3] as Resource<never>, all).map((d) => d.summary)).toEqual([
      'path /srv/current/logs lies below /srv/current, which Symlink/cur manages as a symbolic link',
    ]);
  });

  it('accepts distinct paths and ignores other kinds', () => {
    const all = [
      on('File', 'a', { path: '/etc/a', content: '' }),
      on('File', 'b', { path: '/etc/b', content: '' }),
      on('Package', 'nginx', { path: '/etc/a' }),
    ];
    expect(fileProvider.validate!(all[0] as Resource<never>, all)).toEqual([]);
  });

  it('makes a resource depend on the nearest managed Directory above it', () => {
    const all = [
      on('Directory', 'srv', { path: '/srv' }),
      on('Directory', 'app', { path: '/srv/app' }),
      on('File', 'conf', { path: '/srv/app/conf/app.ini', content: '' }),
      on('Symlink', 'log', { path: '/srv/log', target: '/var/log' }),
      on('Directory', 'etc', { path: '/etc' }),
      on('File', 'sibling', { path: '/srv/application', content: '' }),
    ];
    const deps = (r: Resource) => fileProvider.implicitDependencies!(r as Resource<never>, all);
    expect(deps(all[2]!)).toEqual(['Directory/app']);
    expect(deps(all[1]!)).toEqual(['Directory/srv']);
    expect(deps(all[3]!)).toEqual(['Directory/srv']);
    expect(deps(all[4]!)).toEqual([]);
    expect(deps(all[5]!)).toEqual(['Directory/srv']);
  });

  it('indexes a large target once: 10,000 resources validate quickly', () => {
    const all = Array.from({ length: 10_000 }, (_, i) =>
      on('File', `f${i}`, { path: `/srv/d${i % 100}/f${i}`, content: '' }),
    );
    all.push(...Array.from({ length: 100 }, (_, i) => on('Directory', `d${i}`, { path: `/srv/d${i}` })));
    const started = performance.now();
    let diagnostics = 0;
    let edges = 0;
    for (const r of all) {
      diagnostics += fileProvider.validate!(r as Resource<never>, all).length;
      edges += fileProvider.implicitDependencies!(r as Resource<never>, all).length;
    }
    // Quadratic work (re-indexing per resource) takes tens of seconds here.
    expect(performance.now() - started).toBeLessThan(3000);
    expect(diagnostics).toBe(0);
    expect(edges).toBe(10_000);
  });
});
