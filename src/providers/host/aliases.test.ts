/**
 * One object managed twice through aliases, and per-resource read failures,
 * through the real loader and planner on local hosts rooted in a temp directory.
 *
 * - Two Hosts that reach the same machine and root (two local Hosts, two ssh
 *   Hosts with the same address and port) managing the same path: refused at
 *   validate, naming both resources and their positions.
 * - A symbolic link inside the root that makes two spec paths one file: only the
 *   live machine shows it, so the plan is an error naming both.
 * - Symbolic links that escape the root: each resource refused gets its own
 *   message, and the others of the same kind on the host are planned.
 */
import { mkdir, symlink } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { formatDiagnostic, type Diagnostic } from '../../diag/diagnostic.js';
import type { LoadedStack } from '../../spec/load.js';
import { ProviderRegistry } from '../registry.js';
import { hostProviders } from './index.js';
import { openStackSandbox, type StackSandbox } from './testing/stack.js';

const registry = new ProviderRegistry(hostProviders);

let sandbox: StackSandbox;
let dir: string;
let root: string;

beforeEach(async () => {
  sandbox = await openStackSandbox(registry, 'capstan-aliases-');
  ({ dir, root } = sandbox);
});
afterEach(() => sandbox.cleanup());

const load = (files: Record<string, string>) => sandbox.load(files);
const plan = (stack: LoadedStack) => sandbox.plan(stack);

const errors = (diagnostics: readonly Diagnostic[]) => diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic);

const file = (name: string, target: string, filePath: string) => `kind: File
name: ${name}
target: ${target}
spec:
  path: ${filePath}
  content: "${name}\\n"
`;

