import { execa } from 'execa';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Resource } from '../../spec/resource.js';
import { alertingSpecSchema, renderAlertmanagerConfig, validateAlerting, type AlertingSpec } from './alerting.js';
import { alertmanagerConfigText } from './alerting-secrets.js';

const spec = (extra: Record<string, unknown> = {}): AlertingSpec =>
  alertingSpecSchema.parse({
    defaultTeam: 'platform',
    teams: [
      { name: 'api-oncall', pagerduty: { routingKeyFile: '/etc/alertmanager/secrets/api-pd' }, slack: { apiUrlFile: '/etc/alertmanager/secrets/slack', channel: '#api' } },
      { name: 'platform', webhook: { url: 'http://127.0.0.1:9999/hook' } },
      { name: 'api-tickets', email: { to: 'api-team@example.com' } },
    ],
    smtp: { from: 'alertmanager@example.com', smarthost: 'smtp.example.com:587' },
    routes: [
      { services: ['api'], severities: 'page', team: 'api-oncall', repeatInterval: '1h', escalation: [{ after: '15m', team: 'platform' }] },
      { services: ['api', 'api.v2'], severities: ['ticket'], team: 'api-tickets', groupWait: '5m' },
    ],
    ...extra,
  });

function resource(s: AlertingSpec): Resource<AlertingSpec> {
  const source = { file: 'alerting.yaml', line: 1, col: 1 };
  return { address: 'Alerting/oncall', kind: 'Alerting', name: 'oncall', target: 'Host/mon', dependsOn: [], spec: s, source, positionOf: () => source };
}

describe('Alerting → Alertmanager configuration', () => {
  it('routes services and severities to teams, escalates and inhibits tickets by pages', () => {
    const config = renderAlertmanagerConfig(spec()) as { route: { routes: unknown[] }; inhibit_rules: unknown[]; receivers: { name: string }[] };
    expect(config.route).toMatchObject({ receiver: 'platform', group_by: ['alertname', 'slo', 'service'], group_wait: '30s', group_interval: '5m', repeat_interval: '4h' });
    expect(config.route.routes).toEqual([
      { receiver: 'api-oncall', matchers: ['service="api"', 'severity="page"'], repeat_interval: '1h', continue: true },
      { receiver: 'platform', matchers: ['service="api"', 'severity="page"'], group_wait: '15m', repeat_interval: '1h' },
      { receiver: 'api-tickets', matchers: ['service=~"api|api\\\\.v2"', 'severity="ticket"'], group_wait: '5m' },
    ]);
    expect(config.inhibit_rules).toEqual([
      { source_matchers: ['severity="page"', 'slo=~".+"'], target_matchers: ['severity="ticket"', 'slo=~".+"'], equal: ['slo', 'service'] },
    ]);
    expect(config.receivers.map((r) => r.name)).toEqual(['api-oncall', 'platform', 'api-tickets']);
    expect(alertmanagerConfigText(spec())).toContain('routing_key_file: /etc/alertmanager/secrets/api-pd');
  });

  it('passes the real amtool check-config', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'capstan-am-'));
    try {
      await writeFile(join(dir, 'alertmanager.yml'), alertmanagerConfigText(spec()));
      const ok = await execa('/usr/bin/amtool', ['check-config', 'alertmanager.yml'], { cwd: dir, reject: false, all: true });
      expect(ok.all).toContain('SUCCESS');
      expect(ok.exitCode).toBe(0);
      await writeFile(join(dir, 'bad.yml'), alertmanagerConfigText(spec()).replace('receiver: platform', 'receiver: nobody'));
      const bad = await execa('/usr/bin/amtool', ['check-config', 'bad.yml'], { cwd: dir, reject: false, all: true });
      expect(bad.exitCode).not.toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('can turn the default inhibition off and add rules', () => {
    const config = renderAlertmanagerConfig(
      spec({ inhibitTicketsByPages: false, inhibitRules: [{ sourceMatchers: ['alertname="HostDown"'], targetMatchers: ['severity=~"page|ticket"'], equal: ['instance'] }] }),
    );
    expect(config['inhibit_rules']).toEqual([{ source_matchers: ['alertname="HostDown"'], target_matchers: ['severity=~"page|ticket"'], equal: ['instance'] }]);
  });

  it('reports unknown teams, catch-all routes, out-of-order escalation and email without smtp', () => {
    const s = spec({
      smtp: undefined,
      defaultTeam: 'nobody',
      routes: [
        { team: 'platform' },
        { services: 'api', team: 'api-oncall', escalation: [{ after: '30m', team: 'platform' }, { after: '10m', team: 'ghost' }] },
      ],
    });
    expect(validateAlerting(resource(s)).map((d) => d.summary)).toEqual([
      'team api-tickets has email receivers but spec.smtp is not set',
      'unknown team nobody',
      'a route needs services, severities or matchers: without them it catches every alert',
      'unknown team ghost',
      'escalation steps must come later and later',
    ]);
    expect(validateAlerting(resource(spec()))).toEqual([]);
  });

  it('refuses secrets written inline and malformed matchers', () => {
    expect(alertingSpecSchema.safeParse({ defaultTeam: 'a', teams: [{ name: 'a', pagerduty: { routingKey: 'abc' } }] }).success).toBe(false);
    expect(alertingSpecSchema.safeParse({ defaultTeam: 'a', teams: [{ name: 'a', opsgenie: { apiKey: 'abc' } }] }).success).toBe(false);
    expect(alertingSpecSchema.safeParse({ defaultTeam: 'a', teams: [{ name: 'a', slack: { channel: '#a' } }] }).success).toBe(false);
    expect(alertingSpecSchema.safeParse({ defaultTeam: 'a', teams: [{ name: 'a' }], routes: [{ team: 'a', matchers: ['team=x'] }] }).success).toBe(false);
  });
});
