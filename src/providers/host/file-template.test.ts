/**
 * File templates through the real loader, planner and applier on local hosts
 * rooted in a temp directory: rendered per host with its variables, refused with
 * a position when they do not render.
 */
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyPlan } from '../../apply/apply.js';
import { formatDiagnostic, hasErrors } from '../../diag/diagnostic.js';
import type { Plan } from '../../plan/plan.js';
import { planChanges } from '../../plan/planner.js';
import { loadStack, type LoadedStack } from '../../spec/load.js';
import { SqliteStore } from '../../state/sqlite/sqlite-store.js';
import type { Store } from '../../state/store.js';
import { ProviderRegistry } from '../registry.js';
import { TargetPool } from '../target-pool.js';
import { hostProviders } from './index.js';

const registry = new ProviderRegistry(hostProviders);
const actor = { user: 'tester', host: os.hostname(), pid: process.pid };
const source = { dir: '/repo', repo: null, ref: null, commit: 'c'.repeat(40), author: 'A <a@x>', message: 'm', dirty: false };

let dir: string;
let repo: string;
let store: Store;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-template-'));
  repo = path.join(dir, 'repo');
  await mkdir(repo);
  store = await SqliteStore.open(path.join(dir, 'state.db'));
});
afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

async function write(files: Record<string, string | Buffer>): Promise<void> {
  for (const [rel, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(repo, rel)), { recursive: true });
    await writeFile(path.join(repo, rel), text);
  }
}

const hosts = () => `kind: Host
name: web-1
spec: { transport: local, root: ${dir}/root/web-1, groups: [web], vars: { listen_port: 9001 } }
---
kind: Host
name: web-2
spec: { transport: local, root: ${dir}/root/web-2, groups: [web] }
`;

const group = (port: number) => `kind: HostGroup
name: web
spec:
  vars: { listen_port: ${port}, upstreams: [app-1, app-2] }
`;

const nginxFile = `kind: File
name: nginx
target: group:web
spec:
  path: /etc/nginx/nginx.conf
  template: ../templates/nginx.conf.liquid
  mode: "0640"
`;

const nginxTemplate = `# {{ host.name }} ({{ host.groups | join: "," }})
server {
  listen {{ listen_port }};
{% for u in upstreams %}  upstream {{ u }};
{% endfor %}}
`;

async function plan(stack: LoadedStack): Promise<Plan> {
  const targets = new TargetPool(registry, { signal: new AbortController().signal });
  try {
    return await planChanges({ stack: 's', desired: stack, source, registry, store, targets });
  } finally {
    await targets.close();
  }
}

async function apply(p: Plan): Promise<void> {
  const targets = new TargetPool(registry, { signal: new AbortController().signal });
  try {
    const result = await applyPlan({ plan: p, registry, store, targets, actor });
    expect(result.status).toBe('succeeded');
  } finally {
    await targets.close();
  }
}

const load = () => loadStack(repo, registry);
const messages = (stack: LoadedStack) => stack.diagnostics.map(formatDiagnostic);

