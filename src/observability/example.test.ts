/**
 * The example repository (examples/observability) renders and its tests pass
 * under the real promtool. Documents are read with a small stand-in for the
 * spec loader that does what it does for these kinds: schema, then resolve.
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { observabilityProviders } from '../providers/observability/index.js';
import type { Resource } from '../spec/resource.js';
import { runAlertTests } from './alert-tests.js';
import { renderArtifacts } from './render.js';

const EXAMPLE = resolve(import.meta.dirname, '../../examples/observability');

async function loadExample(): Promise<Resource[]> {
  const files = (await readdir(EXAMPLE, { recursive: true })).filter((f) => /\.ya?ml$/.test(f)).sort();
  const out: Resource[] = [];
  for (const file of files) {
    for (const doc of parseAllDocuments(await readFile(join(EXAMPLE, file), 'utf8'))) {
      const v = doc.toJS() as { kind: string; name: string; target?: string; spec: unknown };
      const provider = observabilityProviders.find((p) => p.kind === v.kind);
      if (!provider || provider.role !== 'resource') continue;
      let spec: unknown = provider.schema.parse(v.spec);
      spec = provider.resolve
        ? await provider.resolve(spec, { file }, { repoDir: EXAMPLE, readFile: (p: string, from: string) => readFile(join(EXAMPLE, dirname(from), p)) })
        : spec;
      const source = { file, line: 1, col: 1 };
      out.push({ address: `${v.kind}/${v.name}`, kind: v.kind, name: v.name, target: `Host/${v.target}`, dependsOn: [], spec, source, positionOf: () => source });
    }
  }
  return out;
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'capstan-example-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('examples/observability', () => {
  it('validates and records each resource name in its spec', async () => {
    const resources = await loadExample();
    expect(resources.map((r) => r.address)).toEqual([
      'AlertTest/api',
      'AlertRules/api',
      'SLO/api-availability',
      'SLO/api-latency',
      'Dashboard/api-overview',
      'Alerting/oncall',
    ]);
    for (const r of resources) {
      const provider = observabilityProviders.find((p) => p.kind === r.kind)!;
      expect(provider.role === 'resource' ? (provider.validate?.(r, resources) ?? []) : []).toEqual([]);
    }
  });

  it('renders every artefact', async () => {
    const written = await renderArtifacts(await loadExample(), join(dir, 'out'));
    expect(written.map((p) => relative(join(dir, 'out'), p))).toEqual([
      'alertmanager/oncall/alertmanager.yml',
      'grafana/dashboards/api-overview/api-overview.json',
      'grafana/dashboards/slo-api-availability/slo-api-availability.json',
      'grafana/dashboards/slo-api-latency/slo-api-latency.json',
      'grafana/provisioning/dashboards/capstan-api-overview.yaml',
      'grafana/provisioning/dashboards/capstan-slo-api-availability.yaml',
      'grafana/provisioning/dashboards/capstan-slo-api-latency.yaml',
      'prometheus/rules/capstan-alertrules-api.yml',
      'prometheus/rules/capstan-slo-api-availability.yml',
      'prometheus/rules/capstan-slo-api-latency.yml',
      'prometheus/tests/alerttest-api.test.yml',
      'prometheus/tests/slo-api-availability.test.yml',
      'prometheus/tests/slo-api-latency.test.yml',
    ]);
  });

  it('passes capstan test: promtool check and every test', async () => {
    const result = await runAlertTests(await loadExample(), join(dir, 'test'), { promtool: '/usr/bin/promtool', amtool: '/usr/bin/amtool' });
    expect(result.output).not.toContain('FAIL');
    expect([result.passed, result.failed]).toEqual([7, 0]);
  });
});
