import { describe, expect, it } from 'vitest';
import type { Resource } from '../../spec/resource.js';
import { alertRulesSpecSchema, renderAlertRules, resolveAlertRulesSource, validateAlertRules, type AlertRulesSpec } from './alert-rules.js';

const spec = (rules: unknown[]): AlertRulesSpec => alertRulesSpecSchema.parse({ groups: [{ name: 'api', rules }] });

function resource(s: AlertRulesSpec): Resource<AlertRulesSpec> {
  const source = { file: 'rules.yaml', line: 3, col: 1 };
  return { address: 'AlertRules/api', kind: 'AlertRules', name: 'api', target: 'Host/mon', dependsOn: [], spec: s, source, positionOf: () => source };
}

describe('AlertRules', () => {
  it('requires a runbook_url on every alert unless waived', () => {
    const s = spec([
      { alert: 'ApiDown', expr: 'up{job="api"} == 0', for: '5m', labels: { severity: 'page' }, annotations: { summary: 'down' } },
      { alert: 'ApiSlow', expr: 'x > 1', annotations: { runbook_url: 'https://runbooks.example.com/api-slow' } },
      { alert: 'Info', expr: 'y > 1', runbookWaiver: 'informational, routed to a null receiver' },
      { record: 'job:x:rate5m', expr: 'rate(x[5m])' },
    ]);
    const diags = validateAlertRules(resource(s));
    expect(diags.map((d) => [d.summary, d.detail])).toEqual([['alert ApiDown has no runbook_url annotation', 'add annotations.runbook_url, or runbookWaiver: "<reason>" to the rule']]);
    expect(diags[0]!.source).toEqual({ file: 'rules.yaml', line: 3, col: 1 });
  });

  it('renders plain Prometheus groups without the waiver', () => {
    const s = spec([
      { alert: 'Info', expr: 'y > 1', runbookWaiver: 'informational', labels: { severity: 'ticket' } },
      { record: 'job:x:rate5m', expr: 'rate(x[5m])' },
    ]);
    expect(renderAlertRules(s)).toEqual({
      groups: [{ name: 'api', rules: [{ alert: 'Info', expr: 'y > 1', labels: { severity: 'ticket' } }, { record: 'job:x:rate5m', expr: 'rate(x[5m])' }] }],
    });
  });

  it('refuses malformed rules and duplicate groups', () => {
    expect(alertRulesSpecSchema.safeParse({ groups: [{ name: 'g', rules: [{ alert: 'A', record: 'b', expr: 'x' }] }] }).success).toBe(false);
    expect(alertRulesSpecSchema.safeParse({ groups: [{ name: 'g', rules: [{ record: 'b', expr: 'x', for: '5m' }] }] }).success).toBe(false);
    expect(alertRulesSpecSchema.safeParse({ groups: [{ name: 'g', rules: [{ alert: 'A', expr: 'x', for: 'soon' }] }] }).success).toBe(false);
    const twice = alertRulesSpecSchema.parse({ groups: [{ name: 'g', rules: [{ record: 'a', expr: 'x' }] }, { name: 'g', rules: [{ record: 'b', expr: 'y' }] }] });
    expect(validateAlertRules(resource(twice)).map((d) => d.summary)).toEqual(['duplicate rule group name g']);
  });

  it('reads a Prometheus rule file given as source', async () => {
    const s = alertRulesSpecSchema.parse({ source: 'rules/api.yml' });
    const text = 'groups:\n  - name: api\n    rules:\n      - alert: A\n        expr: up == 0\n        runbookWaiver: none\n';
    const resolved = await resolveAlertRulesSource(s, { file: 'stack/rules.yaml' }, async (p, f) => {
      expect([p, f]).toEqual(['rules/api.yml', 'stack/rules.yaml']);
      return Buffer.from(text);
    });
    expect(resolved.source).toBeUndefined();
    expect(resolved.groups?.[0]?.rules[0]).toMatchObject({ alert: 'A', expr: 'up == 0' });
    await expect(resolveAlertRulesSource(s, { file: 'x' }, async () => Buffer.from('groups: 3'))).rejects.toThrow(/not a Prometheus rule file/);
  });
});
