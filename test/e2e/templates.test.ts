/**
 * Inventory variables and File templates end to end, through the built CLI: two
 * local hosts in a group, a HostGroup with vars, a Liquid template rendered per
 * host; a group var change updates every member; an undefined variable is refused
 * by validate with its position and applies nothing.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, capstan, hostDoc, workspace, type Workspace } from './harness.js';

let ws: Workspace;
beforeAll(assertBuilt);
afterEach(async () => ws?.cleanup());

const TEMPLATE = `# managed by Capstan for {{ host.name }}
server {
  listen {{ listen_port }};
  server_name {{ host.name }}.example.com;
{% for u in upstreams %}  upstream {{ u }};
{% endfor %}}
`;

async function writeStack(groupVars: string, template = TEMPLATE): Promise<void> {
  await ws.write(
    'inventory/hosts.yaml',
    [hostDoc('web-1', path.join(ws.root, 'web-1'), ['web']), hostDoc('web-2', path.join(ws.root, 'web-2'), ['web'])].join('---\n'),
  );
  await ws.write('inventory/groups.yaml', `kind: HostGroup\nname: web\nspec:\n  vars: ${groupVars}\n`);
  await ws.write(
    'app/nginx.yaml',
    `kind: File
name: nginx
target: group:web
spec:
  path: /etc/nginx/nginx.conf
  template: ../templates/nginx.conf.liquid
  mode: "0644"
`,
  );
  await ws.write('templates/nginx.conf.liquid', template);
}

const conf = (host: string) => readFile(path.join(ws.root, host, 'etc/nginx/nginx.conf'), 'utf8');

interface JsonPlan {
  changes: { address: string; action: string }[];
}

describe('templates and inventory variables', () => {
  it('apply renders one file per host; a changed group var updates every member', async () => {
    ws = await workspace();
    await writeStack('{ listen_port: 8080, upstreams: [app-1, app-2] }');
    expect((await capstan(['validate', ws.repo])).exitCode).toBe(0);

    const first = await capstan(['apply', ws.repo, '--state', ws.state, '--yes']);
    expect(first.stderr).toBe('');
    expect(first.exitCode).toBe(0);
    expect(await conf('web-1')).toBe(
      '# managed by Capstan for web-1\nserver {\n  listen 8080;\n  server_name web-1.example.com;\n  upstream app-1;\n  upstream app-2;\n}\n',
    );
    expect(await conf('web-2')).toContain('server_name web-2.example.com;');

    const again = await capstan(['plan', ws.repo, '--state', ws.state, '--detailed-exitcode']);
    expect(again.stdout).toContain('No changes');
    expect(again.exitCode).toBe(0);

    await writeStack('{ listen_port: 9090, upstreams: [app-1, app-2] }');
    const plan = await capstan(['plan', ws.repo, '--state', ws.state, '--json']);
    expect(plan.exitCode).toBe(0);
    const changes = (JSON.parse(plan.stdout) as JsonPlan).changes.map((c) => [c.address, c.action]);
    expect(changes).toEqual([
      ['File/nginx@web-1', 'update'],
      ['File/nginx@web-2', 'update'],
    ]);
    const text = await capstan(['plan', ws.repo, '--state', ws.state]);
    expect(text.stdout).toContain('-  listen 8080;');
    expect(text.stdout).toContain('+  listen 9090;');

    expect((await capstan(['apply', ws.repo, '--state', ws.state, '--yes'])).exitCode).toBe(0);
    expect(await conf('web-1')).toContain('listen 9090;');
    expect(await conf('web-2')).toContain('listen 9090;');
  }, 120_000);

  it('an undefined variable fails validate with FILE:LINE:COL and the name, and apply changes nothing', async () => {
    ws = await workspace();
    await writeStack('{ listen_port: 8080, upstreams: [app-1] }');
    expect((await capstan(['apply', ws.repo, '--state', ws.state, '--yes'])).exitCode).toBe(0);
    const before = [await conf('web-1'), await conf('web-2')];
    const mtime = (await stat(path.join(ws.root, 'web-1/etc/nginx/nginx.conf'))).mtimeMs;

    await writeStack('{ listen_prot: 9090, upstreams: [app-1] }');
    const validate = await capstan(['validate', ws.repo]);
    expect(validate.exitCode).toBe(1);
    const output = validate.stdout + validate.stderr;
    expect(output).toContain(
      'app/nginx.yaml:6:13: File/nginx@web-1: templates/nginx.conf.liquid:3:13: undefined variable "listen_port" (host web-1; defined vars: host, listen_prot, upstreams; did you mean "listen_prot"?)',
    );
    expect(output).toContain('app/nginx.yaml:6:13: File/nginx@web-2: templates/nginx.conf.liquid:3:13: undefined variable "listen_port"');

    const apply = await capstan(['apply', ws.repo, '--state', ws.state, '--yes']);
    expect(apply.exitCode).toBe(1);
    expect(apply.stdout + apply.stderr).toContain('undefined variable "listen_port"');
    expect([await conf('web-1'), await conf('web-2')]).toEqual(before);
    expect((await stat(path.join(ws.root, 'web-1/etc/nginx/nginx.conf'))).mtimeMs).toBe(mtime);

    // Nothing is deleted either: a failed render is never "nothing desired".
    const plan = await capstan(['plan', ws.repo, '--state', ws.state, '--json']);
    expect(plan.exitCode).toBe(1);
  }, 120_000);
});
