/**
 * docs/api.md from the controller's OpenAPI document: every operation with the
 * role it needs, its parameters, its request body and its answers, fields
 * flattened like the kind pages. Pure.
 */
import { flattenFields, type FieldDoc } from './fields.js';
import { generatedNote, inline } from './kind-page.js';

type JsonObject = Record<string, unknown>;

const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

interface Operation {
  readonly method: string;
  readonly path: string;
  readonly op: JsonObject;
}

/** Every operation of the document, in its order. */
export function operationsOf(document: JsonObject): Operation[] {
  const out: Operation[] = [];
  for (const [path, item] of Object.entries((document['paths'] ?? {}) as Record<string, JsonObject>)) {
    for (const method of METHODS) {
      const op = item[method];
      if (op && typeof op === 'object') out.push({ method: method.toUpperCase(), path, op: op as JsonObject });
    }
  }
  return out;
}

export function apiPage(document: JsonObject): string {
  const info = (document['info'] ?? {}) as JsonObject;
  const ops = operationsOf(document);
  const lines = [
    generatedNote('the route schemas (src/server/route-schemas.ts)'),
    '',
    '# HTTP API',
    '',
    String(info['description'] ?? ''),
    '',
    `OpenAPI ${String(document['openapi'])} document: \`GET /api/openapi.json\` (any token, viewer and up); API version ${String(info['version'])}.`,
    'Roles go viewer < operator < admin: a token may call what its role and every lower role may. Without a valid token the answer is 401, with too low a role 403.',
    'Objects may carry more fields than listed: clients ignore what they do not know.',
    '',
    '| method | path | role | summary |',
    '| --- | --- | --- | --- |',
    ...ops.map((o) => `| ${o.method} | [\`${o.path}\`](#${anchor(o)}) | ${roleOf(o.op)} | ${cell(String(o.op['summary'] ?? ''))} |`),
    '',
  ];
  for (const o of ops) lines.push(...operationSection(o));
  return lines.join('\n');
}

function roleOf(op: JsonObject): string {
  const role = op['x-capstan-role'];
  return typeof role === 'string' ? role : 'none';
}

function anchor(o: Operation): string {
  return `${o.method} ${o.path}`
    .toLowerCase()
    .replace(/[^a-z0-9 -]/g, '')
    .replace(/ /g, '-');
}

function operationSection({ method, path, op }: Operation): string[] {
  const role = roleOf(op);
  const lines = [`## ${method} ${path}`, '', String(op['summary'] ?? '') + '.', ''];
  if (typeof op['description'] === 'string') lines.push(op['description'], '');
  lines.push(role === 'none' ? 'Role: none (no token).' : `Role: **${role}** (\`x-capstan-role: ${role}\`).`, '');
  const parameters = Array.isArray(op['parameters']) ? (op['parameters'] as JsonObject[]) : [];
  if (parameters.length > 0) {
    lines.push('| parameter | in | required | description |', '| --- | --- | --- | --- |');
    for (const p of parameters) {
      const schema = (p['schema'] ?? {}) as JsonObject;
      const description = String(p['description'] ?? schema['description'] ?? '');
      lines.push(`| \`${String(p['name'])}\` | ${String(p['in'])} | ${p['required'] ? 'yes' : 'no'} | ${cell(description)} |`);
    }
    lines.push('');
  }
  const body = jsonSchemaOfContent((op['requestBody'] as JsonObject | undefined)?.['content']);
  if (body) lines.push('Request body (JSON):', '', ...fieldTable(body));
  const responses = (op['responses'] ?? {}) as Record<string, JsonObject>;
  lines.push('Answers:', '');
  for (const [status, r] of Object.entries(responses)) {
    const content = r['content'] as JsonObject | undefined;
    const schema = jsonSchemaOfContent(content);
    const type = content && !schema ? ` (${Object.keys(content).join(', ')})` : '';
    lines.push(`- \`${status}\`${type}: ${String(r['description'] ?? '')}`);
    if (schema) {
      const table = fieldTable(schema);
      if (table.length > 0) lines.push('', ...table.map((l) => (l === '' ? '' : `  ${l}`)));
    }
  }
  lines.push('');
  return lines;
}

function jsonSchemaOfContent(content: unknown): JsonObject | undefined {
  if (!content || typeof content !== 'object') return undefined;
  const json = (content as Record<string, JsonObject>)['application/json'];
  return json?.['schema'] as JsonObject | undefined;
}

function fieldTable(schema: JsonObject): string[] {
  const list = schema['type'] === 'array' && schema['items'] && typeof schema['items'] === 'object';
  const fields: FieldDoc[] = flattenFields(list ? (schema['items'] as JsonObject) : schema);
  if (fields.length === 0) return [];
  return [
    ...(list ? ['A list; each item:', ''] : []),
    '| field | type | required | description |',
    '| --- | --- | --- | --- |',
    ...fields.map((f) => `| \`${f.path}\` | ${cell(f.type)} | ${f.required ? 'yes' : 'no'} | ${cell([f.description ?? '', f.examples.length > 0 ? `Example: \`${inline(f.examples[0])}\`` : ''].filter(Boolean).join(' '))} |`),
    '',
  ];
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}
