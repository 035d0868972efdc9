import { describe, expect, it } from 'vitest';
import { formatDiagnostic, hasErrors } from '../diag/diagnostic.js';
import { hostProviders } from '../providers/host/index.js';
import { ProviderRegistry } from '../providers/registry.js';
import type { LoadedStack } from './load.js';
import { useTempStack } from './testing/temp-stack.js';
import {
  allowedFailures,
  batchSize,
  DEFAULT_ROLLOUT,
  HealthCheckRenderError,
  hostGroupSchema,
  parseDuration,
  renderHealthCheck,
  type HealthCheckSpec,
} from './host-group.js';

const registry = new ProviderRegistry(hostProviders);
const repo = useTempStack(registry, 'capstan-hostgroup-');
const load = repo.load;

const messages = (stack: LoadedStack): string[] => stack.diagnostics.map(formatDiagnostic);

const hosts = `kind: Host
name: web-1
spec: { transport: local, root: /tmp/capstan-never-written/web-1, groups: [web] }
---
kind: Host
name: web-2
spec: { transport: ssh, address: 10.0.0.2, groups: [web, eu] }
`;

describe('HostGroup schema', () => {
  it('parses rollout settings: counts, percentages, durations in milliseconds, defaults', () => {
    expect(hostGroupSchema.parse({})).toEqual({ vars: {}, rollout: undefined });
    expect(hostGroupSchema.parse({ rollout: {} })).toEqual({ vars: {}, rollout: DEFAULT_ROLLOUT });
    const spec = hostGroupSchema.parse({
      vars: { listen_port: 8080 },
      rollout: { batch: '25%', maxFailures: '10%', healthCheck: { http: { url: 'http://{{ host.address }}/healthz' }, timeout: '500ms', interval: '1m30s' } },
    });
    expect(spec).toEqual({
      vars: { listen_port: 8080 },
      rollout: {
        batch: { kind: 'percent', value: 25 },
        maxFailures: { kind: 'percent', value: 10 },
        healthCheck: { type: 'http', url: 'http://{{ host.address }}/healthz', expectStatus: 200, timeoutMs: 500, retries: 3, intervalMs: 90_000 },
      },
    });
    expect(hostGroupSchema.parse({ rollout: { batch: 2, maxFailures: 1, healthCheck: { tcp: { port: 22 } } } }).rollout).toEqual({
      batch: { kind: 'count', value: 2 },
      maxFailures: { kind: 'count', value: 1 },
      healthCheck: { type: 'tcp', port: 22, address: undefined, timeoutMs: 5000, retries: 3, intervalMs: 2000 },
    });
    expect(hostGroupSchema.parse({ rollout: { healthCheck: { command: ['systemctl', 'is-active', 'nginx'], retries: 1 } } }).rollout?.healthCheck).toMatchObject({
      type: 'command',
      command: ['systemctl', 'is-active', 'nginx'],
      retries: 1,
    });
  });

  it('parses durations', () => {
    expect([parseDuration('500ms'), parseDuration('5s'), parseDuration('2m'), parseDuration('1h'), parseDuration('1m30s')]).toEqual([500, 5000, 120_000, 3_600_000, 90_000]);
    expect([parseDuration(''), parseDuration('0s'), parseDuration('5'), parseDuration('5 s'), parseDuration('1d')]).toEqual([undefined, undefined, undefined, undefined, undefined]);
  });

  it('reports every problem at its node, with the HostGroup address', async () => {
    const stack = await load({
      'hosts.yaml': hosts,
      'groups.yaml': `kind: HostGroup
name: web
target: web-1
spec:
  vars: { host: x, bad-name: 1, ok: 2 }
  rollout:
    batch: 0
    maxFailures: "5"
    batchSize: 2
    healthCheck:
      http: { url: "http://{{ host.address }" }
      tcp: { port: 70000 }
      timeout: 5 seconds
      retries: 0
---
kind: HostGroup
name: eu
spec:
  rollout: { batch: "150%", maxFailures: -1, healthCheck: { interval: 2s } }
`,
    });
    expect(hasErrors(stack.diagnostics)).toBe(true);
    expect(messages(stack).filter((m) => m.startsWith('groups.yaml'))).toEqual([
      'groups.yaml:3:9: HostGroup/web: a HostGroup has no target: it describes the group "web" itself (remove target:; hosts join the group with groups: in their Host spec)',
      'groups.yaml:5:17: HostGroup/web: spec.vars.host: vars.host is reserved: host.name, host.address and host.groups are set by Capstan',
      'groups.yaml:5:30: HostGroup/web: spec.vars.bad-name: variable name "bad-name" is not valid: letters, digits and "_", not starting with a digit',
      'groups.yaml:7:12: HostGroup/web: spec.rollout.batch: batch must be a positive whole number of hosts, or a percentage from 1% to 100% such as "25%"',
      'groups.yaml:8:18: HostGroup/web: spec.rollout.maxFailures: maxFailures must be a whole number (0 or more) of hosts, or a percentage from 0% to 100% such as "25%"',
      'groups.yaml:9:5: HostGroup/web: spec.rollout.batchSize: unknown key (known keys: batch, healthCheck, maxFailures)',
      'groups.yaml:11:7: HostGroup/web: spec.rollout.healthCheck: a healthCheck takes exactly one of http, tcp and command, not http and tcp',
      'groups.yaml:11:20: HostGroup/web: spec.rollout.healthCheck.http.url: url is not a valid template: url:1:8: output "{{ host.address }" not closed',
      'groups.yaml:12:20: HostGroup/web: spec.rollout.healthCheck.tcp.port: port must be from 1 to 65535',
      'groups.yaml:13:16: HostGroup/web: spec.rollout.healthCheck.timeout: timeout must be a duration above zero, such as 500ms, 5s or 2m',
      'groups.yaml:14:16: HostGroup/web: spec.rollout.healthCheck.retries: retries must be from 1 to 100 (attempts before the host counts as unhealthy)',
      'groups.yaml:19:21: HostGroup/eu: spec.rollout.batch: batch must be a positive whole number of hosts, or a percentage from 1% to 100% such as "25%"',
      'groups.yaml:19:42: HostGroup/eu: spec.rollout.maxFailures: maxFailures must be a whole number (0 or more) of hosts, or a percentage from 0% to 100% such as "25%"',
      'groups.yaml:19:59: HostGroup/eu: spec.rollout.healthCheck: a healthCheck needs exactly one of http, tcp or command',
    ]);
    expect(stack.hostGroups).toEqual({});
  });

  it('refuses two probes, dependsOn, notify, and a duplicate name', async () => {
    const stack = await load({
      'hosts.yaml': hosts,
      'groups.yaml': `kind: HostGroup
name: web
dependsOn: [File/x]
notify: [Exec/x]
spec:
  rollout: { healthCheck: { tcp: { port: 80 }, command: "true" } }
---
kind: HostGroup
name: web
spec: {}
`,
    });
    expect(messages(stack)).toEqual([
      'groups.yaml:3:12: HostGroup/web: a HostGroup cannot have dependsOn: it is not applied (remove dependsOn:)',
      'groups.yaml:4:9: HostGroup/web: a HostGroup cannot have notify: it is not applied (remove notify:)',
      'groups.yaml:6:27: HostGroup/web: spec.rollout.healthCheck: a healthCheck takes exactly one of http, tcp and command, not tcp and command',
      'groups.yaml:9:7: HostGroup/web: duplicate HostGroup/web: already declared at groups.yaml:2:7 (names are unique per kind in a stack)',
    ]);
  });

  it('is never a resource: a dependsOn naming it finds no resource', async () => {
    const stack = await load({
      'hosts.yaml': hosts,
      'stack.yaml': `kind: HostGroup
name: web
spec: {}
---
kind: File
name: motd
target: web-1
dependsOn: [HostGroup/web]
spec: { path: /etc/motd, content: "hi" }
`,
    });
    expect(messages(stack)).toEqual(['stack.yaml:8:13: File/motd: dependsOn "HostGroup/web": no such resource']);
    expect(stack.resources.map((r) => r.address)).toEqual([]);
    expect(stack.targets.map((t) => t.address)).toEqual(['Host/web-1', 'Host/web-2']);
  });
});

