import { describe, expect, it } from 'vitest';
import { configMismatch } from './backends.js';
import { diffFileSet, sha256Hex } from './file-set.js';
import { resolveName, validateName } from './identity.js';
import { sloSpecSchema } from './slo.js';

const live = (files: Record<string, string>) => ({
  files: Object.fromEntries(Object.entries(files).map(([path, content]) => [path, { path, type: 'file' as const, sha256: sha256Hex(content), content }])),
});

describe('diffFileSet', () => {
  const desired = [
    { path: '/a.yml', content: 'a\n' },
    { path: '/b.json', content: '{}\n' },
  ];
  it('creates when nothing exists, is a no-op when every file matches', () => {
    expect(diffFileSet(desired, null, []).action).toBe('create');
    expect(diffFileSet(desired, live({ '/a.yml': 'a\n', '/b.json': '{}\n' }), [])).toEqual({ action: 'noop', fields: [] });
  });
  it('updates the files that differ or are missing, as text diffs', () => {
    const d = diffFileSet(desired, live({ '/a.yml': 'edited\n' }), []);
    expect(d.action).toBe('update');
    expect(d.fields).toEqual([
      { path: '/a.yml', before: 'edited\n', after: 'a\n', format: 'text' },
      { path: '/b.json', before: null, after: '{}\n', format: 'text' },
    ]);
  });
  it('removes files the prior spec had and the new one does not', () => {
    const d = diffFileSet(desired, live({ '/a.yml': 'a\n', '/b.json': '{}\n' }), ['/old.yml', '/a.yml']);
    expect(d).toMatchObject({ action: 'update', reason: 'moved from /old.yml', fields: [{ path: '/old.yml', after: null }] });
  });
});

describe('configMismatch (Alertmanager reports its config re-serialised)', () => {
  it('accepts defaults added, secrets hidden and durations respelt', () => {
    const running = { global: { resolve_timeout: '5m' }, route: { receiver: 'a', repeat_interval: '1d', continue: false }, receivers: [{ name: 'a', slack_configs: [{ api_url: '<secret>', channel: '#x' }] }] };
    const wanted = { route: { receiver: 'a', repeat_interval: '24h' }, receivers: [{ name: 'a', slack_configs: [{ api_url: 'https://hooks.example.com/x', channel: '#x' }] }] };
    expect(configMismatch(running, wanted, '')).toBeNull();
  });
  it('names the first difference', () => {
    expect(configMismatch({ route: { receiver: 'b' } }, { route: { receiver: 'a' } }, '')).toBe('route.receiver is "b", not "a"');
    expect(configMismatch({ receivers: [{ name: 'a' }] }, { receivers: [{ name: 'a' }, { name: 'b' }] }, '')).toBe('receivers differs');
  });
});

describe('resource name in the spec', () => {
  const raw = {
    service: 'api',
    objective: 99.9,
    sli: { errorQuery: 'e[{{window}}]', totalQuery: 't[{{window}}]' },
    runbook: 'https://r.example.com/x',
  };
  const yaml = `kind: SLO\nname: first\nspec: ${JSON.stringify(raw)}\n---\nkind: SLO\nname: second\nspec: ${JSON.stringify({ ...raw, objective: 99 })}\n`;
  const ctx = { repoDir: '/repo', readFile: async () => Buffer.from(yaml) };
  it('is found again in the document file by kind and spec', async () => {
    expect(await resolveName('SLO', sloSpecSchema, sloSpecSchema.parse({ ...raw, objective: 99 }), { file: 'slo.yaml' }, ctx)).toBe('second');
  });
  it('comes from the loader when it passes it, and is refused when ambiguous', async () => {
    expect(await resolveName('SLO', sloSpecSchema, sloSpecSchema.parse(raw), { file: 'slo.yaml', name: 'given' }, ctx)).toBe('given');
    const same = `kind: SLO\nname: first\nspec: ${JSON.stringify(raw)}\n---\nkind: SLO\nname: second\nspec: ${JSON.stringify(raw)}\n`;
    const twice = { repoDir: '/repo', readFile: async () => Buffer.from(same) };
    await expect(resolveName('SLO', sloSpecSchema, sloSpecSchema.parse(raw), { file: 'slo.yaml' }, twice)).rejects.toThrow(/identical specs/);
  });
  it('must equal the resource name when written', () => {
    const source = { file: 'slo.yaml', line: 1, col: 1 };
    const r = { address: 'SLO/a', kind: 'SLO', name: 'a', target: undefined, dependsOn: [], spec: { name: 'b' }, source, positionOf: () => source };
    expect(validateName(r).map((d) => d.summary)).toEqual(['spec.name b differs from the resource name a']);
  });
});
