import { execa } from 'execa';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SecretDigester } from '../../secrets/digest.js';
import { SECRET_REFERENCE_JSON_SCHEMA, SecretUnavailableError, Sensitive } from '../../secrets/sensitive.js';
import { kindSpecJsonSchema } from '../../spec/json-schema.js';
import { alertingSpecSchema, type AlertingSpec } from './alerting.js';
import { alertmanagerConfigText, alertmanagerRenderedText, alertmanagerShownText, redactLiveAlertmanagerText } from './alerting-secrets.js';
import { configMismatch } from './backends.js';
import { diffFileSet } from './file-set.js';

const digester = SecretDigester.forIdentity('AGE-SECRET-KEY-1TESTTESTTESTTESTTESTTESTTESTTESTTESTTESTTESTTESTTESTTESTQQQQ');
const seal = (v: string): Sensitive<string> => new Sensitive(v, digester.digest(v));
const HOOK = 'https://hooks.example.com/T0KEN-webhook-1';
const SMTP = 'smtp-Passw0rd-1';

function spec(hook = HOOK): AlertingSpec {
  return alertingSpecSchema.parse({
    defaultTeam: 'sre',
    smtp: { from: 'am@example.com', smarthost: 'smtp.example.com:587', authUsername: 'am', authPassword: seal(SMTP) },
    teams: [
      { name: 'sre', webhook: { url: seal(hook), bearerToken: seal('bearer-1') }, email: { to: 'sre@example.com' } },
      { name: 'api', pagerduty: { routingKey: seal('pd-key-1') }, slack: { apiUrl: seal('https://hooks.slack.com/services/X'), channel: '#api' } },
      { name: 'db', opsgenie: { apiKey: seal('og-key-1') }, webhook: { url: 'http://127.0.0.1:9/db', basicAuth: { username: 'u', password: seal('basic-1') } } },
    ],
  });
}

const secrets = [HOOK, SMTP, 'bearer-1', 'pd-key-1', 'https://hooks.slack.com/services/X', 'og-key-1', 'basic-1'];

describe('Alertmanager receiver secrets', () => {
  it('writes the secrets into the file amtool checks, and shows only their keyed digests', async () => {
    const real = alertmanagerConfigText(spec());
    const shown = alertmanagerShownText(spec())!;
    for (const s of secrets) {
      expect(real).toContain(s);
      expect(shown).not.toContain(s);
    }
    expect(shown).toContain(`url: https://sensitive.invalid/${digester.digest(HOOK)}`);
    expect(shown).toContain(`smtp_auth_password: (sensitive ${digester.digest(SMTP)})`);
    expect(shown).toContain('url: http://127.0.0.1:9/db');
    expect(alertmanagerRenderedText(spec())).toBe(shown);
    const dir = await mkdtemp(join(tmpdir(), 'capstan-am-secrets-'));
    try {
      // Both the real file and the rendered one pass Debian's amtool.
      for (const [name, text] of [['real.yml', real], ['shown.yml', shown]] as const) {
        await writeFile(join(dir, name), text);
        const r = await execa('/usr/bin/amtool', ['check-config', name], { cwd: dir, reject: false, all: true });
        expect(r.exitCode, r.all).toBe(0);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('redacts the live file so that it equals the shown text, and a changed secret shows as its receiver field', () => {
    const live = redactLiveAlertmanagerText(alertmanagerConfigText(spec()), spec(), digester)!;
    expect(live).toMatchObject({ redacted: true, reformatted: false });
    expect(live.text).toBe(alertmanagerShownText(spec()));

    const path = '/etc/alertmanager/alertmanager.yml';
    const liveFiles = { files: { [path]: { path, type: 'file' as const, sha256: null, content: live.text, redacted: true as const } } };
    const desired = (s: AlertingSpec) => {
      const shown = alertmanagerShownText(s);
      return [{ path, shown, get content() { return alertmanagerConfigText(s); } }];
    };
    expect(diffFileSet(desired(spec()), liveFiles, [path]).action).toBe('noop');
    const changed = diffFileSet(desired(spec('https://hooks.example.com/T0KEN-webhook-2')), liveFiles, [path]);
    expect(changed.action).toBe('update');
    const [field] = changed.fields;
    const before = String(field!.before).split('\n');
    const after = String(field!.after).split('\n');
    const differing = after.filter((l) => !before.includes(l));
    expect(differing).toEqual([`      - url: https://sensitive.invalid/${digester.digest('https://hooks.example.com/T0KEN-webhook-2')}`]);
    expect(JSON.stringify(changed)).not.toMatch(/T0KEN/);
  });

  it('never shows a credential left in the live file, and shows a plain webhook URL of the spec as written', () => {
    const plain = alertingSpecSchema.parse({ defaultTeam: 'sre', teams: [{ name: 'sre', webhook: { url: 'http://127.0.0.1:9/hook' } }] });
    const leftover = alertmanagerConfigText(spec());
    const live = redactLiveAlertmanagerText(leftover, plain, digester)!;
    for (const s of secrets) expect(live.text).not.toContain(s);
    const same = redactLiveAlertmanagerText(alertmanagerConfigText(plain), plain, digester)!;
    expect(same).toEqual({ text: alertmanagerConfigText(plain), redacted: false, reformatted: false });
    // A hand edit of comments is seen, though only the redacted form can be shown.
    expect(redactLiveAlertmanagerText(`# by hand\n${leftover}`, spec(), digester)).toMatchObject({ redacted: true, reformatted: true });
    // Not YAML and the spec holds secrets: nothing of it is shown.
    expect(redactLiveAlertmanagerText(`${SMTP}: [`, spec(), digester)).toBeNull();
  });

  it('cannot write a spec read back from the store, and never quotes a credential in a mismatch', () => {
    const stored = JSON.parse(JSON.stringify(spec())) as AlertingSpec;
    expect(() => alertmanagerConfigText(stored)).toThrow(SecretUnavailableError);
    expect(alertmanagerShownText(stored)).toBe(alertmanagerShownText(spec()));
    const m = configMismatch({ receivers: [{ webhook_configs: [{ url: 'http://other' }] }] }, { receivers: [{ webhook_configs: [{ url: HOOK }] }] }, '');
    expect(m).toBe('receivers[0].webhook_configs[0].url differs (a credential: not shown)');
  });

  it('offers { secret: PATH } for the credential fields in the JSON Schema editors use', () => {
    const schema = kindSpecJsonSchema(alertingSpecSchema) as { properties: { teams: { items: { properties: Record<string, { items: { properties: Record<string, unknown> } }> } } } };
    const team = schema.properties.teams.items.properties;
    // The reference, with the field's own description and example (its .meta).
    expect(team['pagerduty']!.items.properties['routingKey']).toMatchObject({ ...SECRET_REFERENCE_JSON_SCHEMA, description: expect.stringContaining('routing key') });
    expect(team['opsgenie']!.items.properties['apiKey']).toMatchObject(SECRET_REFERENCE_JSON_SCHEMA);
    expect(JSON.stringify(team['webhook']!.items.properties['url'])).toContain('"secret"');
  });
});
