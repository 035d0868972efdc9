/**
 * `capstan explain File.spec.mode`, like `kubectl explain`: one field (its type,
 * required or default, description, examples and the fields below it), or a
 * kind with all its fields. Paths: `KIND`, `KIND.spec`, `KIND.spec.a.b` (or
 * `KIND.a.b`); list items and map values need no `[]` or `<key>`
 * (`Firewall.spec.chains.rules` is `chains.<key>.rules`).
 */
import type { FieldDoc } from './fields.js';
import { describeField, exampleDocument, inline, requiredText, roleText } from './kind-page.js';
import type { KindDoc } from './kinds.js';

/** `{ kind, path }` of an explain argument: the path inside spec, '' for the whole kind. */
export function parseExplainPath(arg: string): { kind: string; path: string } {
  const [kind = '', ...rest] = arg.split('.');
  const parts = rest[0] === 'spec' ? rest.slice(1) : rest;
  return { kind, path: parts.join('.') };
}

/** The fields at a path written without `[]` and `<key>`: `chains.rules` finds `chains.<key>.rules`. */
export function findField(kind: KindDoc, path: string): FieldDoc | undefined {
  const wanted = normalise(path);
  return kind.fields.find((f) => normalise(f.path) === wanted);
}

function normalise(path: string): string {
  return path
    .replace(/\[\]/g, '')
    .split('.')
    .filter((p) => p !== '<key>' && p !== '')
    .join('.');
}

export function explainKind(kind: KindDoc): string {
  const lines = [`KIND:     ${kind.kind}`, `ROLE:     ${roleText(kind)}`, '', 'DESCRIPTION:', indent(kind.description), ''];
  if (kind.example !== undefined) lines.push('EXAMPLE:', indent(exampleDocument(kind).trimEnd()), '');
  lines.push('FIELDS:', ...fieldList(kind.fields.filter((f) => !f.path.includes('.') && !f.path.includes('['))), '');
  return lines.join('\n');
}

export function explainField(kind: KindDoc, field: FieldDoc): string {
  const lines = [`KIND:     ${kind.kind}`, `FIELD:    spec.${field.path} <${field.type}>`, `          ${requiredText(field)}`, '', 'DESCRIPTION:', indent(describeField(field) || '(no description yet)'), ''];
  if (field.examples.length > 0) lines.push('EXAMPLES:', ...field.examples.map((e) => indent(inline(e))), '');
  const children = kind.fields.filter((f) => isChildOf(f.path, field.path));
  if (children.length > 0) lines.push('FIELDS:', ...fieldList(children), '');
  return lines.join('\n');
}

function isChildOf(path: string, parent: string): boolean {
  for (const sep of ['.', '[].', '.<key>.']) {
    if (path.startsWith(parent + sep)) {
      const rest = path.slice(parent.length + sep.length);
      if (!rest.includes('.') && !rest.includes('[')) return true;
    }
  }
  return false;
}

function fieldList(fields: readonly FieldDoc[]): string[] {
  const out: string[] = [];
  for (const f of fields) {
    const name = f.path.split(/\.|\[\]\./).pop() ?? f.path;
    out.push(`  ${name}\t<${f.type}>${f.required ? ' -required-' : f.hasDefault ? ` (default ${inline(f.default)})` : ''}`);
    const text = describeField(f);
    if (text) out.push(indent(text, '    '));
    out.push('');
  }
  return out;
}

function indent(text: string, by = '  '): string {
  return text
    .split('\n')
    .map((l) => by + l)
    .join('\n');
}
