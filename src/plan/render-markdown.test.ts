import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Sensitive } from '../secrets/sensitive.js';
import type { Action, Plan, PlannedChange } from './plan.js';
import { COMMENT_LIMIT, PLAN_COMMENT_MARKER, renderPlanMarkdown } from './render-markdown.js';

const change = (address: string, action: Action, fields: PlannedChange['fields'] = [], extra: Partial<PlannedChange> = {}) =>
  ({ address, kind: address.split('/')[0], target: 'Host/web-1', action, fields, ...extra }) as unknown as PlannedChange;

const plan = (changes: PlannedChange[], diagnostics: Plan['diagnostics'] = []) =>
  ({
    formatVersion: 1,
    stack: 'prod',
    source: { dir: '.', repo: null, ref: 'main', commit: '0123456789abcdef0123456789abcdef01234567', author: null, message: null, dirty: false },
    changes,
    diagnostics,
  }) as unknown as Plan;

const content = (before: string | null, after: string | null) => ({ path: 'content', before, after, format: 'text' as const });

/** Every line that opens or closes a fence, so a test can see they pair up. */
const fenceLines = (md: string) => md.split('\n').filter((l) => /^`{3,}/.test(l));

describe('renderPlanMarkdown', () => {
  it('labels an offline plan and a plan scoped by --base, as the text plan does', () => {
    const scoped = {
      ...plan([change('File/a', 'update', [content('old\n', 'new\n')])]),
      offline: true,
      priorSerial: 0,
      scope: { base: { ref: 'origin/main', commit: 'fedcba9876543210fedcba9876543210fedcba98' }, changed: 1, dependents: 0, planned: 1, total: 1000, skipped: 999 },
    } as unknown as Plan;
    const md = renderPlanMarkdown(scoped);
    expect(md).toContain('> [!IMPORTANT]\n> OFFLINE PLAN: compared with the last recorded state, not the live hosts');
    expect(md).toContain('There is no recorded state yet');
    expect(md).toMatch(/Planned 1 of 1,000 resources/);
    expect(md).toMatch(/999 not read/);
    const live = renderPlanMarkdown(plan([change('File/a', 'update', [content('old\n', 'new\n')])]));
    expect(live).not.toContain('OFFLINE');
    expect(live).not.toContain('not read');
  });

  it('starts with the marker, names the commit and stack, and counts changes per kind', () => {
    const md = renderPlanMarkdown(
      plan([
        change('File/a', 'create', [content(null, 'one\n')]),
        change('File/b', 'update', [content('old\n', 'new\n')]),
        change('Directory/d', 'delete'),
        change('File/c', 'noop', [], { adopt: true }),
        change('File/same', 'noop'),
      ]),
    );
    expect(md.split('\n')[0]).toBe(PLAN_COMMENT_MARKER);
    expect(md).toContain('commit `0123456789abcdef0123456789abcdef01234567` on `main`');
    expect(md).toContain('stack `prod`');
    expect(md).toContain('| `prod` | `Directory` | 0 | 0 | 0 | 1 | 0 |');
    expect(md).toContain('| `prod` | `File` | 1 | 1 | 0 | 0 | 1 |');
    expect(md).not.toContain('File/same');
    expect(md).toMatch(/<details><summary><code>~<\/code> <b>File\/b<\/b> on Host\/web-1: will be updated in place<\/summary>\n\n```diff\n~ content:\n@@ -1,1 \+1,1 @@\n-old\n\+new\n```/);
    expect(md).not.toContain('shortened');
  });

  it('warns about deletions, replacements and kinds whose delete loses data', () => {
    const md = renderPlanMarkdown(plan([change('File/gone', 'delete'), change('PostgresDatabase/app', 'replace', [], { reason: 'locale cannot change' }), change('File/x', 'update')]), {
      destructiveKinds: new Set(['PostgresDatabase']),
    });
    const warning = md.slice(md.indexOf('> [!WARNING]')).split('\n\n')[0]!;
    expect(warning).toMatch(/^> \[!WARNING\]\n> This plan deletes 1 resource and replaces 1 resource, 1 of a kind whose delete loses data:\n/);
    expect(warning).toContain('> - **delete** `File/gone` on `Host/web-1`\n');
    expect(warning).toContain('> - **replace** `PostgresDatabase/app` on `Host/web-1` (locale cannot change) — **PostgresDatabase is a destructive kind: this loses what it holds**');
    expect(warning).not.toContain('File/x` on');
  });

  it('shows rollouts as the text plan does', () => {
    const rollout = { group: 'web', batches: [['Host/web-1'], ['Host/web-2']], members: 2, maxFailures: 0, healthChecks: null };
    const md = renderPlanMarkdown({ ...plan([change('File/a', 'update')]), rollouts: [rollout] } as Plan);
    expect(md).toContain('```text\nRollout of group web: 2 batches, web-1 | web-2\n  between batches: no health check;');
  });

  it('puts diagnostics first and, with errors, says nothing can be applied', () => {
    const md = renderPlanMarkdown(plan([], [{ severity: 'error', summary: 'bad mode', address: 'File/a', source: { file: 'stack.yaml', line: 3, col: 5 } }]));
    expect(md.indexOf('> [!CAUTION]')).toBeLessThan(md.indexOf('stack.yaml:3:5: File/a: bad mode'));
    expect(md).toContain('The plan has errors: nothing can be applied until they are fixed.');
  });

  it('redacts secrets as the text plan does: never the value nor its digest', () => {
    const secret = new Sensitive('pa55-w0rd', 'hmac-sha256:abcd');
    const md = renderPlanMarkdown(
      plan([
        change('File/token', 'update', [{ path: 'content', before: '(sensitive)', after: '(sensitive)', sensitive: true, format: 'text' }]),
        change('Service/s', 'create', [{ path: 'environment.TOKEN', before: null, after: secret }]),
      ]),
    );
    expect(md).toContain('~ content: (sensitive value changed)');
    expect(md).toContain('+ environment.TOKEN: (sensitive)');
    expect(md).not.toMatch(/pa55|hmac-sha256/);
  });

  it('keeps content with backticks inside its fence', () => {
    const md = renderPlanMarkdown(plan([change('File/readme', 'create', [content(null, '```js\nx\n````\n')])]));
    expect(md).toContain('`````diff\n');
    expect(fenceLines(md).length % 2).toBe(0);
  });

  it('drops diffs first, then resource lines, and keeps the summary and warnings', () => {
    const changes = Array.from({ length: 40 }, (_, i) => change(`File/f${i}`, i < 5 ? 'delete' : 'update', [content('a\n'.repeat(50), 'b\n'.repeat(50))]));
    const full = renderPlanMarkdown(plan(changes));
    const noDiffs = renderPlanMarkdown(plan(changes), { budget: 8_000, fullPlanFile: 'plan.json' });
    expect(full.length).toBeGreaterThan(8_000);
    expect(noDiffs.length).toBeLessThanOrEqual(8_000);
    expect(noDiffs).toContain('This plan was shortened to fit in one comment; the full plan is in the JSON artefact `plan.json`.');
    expect(noDiffs).toContain('**Plan: 0 to create, 35 to update, 0 to replace, 5 to delete.**');
    expect(noDiffs).toContain('> - **delete** `File/f4` on `Host/web-1`');
    expect(noDiffs).toContain('- `~` `File/f39` on `Host/web-1`: will be updated in place');
    const tiny = renderPlanMarkdown(plan(changes), { budget: 1_200 });
    expect(tiny.length).toBeLessThanOrEqual(1_200);
    expect(tiny).toContain('**Plan: 0 to create');
    expect(tiny).toContain('run `capstan plan` for all of it');
    expect(tiny).not.toContain('File/f39');
    expect(fenceLines(noDiffs).length % 2).toBe(0);
  });

  // Many lines, so that many changes are well past the comment limit.
  const textArb = fc.array(fc.string({ minLength: 5, maxLength: 60 }), { minLength: 20, maxLength: 120 }).map((lines) => lines.join('\n'));
  const fieldArb = fc.record({
    path: fc.constantFrom('content', 'mode', 'owner'),
    before: fc.option(textArb, { nil: null }),
    after: fc.option(textArb, { nil: null }),
    format: fc.constantFrom('text' as const, undefined),
  });
  const changeArb = fc
    .record({
      kind: fc.constantFrom('File', 'Directory', 'PostgresDatabase', 'Weird|`Kind`'),
      name: fc.string({ minLength: 1, maxLength: 60 }),
      action: fc.constantFrom<Action>('create', 'update', 'replace', 'delete', 'noop'),
      fields: fc.array(fieldArb, { minLength: 1, maxLength: 3 }),
      adopt: fc.boolean(),
      reason: fc.option(fc.string({ maxLength: 200 }), { nil: undefined }),
    })
    .map((c) =>
      change(`${c.kind}/${c.name}`, c.action, [...c.fields, { path: 'password', before: null, after: new Sensitive('Canary-pr0p-77', 'hmac-sha256:feed') }], {
        adopt: c.adopt ? true : undefined,
        reason: c.reason,
      }),
    );
  const diagnosticArb = fc.record({ severity: fc.constantFrom('error' as const, 'warning' as const), summary: fc.string({ maxLength: 500 }) });

  it('never exceeds the comment limit, whatever the plan (property)', () => {
    let shortened = 0;
    fc.assert(
      fc.property(fc.array(changeArb, { minLength: 30, maxLength: 400 }), fc.array(diagnosticArb, { maxLength: 3 }), (changes, diagnostics) => {
        const md = renderPlanMarkdown(plan(changes, diagnostics), { destructiveKinds: new Set(['PostgresDatabase']), fullPlanFile: 'plan.json' });
        if (md.includes('was shortened')) shortened += 1;
        expect(md.length).toBeLessThanOrEqual(COMMENT_LIMIT);
        expect(md.startsWith(PLAN_COMMENT_MARKER + '\n')).toBe(true);
        expect(md).not.toMatch(/Canary-pr0p-77|hmac-sha256/);
        expect(fenceLines(md).length % 2).toBe(0);
      }),
      { numRuns: 30 },
    );
    // The generated plans do reach the limit, so the property says something.
    expect(shortened).toBeGreaterThan(5);
  });

  it('never exceeds a smaller budget either, and keeps the summary line when there is room for it (property)', () => {
    fc.assert(
      fc.property(fc.array(changeArb, { minLength: 1, maxLength: 80 }), fc.integer({ min: 700, max: 20_000 }), (changes, budget) => {
        const md = renderPlanMarkdown(plan(changes), { budget });
        expect(md.length).toBeLessThanOrEqual(budget);
        expect(fenceLines(md).length % 2).toBe(0);
        if (changes.some((c) => c.action !== 'noop' || c.adopt)) expect(md).toContain('**Plan: ');
      }),
      { numRuns: 200 },
    );
  });
});