describe('HostGroup in a stack', () => {
  it('exposes groups, members and their rollout; a group without a document stays valid', async () => {
    const stack = await load({
      'hosts.yaml': hosts,
      'groups.yaml': `kind: HostGroup
name: web
spec:
  vars: { listen_port: 8080 }
  rollout: { batch: 1, healthCheck: { http: { url: "http://{{ host.address }}:{{ listen_port }}/healthz" } } }
`,
    });
    expect(messages(stack)).toEqual([]);
    expect(Object.keys(stack.hostGroups)).toEqual(['web']);
    expect(stack.hostGroups['web']!.rollout?.batch).toEqual({ kind: 'count', value: 1 });
    expect(stack.groupMembers).toEqual({ eu: ['Host/web-2'], web: ['Host/web-1', 'Host/web-2'] });
    const check = stack.hostGroups['web']!.rollout!.healthCheck!;
    expect(stack.groupMembers['web']!.map((t) => renderHealthCheck(check, stack.varsByTarget[t]!))).toEqual([
      { type: 'http', url: 'http://127.0.0.1:8080/healthz', expectStatus: 200, timeoutMs: 5000, retries: 3, intervalMs: 2000 },
      { type: 'http', url: 'http://10.0.0.2:8080/healthz', expectStatus: 200, timeoutMs: 5000, retries: 3, intervalMs: 2000 },
    ]);
  });

  it('warns about a HostGroup no host lists, naming it', async () => {
    const stack = await load({
      'hosts.yaml': hosts,
      'groups.yaml': 'kind: HostGroup\nname: wbe\nspec: {}\n---\nkind: HostGroup\nname: eu\nspec: {}\n',
    });
    expect(hasErrors(stack.diagnostics)).toBe(false);
    expect(messages(stack)).toEqual([
      'groups.yaml:2:7: HostGroup/wbe: warning: HostGroup wbe is not used: no host lists it in groups: (did you mean "web"?) (add groups: [wbe] to a Host, or remove this HostGroup)',
    ]);
    expect(Object.keys(stack.hostGroups).sort()).toEqual(['eu', 'wbe']);
  });

  it('does not warn while a host is invalid: its groups are unknown', async () => {
    const stack = await load({
      'hosts.yaml': 'kind: Host\nname: web-1\nspec: { transport: tcp, groups: [web] }\n',
      'groups.yaml': 'kind: HostGroup\nname: web\nspec: {}\n',
    });
    expect(messages(stack).some((m) => m.includes('not used'))).toBe(false);
  });

  it('checks health-check templates for every member at load time, at the field, naming the host', async () => {
    const stack = await load({
      'hosts.yaml': `${hosts}---\nkind: Host\nname: web-3\nspec: { transport: local, groups: [web], vars: { port: 81 } }\n`,
      'groups.yaml': `kind: HostGroup
name: web
spec:
  rollout:
    healthCheck:
      http: { url: "http://{{ host.address }}:{{ port }}/" }
`,
    });
    expect(messages(stack)).toEqual([
      'groups.yaml:6:20: HostGroup/web: healthCheck.http.url:1:30: undefined variable "port" (host web-1; defined vars: host)',
      'groups.yaml:6:20: HostGroup/web: healthCheck.http.url:1:30: undefined variable "port" (host web-2; defined vars: host)',
    ]);
    expect(stack.hostGroups).toEqual({ web: expect.anything() as unknown });
  });

  it('covers HostGroups in the stack hash: a rollout change changes it', async () => {
    const a = await load({ 'hosts.yaml': hosts });
    const b = await load({ 'groups.yaml': 'kind: HostGroup\nname: web\nspec: { rollout: { batch: 1 } }\n' });
    const c = await load({ 'groups.yaml': 'kind: HostGroup\nname: web\nspec: { rollout: { batch: 2 } }\n' });
    expect(new Set([a.specHash, b.specHash, c.specHash]).size).toBe(3);
  });
});

