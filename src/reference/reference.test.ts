import { readdir, readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { defaultRegistry } from '../providers/index.js';
import { Sensitive } from '../secrets/sensitive.js';
import { specJsonSchema } from '../spec/json-schema.js';
import { kindReferencePages } from './generate.js';
import { GENERATED_NOTE_START, REGENERATE_COMMAND } from './kind-page.js';
import { documentKinds } from './kinds.js';

const REFERENCE_DIR = new URL('../../docs/reference/', import.meta.url);

/** The example as the schema sees it after the loader read its `{ secret: PATH }` references. */
function withSecretsRevealed(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withSecretsRevealed);
  if (value === null || typeof value !== 'object') return value;
  const entries = Object.entries(value);
  if (entries.length === 1 && entries[0]![0] === 'secret' && typeof entries[0]![1] === 'string') return new Sensitive('example secret', 'example-digest');
  return Object.fromEntries(entries.map(([k, v]) => [k, withSecretsRevealed(v)]));
}

describe('the kind reference (docs/reference)', () => {
  it(`is what the schemas generate (regenerate: ${REGENERATE_COMMAND})`, async () => {
    const pages = await kindReferencePages(defaultRegistry());
    const committed = (await readdir(REFERENCE_DIR).catch(() => [] as string[])).filter((f) => f.endsWith('.md'));
    const stale = `docs/reference is stale: run ${REGENERATE_COMMAND} and commit the result`;
    expect(committed.sort(), stale).toEqual([...pages.keys()].sort());
    for (const [name, text] of pages) {
      expect(await readFile(new URL(name, REFERENCE_DIR), 'utf8'), `${stale} (${name} differs)`).toBe(text);
      expect(text.startsWith(GENERATED_NOTE_START)).toBe(true);
    }
  });

  it('every field of every kind has a description, every value field an example, every kind an example that its schema accepts', async () => {
    const kinds = await documentKinds(defaultRegistry());
    expect(kinds.length).toBeGreaterThan(20);
    const missing: string[] = [];
    for (const k of kinds) {
      const gaps: string[] = [];
      for (const f of k.fields) {
        if (!f.description) gaps.push(`spec.${f.path}: no description`);
        // A field with fields of its own is exemplified by them.
        if (!f.hasFields && f.examples.length === 0) gaps.push(`spec.${f.path}: no example`);
      }
      if (k.example === undefined) gaps.push('no example spec (.meta({ examples: [...] }) on the spec schema)');
      else {
        const parsed = k.schema.safeParse(withSecretsRevealed(k.example));
        if (!parsed.success) gaps.push(`the example spec is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
      }
      missing.push(...gaps.map((g) => `${k.kind} ${g}`));
    }
    expect(missing).toEqual([]);
  });

  it('the JSON Schema editors use carries the same descriptions', async () => {
    const registry = await defaultRegistry().loadAll();
    const schema = specJsonSchema(registry) as { $defs: Record<string, { properties?: Record<string, { description?: string }> }> };
    const [exec] = await documentKinds(registry, ['Exec']);
    const command = exec!.fields.find((f) => f.path === 'command')!;
    expect(command.description).toEqual(expect.any(String));
    expect(schema.$defs['ExecSpec']!.properties!['command']!.description).toBe(command.description);
  });
});
