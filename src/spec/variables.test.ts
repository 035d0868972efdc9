import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatDiagnostic } from '../diag/diagnostic.js';
import { hostProviders } from '../providers/host/index.js';
import { ProviderRegistry } from '../providers/registry.js';
import { useTempStack } from './testing/temp-stack.js';
import { mergeVariables, variablesSchema } from './variables.js';

const registry = new ProviderRegistry(hostProviders);
const repo = useTempStack(registry, 'capstan-vars-');
const load = repo.load;

const stackFiles = {
  'hosts.yaml': `kind: Host
name: web-1
spec:
  transport: local
  groups: [base, web]
  vars: { port: 9000 }
---
kind: Host
name: web-2
spec:
  transport: ssh
  address: web-2.example.com
  groups: [web, base]
---
kind: Host
name: lone
spec: { transport: local }
`,
  'groups.yaml': `kind: HostGroup
name: base
spec:
  vars: { port: 80, tier: base, tls: { cert: base.pem, key: base.key } }
---
kind: HostGroup
name: web
spec:
  vars: { tier: web, tls: { cert: web.pem } }
`,
};

describe('variables per host', () => {
  it('builtins, then groups in the order the host lists them (later wins), then the host: a shallow merge', async () => {
    const stack = await load(stackFiles);
    expect(stack.diagnostics.map(formatDiagnostic)).toEqual([]);
    expect(stack.varsByTarget).toEqual({
      'Host/web-1': {
        host: { name: 'web-1', address: '127.0.0.1', groups: ['base', 'web'] },
        port: 9000, // the host's own
        tier: 'web', // web is listed after base
        tls: { cert: 'web.pem' }, // replaced whole, not merged with base's
      },
      'Host/web-2': {
        host: { name: 'web-2', address: 'web-2.example.com', groups: ['web', 'base'] },
        port: 80,
        tier: 'base', // base is listed after web
        tls: { cert: 'base.pem', key: 'base.key' },
      },
      'Host/lone': { host: { name: 'lone', address: '127.0.0.1', groups: [] } },
    });
    expect(Object.isFrozen(stack.varsByTarget['Host/web-1'])).toBe(true);
  });

  it("a File's own vars win over the host's, for that File only", async () => {
    await writeFile(path.join(repo.dir, 'conf.liquid'), '{{ host.name }} {{ tier }} {{ port }} {{ tls.cert }}\n');
    const stack = await load({
      ...stackFiles,
      'files.yaml': `kind: File
name: conf
target: group:web
spec: { path: /etc/app.conf, template: conf.liquid, vars: { port: 1, tls: { cert: own.pem } } }
---
kind: File
name: plain
target: group:web
spec: { path: /etc/plain.conf, template: conf.liquid }
`,
    });
    expect(stack.diagnostics.map(formatDiagnostic)).toEqual([]);
    expect(Object.fromEntries(stack.resources.map((r) => [r.address, (r.spec as { content: string }).content]))).toEqual({
      'File/conf@web-1': 'web-1 web 1 own.pem\n',
      'File/conf@web-2': 'web-2 base 1 own.pem\n',
      'File/plain@web-1': 'web-1 web 9000 web.pem\n',
      'File/plain@web-2': 'web-2 base 80 base.pem\n',
    });
  });

  it('refuses vars that redefine a builtin or that a template cannot name', async () => {
    const stack = await load({
      'hosts.yaml': 'kind: Host\nname: web-1\nspec:\n  transport: local\n  vars: { host: me, 9lives: 1, ok_2: 2 }\n',
    });
    expect(stack.diagnostics.map(formatDiagnostic)).toEqual([
      'hosts.yaml:5:17: Host/web-1: spec.vars.host: vars.host is reserved: host.name, host.address and host.groups are set by Capstan',
      'hosts.yaml:5:29: Host/web-1: spec.vars["9lives"]: variable name "9lives" is not valid: letters, digits and "_", not starting with a digit',
    ]);
    expect(stack.targets).toEqual([]);
  });

  it('merges shallowly', () => {
    expect(mergeVariables({ a: { x: 1 }, b: 1 }, undefined, { a: { y: 2 } })).toEqual({ a: { y: 2 }, b: 1 });
    expect(variablesSchema.safeParse(['a']).error?.issues[0]?.message).toBe('vars must be a map of names to values');
  });
});
