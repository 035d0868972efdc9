/**
 * Stack-wide budgets through the real loader: over a budget the stack is invalid
 * with one diagnostic naming the budget, the amount and the biggest users; no
 * crash (`Invalid string length`), and the load stops spending.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { formatDiagnostic, type Diagnostic } from '../diag/diagnostic.js';
import { hostProviders } from '../providers/host/index.js';
import { ProviderRegistry } from '../providers/registry.js';
import { canonicalJson, specHash } from './load.js';
import { useTempStack } from './testing/temp-stack.js';

const repo = useTempStack(new ProviderRegistry(hostProviders), 'capstan-stack-budget-');
const MB = 1000 * 1000;

const hosts = (n: number) =>
  Array.from({ length: n }, (_, i) => `kind: Host\nname: web-${i}\nspec: { transport: local, root: /tmp/capstan-budget/web-${i}, groups: [web] }\n`).join('---\n');

const errors = (diagnostics: readonly Diagnostic[]) => diagnostics.filter((d) => d.severity === 'error');

describe('stack budgets', () => {
  it('15 MB rendered on each of 40 hosts: the rendered-bytes budget, not Invalid string length', async () => {
    const stack = await repo.load({
      'hosts.yaml': hosts(40),
      'big.yaml': 'kind: File\nname: big\ntarget: group:web\nspec: { path: /etc/big, template: big.liquid }\n',
      'big.liquid': `{{ host.name }}\n${`${'x'.repeat(99)}\n`.repeat(15 * MB / 100)}`,
    }, { renderTimeLimitMs: 30_000, maxRenderTimeMs: 600_000 }); // time is not what this test is about, on however busy a machine
    const found = errors(stack.diagnostics).map(formatDiagnostic);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(
      /^big\.yaml:1:1: the stack is over its rendered size \(the specs of all instances\) budget: \d+\.\d MiB spent \(and stopped there\), over the limit of 256\.0 MiB for the whole stack \(most used by File\/big 2\d\d\.\d MiB \(\d+ instances\); .*maxRenderedBytes/,
    );
    expect(stack.resources).toEqual([]);
    expect(stack.specHash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('8 YAML files of 15 MB: the stack YAML budget, checked before anything is parsed', async () => {
    const doc = (i: number) => `kind: File\nname: f${i}\ntarget: web-0\nspec:\n  path: /etc/f${i}\n  content: "${'y'.repeat(10_000)}"\n---\n`;
    const file = (f: number) => Array.from({ length: Math.ceil((15 * MB) / 10_060) }, (_, i) => doc(f * 10_000 + i)).join('');
    const files: Record<string, string> = { 'a-hosts.yaml': hosts(1) };
    for (let f = 0; f < 8; f++) files[`files-${f}.yaml`] = file(f);
    const stack = await repo.load(files);
    expect(stack.diagnostics.map(formatDiagnostic)).toEqual([
      expect.stringMatching(
        /^files-\d\.yaml:1:1: the stack's YAML files are 114\.\d MiB together \(9 files\), over the limit of 64\.0 MiB for the whole stack: nothing was parsed \(largest: files-\d\.yaml 14\.\d MiB, files-\d\.yaml 14\.\d MiB, .*maxStackYamlBytes/,
      ),
    ]);
    expect(stack.resources).toEqual([]);
    expect(stack.targets).toEqual([]);
  });

  it('a content repeated on every host of a group counts once per host', async () => {
    const stack = await repo.load(
      {
        'hosts.yaml': hosts(10),
        'motd.yaml': `kind: File\nname: motd\ntarget: group:web\nspec: { path: /etc/motd, content: "${'m'.repeat(200_000)}" }\n`,
      },
      { maxRenderedBytes: 1024 * 1024 },
    );
    expect(errors(stack.diagnostics).map(formatDiagnostic)).toEqual([
      expect.stringMatching(/^motd\.yaml:1:1: the stack is over its rendered size .* over the limit of 1\.0 MiB for the whole stack \(most used by File\/motd 1\.\d MiB \(\d instances\);/),
    ]);
    expect(stack.resources).toEqual([]);
  });

  it('slow templates on many hosts: the render time budget stops rendering and names the templates', async () => {
    const slow = '{% for i in (1..15000000) %}{% endfor %}';
    const files: Record<string, string> = { 'hosts.yaml': hosts(10), 'slow.liquid': slow };
    for (let f = 0; f < 3; f++) files[`slow-${f}.yaml`] = `kind: File\nname: slow-${f}\ntarget: group:web\nspec: { path: /etc/slow-${f}, template: slow.liquid }\n`;
    const stack = await repo.load(files, { renderTimeLimitMs: 300, maxRenderTimeMs: 1000 });
    const budget = errors(stack.diagnostics).filter((d) => /budget/.test(formatDiagnostic(d)));
    expect(budget.map(formatDiagnostic)).toEqual([
      expect.stringMatching(/the stack is over its template render time budget: \d+(?: ms|\.\d s) spent \(and stopped there\), over the limit of 1\.0 s for the whole stack \(most used by File\/slow-\d \(slow\.liquid\)/),
    ]);
    // Stopped at the budget: far fewer than the 30 renders the stack asks for were tried.
    const timedOut = errors(stack.diagnostics).filter((d) => /took longer than/.test(d.summary));
    expect(timedOut.length).toBeLessThan(10);
    expect(stack.resources).toEqual([]);
  });

  it('the spec hash of a large stack is that of its canonical JSON, fed entry by entry', () => {
    const r = (name: string) => ({ address: `File/${name}`, kind: 'File', name, target: undefined, dependsOn: [], spec: { path: `/${name}` } });
    // What the hash was before: sha256 of the whole array's canonical JSON as one string.
    const entries = ['a', 'b'].map((n) => ({ address: `File/${n}`, kind: 'File', target: null, dependsOn: [], spec: { path: `/${n}` } }));
    const asOneString = createHash('sha256').update(canonicalJson(entries)).digest('hex');
    expect(specHash([r('b'), r('a')] as never)).toBe(asOneString);
  });
});
