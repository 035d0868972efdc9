/**
 * What the host and system kinds reference and provide, through the real loader
 * and graph: a File, Directory or Symlink runs after the User and Group of the
 * same Host that its owner and group name, a Symlink after what manages its
 * target, a Package after the File that writes its .deb. And what the planner
 * makes of a path's live state: a FIFO, socket or device where a File must go
 * is a plan error.
 */
import { mkdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { formatDiagnostic } from '../../diag/diagnostic.js';
import { buildResourceGraph } from '../../graph/resource-graph.js';
import type { LoadedStack } from '../../spec/load.js';
import { LocalTransport } from '../../transport/local.js';
import { ProviderRegistry } from '../registry.js';
import { systemProviders } from '../system/index.js';
import { hostProviders } from './index.js';
import { openStackSandbox, type StackSandbox } from './testing/stack.js';

const registry = new ProviderRegistry([...hostProviders, ...systemProviders]);

let sandbox: StackSandbox;
let root: string;

beforeEach(async () => {
  sandbox = await openStackSandbox(registry, 'capstan-references-');
  root = sandbox.root;
});
afterEach(() => sandbox.cleanup());

const host = (name: string) => `kind: Host\nname: ${name}\nspec: { transport: local, root: ${root} }\n`;
const doc = (kind: string, name: string, target: string, spec: string) => `kind: ${kind}\nname: ${name}\ntarget: ${target}\nspec: ${spec}\n`;

async function load(text: string): Promise<LoadedStack> {
  const stack = await sandbox.load({ 'stack.yaml': text });
  expect(stack.diagnostics.map(formatDiagnostic)).toEqual([]);
  return stack;
}

describe('implicit order from references', () => {
  it('orders File, Directory and Symlink after the User and Group of their host that they are owned by', async () => {
    const stack = await load(
      [
        host('web'),
        host('db'),
        doc('User', 'app', 'web', '{ name: app }'),
        doc('Group', 'ops', 'web', '{ name: ops }'),
        doc('User', 'other-host', 'db', '{ name: app }'),
        doc('File', 'conf', 'web', '{ path: /srv/conf, content: "x", owner: app, group: ops }'),
        // The group of the user's own name: useradd makes it when the User sets no primary group.
        doc('Directory', 'data', 'web', '{ path: /srv/data, owner: app, group: app }'),
        doc('Symlink', 'current', 'web', '{ path: /srv/current, target: data, owner: app }'),
        // By id: no account is named.
        doc('File', 'by-id', 'web', '{ path: /srv/by-id, content: "x", owner: 1000, group: 1000 }'),
      ].join('---\n'),
    );
    const graph = buildResourceGraph(stack.resources, registry);
    expect(graph.dependenciesOf('File/conf')).toEqual(['Group/ops', 'User/app']);
    expect(graph.dependenciesOf('Directory/data')).toEqual(['User/app']);
    // The relative target `data` is /srv/data, which Directory/data manages.
    expect(graph.dependenciesOf('Symlink/current')).toEqual(['Directory/data', 'User/app']);
    expect(graph.dependenciesOf('File/by-id')).toEqual([]);
    expect(graph.dependentsOf('User/other-host')).toEqual([]);
  });

  it('orders a Symlink after what manages its absolute target, and a Package after the File that writes its .deb', async () => {
    const stack = await load(
      [
        host('web'),
        doc('File', 'deb', 'web', '{ path: /var/cache/hello.deb, contentBase64: "" }'),
        doc('Package', 'hello', 'web', '{ name: hello, deb: /var/cache/hello.deb }'),
        doc('File', 'real', 'web', '{ path: /etc/app/real.conf, content: "x" }'),
        doc('Symlink', 'link', 'web', '{ path: /etc/app.conf, target: /etc/app/real.conf }'),
        doc('Symlink', 'dangling', 'web', '{ path: /etc/nothing, target: /etc/not-managed }'),
      ].join('---\n'),
    );
    const graph = buildResourceGraph(stack.resources, registry);
    expect(graph.dependenciesOf('Package/hello')).toEqual(['File/deb']);
    expect(graph.dependenciesOf('Symlink/link')).toEqual(['File/real']);
    expect(graph.dependenciesOf('Symlink/dangling')).toEqual([]);
  });
});

describe('plan-time checks of the live host', () => {
  const plan = (stack: LoadedStack) => sandbox.plan(stack);

  it('is an error for a FIFO or a socket where a File or Directory must go, naming the type', async () => {
    await mkdir(path.join(root, 'srv'));
    await new LocalTransport().exec(['mkfifo', path.join(root, 'srv/fifo')], { timeoutMs: 60_000 });
    const server: Server = createServer();
    await new Promise<void>((resolve) => server.listen(path.join(root, 'srv/sock'), resolve));
    try {
      const stack = await load(
        [
          host('web'),
          doc('File', 'fifo', 'web', '{ path: /srv/fifo, content: "x" }'),
          doc('Directory', 'sock', 'web', '{ path: /srv/sock }'),
        ].join('---\n'),
      );
      const p = await plan(stack);
      const errors = p.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic);
      expect(errors).toEqual([
        expect.stringMatching(/stack\.yaml:\d+:\d+: File\/fifo: \/srv\/fifo is a FIFO: Capstan does not replace a FIFO with a file/),
        expect.stringMatching(/stack\.yaml:\d+:\d+: Directory\/sock: \/srv\/sock is a socket: Capstan does not replace a socket with a directory/),
      ]);
      expect(p.changes.find((c) => c.address === 'File/fifo')?.reason).toBe('/srv/fifo is a FIFO, not a file');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  // mknod may be refused in a container's temp directory; /dev/null is a character device on every Linux machine.
  it('names a character device for a Symlink on a host rooted at /', async () => {
    const stack = await load(
      [`kind: Host\nname: machine\nspec: { transport: local }\n`, doc('Symlink', 'devnull', 'machine', '{ path: /dev/null, target: /nowhere }')].join(
        '---\n',
      ),
    );
    const p = await plan(stack);
    expect(p.diagnostics.map(formatDiagnostic)).toEqual([
      expect.stringMatching(/^stack\.yaml:\d+:\d+: Symlink\/devnull: \/dev\/null is a character device: Capstan does not replace a character device with a symbolic link/),
    ]);
  });

  it('is an error for an owner or group the host lacks, and a warning when a User or Group of the stack creates it', async () => {
    const stack = await load(
      [
        host('web'),
        doc('Group', 'made', 'web', '{ name: capstan-made-grp }'),
        doc('File', 'conf', 'web', '{ path: /srv/conf, content: "x", owner: capstan-no-user, group: capstan-made-grp }'),
      ].join('---\n'),
    );
    const p = await plan(stack);
    const owner = stack.resources.find((r) => r.address === 'File/conf')!.positionOf(['spec', 'owner']);
    const group = stack.resources.find((r) => r.address === 'File/conf')!.positionOf(['spec', 'group']);
    expect(p.diagnostics.map((d) => ({ severity: d.severity, summary: d.summary, source: d.source, address: d.address }))).toEqual([
      { severity: 'error', summary: 'user "capstan-no-user" does not exist on Host/web', source: owner, address: 'File/conf' },
      {
        severity: 'warning',
        summary: 'group "capstan-made-grp" does not exist on Host/web yet: Group/made creates it first',
        source: group,
        address: 'File/conf',
      },
    ]);
    expect(owner.col).toBeGreaterThan(1);
  });
});