describe('File template', () => {
  it('renders per host through load, plan and apply; a group var change updates every member', async () => {
    await write({ 'stack/hosts.yaml': hosts(), 'stack/groups.yaml': group(8080), 'stack/nginx.yaml': nginxFile, 'templates/nginx.conf.liquid': nginxTemplate });
    const stack = await load();
    expect(messages(stack)).toEqual([]);
    // The instance spec holds the rendered content, not the template.
    expect(stack.resources.map((r) => [r.address, r.spec])).toEqual([
      ['File/nginx@web-1', { path: '/etc/nginx/nginx.conf', state: 'present', backup: false, mode: '0640', content: '# web-1 (web)\nserver {\n  listen 9001;\n  upstream app-1;\n  upstream app-2;\n}\n' }],
      ['File/nginx@web-2', { path: '/etc/nginx/nginx.conf', state: 'present', backup: false, mode: '0640', content: '# web-2 (web)\nserver {\n  listen 8080;\n  upstream app-1;\n  upstream app-2;\n}\n' }],
    ]);

    const first = await plan(stack);
    expect(first.changes.map((c) => [c.address, c.action])).toEqual([
      ['File/nginx@web-1', 'create'],
      ['File/nginx@web-2', 'create'],
    ]);
    expect(first.changes[1]!.fields.find((f) => f.path === 'content')).toMatchObject({ format: 'text', before: null, after: expect.stringContaining('listen 8080;') as unknown });
    await apply(first);
    expect(await readFile(path.join(dir, 'root/web-1/etc/nginx/nginx.conf'), 'utf8')).toContain('listen 9001;');
    expect(await readFile(path.join(dir, 'root/web-2/etc/nginx/nginx.conf'), 'utf8')).toContain('listen 8080;');
    expect((await plan(await load())).changes.map((c) => c.action)).toEqual(['noop', 'noop']);

    // web-1 overrides listen_port itself; upstreams comes from the group for both.
    await write({ 'stack/groups.yaml': group(8080).replace('[app-1, app-2]', '[app-3]') });
    const changed = await load();
    const second = await plan(changed);
    expect(second.changes.map((c) => [c.address, c.action])).toEqual([
      ['File/nginx@web-1', 'update'],
      ['File/nginx@web-2', 'update'],
    ]);
    expect(second.changes[0]!.fields.find((f) => f.path === 'content')?.after).toContain('upstream app-3;');
    expect(changed.specHash).not.toBe(stack.specHash);
  });

  it('an undefined variable is an error at spec.template for each instance, and nothing is planned', async () => {
    await write({
      'stack/hosts.yaml': hosts(),
      'stack/nginx.yaml': nginxFile,
      'templates/nginx.conf.liquid': nginxTemplate,
    });
    const stack = await load();
    expect(messages(stack)).toEqual([
      'stack/nginx.yaml:6:13: File/nginx@web-2: templates/nginx.conf.liquid:3:13: undefined variable "listen_port" (host web-2; defined vars: host)',
      'stack/nginx.yaml:6:13: File/nginx@web-1: templates/nginx.conf.liquid:4:13: undefined variable "upstreams" (host web-1; defined vars: host, listen_port)',
    ]);
    expect(stack.resources).toEqual([]);
    const p = await plan(stack);
    expect(p.changes).toEqual([]);
    expect(hasErrors(p.diagnostics)).toBe(true);
  });

  it('an undefined filter or a syntax error is reported once, for the document, when the template is read', async () => {
    await write({
      'stack/hosts.yaml': hosts(),
      'stack/groups.yaml': group(80),
      'stack/nginx.yaml': nginxFile,
      'stack/other.yaml': 'kind: File\nname: other\ntarget: web-1\nspec: { path: /etc/other, template: broken.liquid }\n',
      'stack/broken.liquid': 'a\n{% if listen_port %}\n',
      'templates/nginx.conf.liquid': 'listen {{ listen_port | to_port }};\n',
    });
    expect(messages(await load())).toEqual([
      'stack/nginx.yaml:6:13: File/nginx: templates/nginx.conf.liquid:1:8: undefined filter "to_port"',
      'stack/other.yaml:4:37: File/other: stack/broken.liquid:2:1: tag {% if listen_port %} not closed',
    ]);
  });

  it('refuses a template outside the repository, missing, or not text', async () => {
    await writeFile(path.join(dir, 'outside.liquid'), 'secret');
    await symlink(path.join(dir, 'outside.liquid'), path.join(repo, 'link.liquid'));
    await write({
      'hosts.yaml': hosts(),
      'files.yaml': `kind: File
name: up
target: web-1
spec: { path: /a, template: ../outside.liquid }
---
kind: File
name: link
target: web-1
spec: { path: /b, template: link.liquid }
---
kind: File
name: absolute
target: web-1
spec: { path: /c, template: /etc/passwd }
---
kind: File
name: missing
target: web-1
spec: { path: /d, template: nope.liquid }
---
kind: File
name: binary
target: web-1
spec: { path: /e, template: bin.liquid }
`,
      'bin.liquid': Buffer.from([0xff, 0xfe, 0x00]),
    });
    expect(messages(await load())).toEqual([
      'files.yaml:4:29: File/up: cannot read template ../outside.liquid: cannot read "../outside.liquid": the path leaves the repository',
      'files.yaml:9:29: File/link: cannot read template link.liquid: cannot read "link.liquid": the path leads out of the repository through a symlink',
      'files.yaml:14:29: File/absolute: spec.template: template must be a path relative to the YAML file, inside the repository',
      'files.yaml:19:29: File/missing: cannot read template nope.liquid: cannot read "nope.liquid": no such file (nope.liquid in the repository)',
      'files.yaml:24:29: File/binary: template bin.liquid is not UTF-8 text',
    ]);
  });

  it('takes exactly one of content, source and template; vars only with a template', async () => {
    await write({
      'hosts.yaml': hosts(),
      't.liquid': 'x',
      'files.yaml': `kind: File
name: both
target: web-1
spec: { path: /a, template: t.liquid, content: x }
---
kind: File
name: stray-vars
target: web-1
spec: { path: /b, content: x, vars: { a: 1 } }
`,
    });
    expect(messages(await load())).toEqual([
      'files.yaml:4:7: File/both: spec: a File takes exactly one of content, source, template and contentBase64, not content and template',
      'files.yaml:9:37: File/stray-vars: spec.vars: vars are for a template: add template:, or remove vars',
    ]);
  });

  it('stops rendering a document after it failed on ten instances', async () => {
    const many = Array.from({ length: 12 }, (_, i) => `kind: Host\nname: h-${i}\nspec: { transport: local, root: ${dir}/root/h-${i}, groups: [many] }\n`).join('---\n');
    await write({ 'hosts.yaml': many, 'f.yaml': 'kind: File\nname: f\ntarget: group:many\nspec: { path: /f, template: t.liquid }\n', 't.liquid': '{{ nope }}' });
    const m = messages(await load());
    expect(m).toHaveLength(11);
    expect(m.filter((x) => x.includes('undefined variable "nope"'))).toHaveLength(10);
    expect(m).toContain('f.yaml:1:1: File/f: File/f was not instantiated on 2 more instances (it failed on the first 10; fix those and load again)');
  });
});