describe('rollout arithmetic', () => {
  const rollout = (batch: number | string, maxFailures: number | string = 0) => hostGroupSchema.parse({ rollout: { batch, maxFailures } }).rollout;

  it('sizes batches: a count, capped by the members; a percentage rounded down, at least one', () => {
    expect(batchSize(undefined, 10)).toBe(10);
    expect(batchSize(rollout(3), 10)).toBe(3);
    expect(batchSize(rollout(30), 10)).toBe(10);
    expect(batchSize(rollout('25%'), 10)).toBe(2);
    expect(batchSize(rollout('1%'), 10)).toBe(1);
    expect(batchSize(rollout('100%'), 7)).toBe(7);
    expect(batchSize(rollout(2), 0)).toBe(0);
  });

  it('counts the failures allowed over the rollout', () => {
    expect(allowedFailures(undefined, 10)).toBe(0);
    expect(allowedFailures(rollout(1, 2), 10)).toBe(2);
    expect(allowedFailures(rollout(1, 20), 10)).toBe(10);
    expect(allowedFailures(rollout(1, '25%'), 10)).toBe(2);
    expect(allowedFailures(rollout(1, '100%'), 10)).toBe(10);
  });
});

describe('renderHealthCheck', () => {
  const vars = { host: { name: 'web-1', address: '10.0.0.1', groups: ['web'] }, port: 8080, unit: 'nginx' };
  const check = (healthCheck: unknown): HealthCheckSpec => hostGroupSchema.parse({ rollout: { healthCheck } }).rollout!.healthCheck!;
  const failure = (healthCheck: unknown, v: Record<string, unknown> = vars): HealthCheckRenderError => {
    try {
      renderHealthCheck(check(healthCheck), v, 'web-1');
    } catch (e) {
      if (e instanceof HealthCheckRenderError) return e;
      throw e;
    }
    throw new Error('expected a HealthCheckRenderError');
  };

  it('renders each probe for one host', () => {
    expect(renderHealthCheck(check({ tcp: { port: 22 } }), vars)).toMatchObject({ type: 'tcp', address: '10.0.0.1', port: 22 });
    expect(renderHealthCheck(check({ tcp: { port: 22, address: 'db.{{ host.name }}.internal' } }), vars)).toMatchObject({ address: 'db.web-1.internal' });
    expect(renderHealthCheck(check({ command: 'systemctl  is-active {{ unit }}' }), vars)).toMatchObject({ type: 'command', argv: ['systemctl', 'is-active', 'nginx'] });
    expect(renderHealthCheck(check({ command: ['sh', '-c', 'test -e /run/{{ unit }}.pid && echo ok'] }), vars)).toMatchObject({
      argv: ['sh', '-c', 'test -e /run/nginx.pid && echo ok'],
    });
    expect(renderHealthCheck(check({ http: { url: 'https://{{ host.name }}:{{ port }}/h', expectStatus: 204 } }), vars)).toMatchObject({
      url: 'https://web-1:8080/h',
      expectStatus: 204,
    });
  });

  it('refuses what does not render to a usable probe', () => {
    expect(failure({ http: { url: 'ftp://{{ host.address }}/' } })).toMatchObject({
      path: ['http', 'url'],
      message: 'healthCheck.http.url renders to "ftp://10.0.0.1/" for host web-1: not an http:// or https:// URL',
    });
    expect(failure({ command: 'pgrep nginx | wc -l' }).message).toMatch(/quotes or shell syntax, and no shell runs it; write it as a list/);
    expect(failure({ command: '{{ empty }}' }, { ...vars, empty: '' }).message).toMatch(/renders to no program/);
    expect(failure({ tcp: { port: 1, address: '-oProxyCommand=x' } }).message).toMatch(/not a host name or IP address/);
    expect(failure({ tcp: { port: 1 } }, {})).toMatchObject({ path: ['tcp'], message: 'healthCheck.tcp.address:1:4: undefined variable "host" (host web-1; defined vars: (none))' });
    expect(failure({ command: ['x', '{{ nope }}'] })).toMatchObject({ path: ['command', 1] });
  });
});