describe('one object managed through two aliases', () => {
  it('refuses two local Hosts with the same root managing one path, naming both at their path nodes', async () => {
    const stack = await load({
      'hosts.yaml': `kind: Host\nname: a\nspec: { transport: local, root: ${root} }\n---\nkind: Host\nname: b\nspec: { transport: local, root: ${root}/ }\n`,
      'files.yaml': `${file('motd-a', 'a', '/etc/motd')}---\n${file('motd-b', 'b', '/etc/motd')}`,
    });
    const real = `${root}/etc/motd`;
    expect(errors(stack.diagnostics)).toEqual([
      `files.yaml:5:9: File/motd-a: File/motd-a and File/motd-b (files.yaml:12:9) manage the same object, path:${real}, on one machine (Host local) ` +
        '(the spec names it twice: File/motd-a on Host/a and File/motd-b on Host/b would overwrite each other on every apply; manage it once)',
      `files.yaml:12:9: File/motd-b: File/motd-b and File/motd-a (files.yaml:5:9) manage the same object, path:${real}, on one machine (Host local) ` +
        '(the spec names it twice: File/motd-b on Host/b and File/motd-a on Host/a would overwrite each other on every apply; manage it once)',
    ]);
    // Nothing is planned for a stack with errors.
    expect((await plan(stack)).changes).toEqual([]);
  });

  it('refuses the same path twice on one Host, across kinds, naming both at their path nodes', async () => {
    const stack = await load({
      'hosts.yaml': `kind: Host\nname: web\nspec: { transport: local, root: ${root} }\n`,
      'files.yaml': `${file('motd', 'web', '/etc/motd')}---\nkind: Symlink\nname: motd-link\ntarget: web\nspec:\n  path: /etc/motd\n  target: /etc/issue\n`,
    });
    expect(errors(stack.diagnostics)).toEqual([
      `files.yaml:5:9: File/motd: File/motd and Symlink/motd-link (files.yaml:12:9) manage the same object, path:${root}/etc/motd, on one machine (Host local) ` +
        '(the spec names it twice: File/motd on Host/web and Symlink/motd-link on Host/web would overwrite each other on every apply; manage it once)',
      `files.yaml:12:9: Symlink/motd-link: Symlink/motd-link and File/motd (files.yaml:5:9) manage the same object, path:${root}/etc/motd, on one machine (Host local) ` +
        '(the spec names it twice: Symlink/motd-link on Host/web and File/motd on Host/web would overwrite each other on every apply; manage it once)',
    ]);
  });

  it('sees through nested roots and across kinds: Host b rooted inside Host a', async () => {
    const stack = await load({
      'hosts.yaml': `kind: Host\nname: a\nspec: { transport: local, root: ${root} }\n---\nkind: Host\nname: b\nspec: { transport: local, root: ${root}/srv }\n`,
      'files.yaml': `kind: Directory\nname: conf\ntarget: a\nspec: { path: /srv/conf }\n---\nkind: Directory\nname: conf2\ntarget: b\nspec: { path: /conf }\n`,
    });
    expect(errors(stack.diagnostics)).toEqual([
      expect.stringMatching(/^files\.yaml:4:\d+: Directory\/conf: Directory\/conf and Directory\/conf2 \(files\.yaml:9:\d+\) manage the same object, path:.*\/root\/srv\/conf,/),
      expect.stringMatching(/^files\.yaml:9:\d+: Directory\/conf2: Directory\/conf2 and Directory\/conf \(files\.yaml:4:\d+\)/),
    ]);
  });

  it('refuses two ssh Hosts with the same address, port and root; another port or root is another place', async () => {
    const ssh = (name: string, extra: string) => `kind: Host\nname: ${name}\nspec: { transport: ssh, address: 10.0.0.7, ${extra} }\n`;
    const stack = await load({
      'hosts.yaml': [ssh('web', 'root: /srv/app'), ssh('web-alias', 'port: 22, user: deploy, root: /srv/app'), ssh('other-port', 'port: 2222, root: /srv/app'), ssh('other-root', 'root: /srv/other')].join('---\n'),
      'files.yaml': ['web', 'web-alias', 'other-port', 'other-root'].map((h) => file(`env-${h}`, h, '/etc/env')).join('---\n'),
    });
    const found = errors(stack.diagnostics);
    expect(found).toHaveLength(2);
    expect(found[0]).toMatch(
      /^files\.yaml:5:9: File\/env-web: File\/env-web and File\/env-web-alias \(files.yaml:12:9\) manage the same object, path:\/srv\/app\/etc\/env, on one machine \(Host ssh:10\.0\.0\.7:22\)/,
    );
    expect(found[1]).toMatch(/^files.yaml:12:9: File\/env-web-alias: .* File\/env-web \(files\.yaml:5:9\)/);
  });

  it('makes the plan an error when a symbolic link inside the root makes two paths one file', async () => {
    await mkdir(path.join(root, 'srv/app'), { recursive: true });
    await symlink('app', path.join(root, 'srv/current'));
    const stack = await load({
      'hosts.yaml': `kind: Host\nname: web\nspec: { transport: local, root: ${root} }\n`,
      'files.yaml': `${file('conf', 'web', '/srv/app/app.conf')}---\n${file('conf-via-link', 'web', '/srv/current/app.conf')}---\n${file('other', 'web', '/srv/app/other.conf')}`,
    });
    // The spec alone cannot show it.
    expect(errors(stack.diagnostics)).toEqual([]);
    const p = await plan(stack);
    expect(errors(p.diagnostics)).toEqual([
      `files.yaml:5:9: File/conf: File/conf and File/conf-via-link (files.yaml:12:9) manage the same object, path:${root}/srv/app/app.conf, on one machine (Host local) ` +
        '(the live machine resolves both to it: File/conf on Host/web and File/conf-via-link on Host/web would overwrite each other on every apply; manage it once)',
      `files.yaml:12:9: File/conf-via-link: File/conf-via-link and File/conf (files.yaml:5:9) manage the same object, path:${root}/srv/app/app.conf, on one machine (Host local) ` +
        '(the live machine resolves both to it: File/conf-via-link on Host/web and File/conf on Host/web would overwrite each other on every apply; manage it once)',
    ]);
  });

  it('finds the same alias across two Hosts whose roots are one directory through a link', async () => {
    await mkdir(path.join(root, 'etc'), { recursive: true });
    await symlink(root, path.join(dir, 'root-link'));
    const stack = await load({
      'hosts.yaml': `kind: Host\nname: a\nspec: { transport: local, root: ${root} }\n---\nkind: Host\nname: b\nspec: { transport: local, root: ${dir}/root-link }\n`,
      'files.yaml': `${file('motd-a', 'a', '/etc/motd')}---\n${file('motd-b', 'b', '/etc/motd')}`,
    });
    expect(errors(stack.diagnostics)).toEqual([]);
    const found = errors((await plan(stack)).diagnostics);
    expect(found).toHaveLength(2);
    expect(found[0]).toMatch(/^files\.yaml:5:9: File\/motd-a: File\/motd-a and File\/motd-b \(files.yaml:12:9\) manage the same object/);
  });
});

describe('a refused path fails its own resource only', () => {
  it('gives each resource behind an escaping link its own message, and plans the others of the kind', async () => {
    const outside = path.join(dir, 'outside');
    await mkdir(outside);
    await symlink(outside, path.join(root, 'escape-1'));
    await symlink('/nonexistent-capstan-target', path.join(root, 'dangling'));
    const stack = await load({
      'hosts.yaml': `kind: Host\nname: web\nspec: { transport: local, root: ${root} }\n`,
      'files.yaml': [file('first', 'web', '/escape-1/a.conf'), file('second', 'web', '/dangling/b.conf'), file('fine', 'web', '/etc/fine.conf')].join('---\n'),
    });
    expect(errors(stack.diagnostics)).toEqual([]);
    const p = await plan(stack);
    expect(errors(p.diagnostics)).toEqual([
      `files.yaml:1:1: File/first: reading live state failed: refusing /escape-1/a.conf on Host/web (root ${root}): ` +
        `its parent directory leads outside the root through the symbolic link /escape-1 -> ${outside} (it resolves to ${outside}/a.conf)`,
      `files.yaml:8:1: File/second: reading live state failed: refusing /dangling/b.conf on Host/web (root ${root}): ` +
        'its parent directory goes through the symbolic link /dangling -> /nonexistent-capstan-target, whose target does not exist; Capstan does not create directories through symbolic links',
    ]);
    expect(p.changes.map((c) => [c.address, c.action])).toEqual([['File/fine', 'create']]);
  });
});
