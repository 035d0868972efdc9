import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { formatDiagnostic } from '../diag/diagnostic.js';
import { didYouMean, formatPath, parseSpec, readEnvelope, type LoadedDocument } from './envelope.js';
import { parseYamlDocuments } from './parse-yaml.js';

function envelopeOf(yaml: string) {
  const parsed = parseYamlDocuments(yaml, 'doc.yaml');
  expect(parsed.diagnostics).toEqual([]);
  return readEnvelope(parsed.documents[0]!);
}

function documentOf(yaml: string): LoadedDocument {
  const e = envelopeOf(yaml);
  expect(e.diagnostics.map(formatDiagnostic)).toEqual([]);
  return e.document!;
}

const specErrors = (schema: z.ZodType, yaml: string): string[] => {
  const r = parseSpec(schema, documentOf(yaml));
  return r.ok ? [] : r.diagnostics.map(formatDiagnostic);
};

describe('readEnvelope', () => {
  it('reads a valid envelope', () => {
    const e = envelopeOf('kind: File\nname: motd\ntarget: group:web\ndependsOn: [Directory/app, Directory/app]\nspec: { path: /x }\n');
    expect(e.valid).toBe(true);
    expect(e.document).toMatchObject({
      kind: 'File',
      name: 'motd',
      target: 'group:web',
      dependsOn: ['Directory/app', 'Directory/app'],
      dependsOnAt: [0, 1],
      spec: { path: '/x' },
      index: 0,
      source: { file: 'doc.yaml', line: 1, col: 1 },
    });
  });

  it('defaults a missing or empty spec to an empty map', () => {
    expect(documentOf('kind: Host\nname: h\n').spec).toEqual({});
    expect(documentOf('kind: Host\nname: h\nspec:\n').spec).toEqual({});
  });

  it('reports every envelope problem at its node', () => {
    const e = envelopeOf(
      [
        'kind: file',
        'name: 123',
        'target: "Web 1"',
        'dependsOn: File/x',
        'spec: [1]',
        'specs: {}',
        'labels: {}',
      ].join('\n'),
    );
    expect(e.valid).toBe(false);
    expect(e.document).toBeUndefined();
    expect(e.diagnostics.map(formatDiagnostic)).toEqual([
      'doc.yaml:1:7: kind "file" must be PascalCase (e.g. File)',
      'doc.yaml:2:7: name must be a string, not the number 123 (quote it: name: "123")',
      'doc.yaml:3:9: target "Web 1" is not a valid name (a target name, or group:NAME for every member of a group)',
      'doc.yaml:4:12: dependsOn must be a list of addresses (write dependsOn: [File/x])',
      'doc.yaml:5:7: spec must be a map, not a list',
      'doc.yaml:6:1: unknown key "specs" (did you mean "spec"?) (a document has only kind, name, target, dependsOn, notify, spec; the kind\'s own fields go under spec)',
      'doc.yaml:7:1: unknown key "labels" (a document has only kind, name, target, dependsOn, notify, spec; the kind\'s own fields go under spec)',
    ]);
  });

  it('keeps a document with a valid identity but a bad envelope, so it can still be checked', () => {
    const e = envelopeOf('kind: File\nname: x\ntarget: 7\ndependsOn: [File/a, 3, nope]\nspec: { path: /x }\nextra: 1\n');
    expect(e.valid).toBe(false);
    expect([...e.invalidKeys].sort()).toEqual(['dependsOn', 'target']);
    expect(e.document).toMatchObject({ kind: 'File', name: 'x', target: undefined, dependsOn: ['File/a'], dependsOnAt: [0] });
    expect(e.diagnostics.map((d) => d.address)).toEqual(['File/x', 'File/x', 'File/x', 'File/x']);
  });

  it('requires kind and name', () => {
    const e = envelopeOf('spec: {}\n');
    expect(e.diagnostics.map(formatDiagnostic)).toEqual([
      'doc.yaml:1:1: missing required key "kind" (the resource kind, e.g. kind: File)',
      'doc.yaml:1:1: missing required key "name" (lowercase letters, digits, ".", "_" and "-")',
    ]);
  });
});

describe('parseSpec', () => {
  const fileSchema = z.strictObject({
    path: z.string(),
    mode: z.string().regex(/^0[0-7]{3}$/).default('0644'),
    owner: z.strictObject({ user: z.string(), group: z.string().optional() }).optional(),
    checks: z.array(z.strictObject({ command: z.string() })).default([]),
  });

  it('returns the parsed spec with defaults', () => {
    const r = parseSpec(fileSchema, documentOf('kind: File\nname: x\nspec: { path: /a }\n'));
    expect(r).toEqual({ ok: true, spec: { path: '/a', mode: '0644', checks: [] } });
  });

  it('maps every issue to the position of its node', () => {
    const yaml = [
      'kind: File',
      'name: x',
      'spec:',
      '  mode: 644',
      '  owner:',
      '    usr: root',
      '  checks:',
      '    - command: true',
      '    - comand: ls',
    ].join('\n');
    expect(specErrors(fileSchema, yaml)).toEqual([
      'doc.yaml:4:3: File/x: spec.path: required (string)',
      'doc.yaml:4:9: File/x: spec.mode: Invalid input: expected string, received number',
      'doc.yaml:6:5: File/x: spec.owner.user: required (string)',
      'doc.yaml:6:5: File/x: spec.owner.usr: unknown key (did you mean "user"?) (known keys: group, user)',
      'doc.yaml:8:16: File/x: spec.checks[0].command: Invalid input: expected string, received boolean',
      'doc.yaml:9:7: File/x: spec.checks[1].command: required (string)',
      'doc.yaml:9:7: File/x: spec.checks[1].comand: unknown key (did you mean "command"?) (known keys: command)',
    ]);
  });

  it('reports the closest branch of a union', () => {
    const schema = z.strictObject({
      transport: z.discriminatedUnion('kind', [
        z.strictObject({ kind: z.literal('local') }),
        z.strictObject({ kind: z.literal('ssh'), address: z.string(), port: z.number().int().default(22) }),
      ]),
      content: z.union([z.string(), z.strictObject({ base64: z.string() })]).optional(),
    });
    expect(specErrors(schema, 'kind: Host\nname: h\nspec:\n  transport: { kind: ssh, adress: x }\n  content: { base64: 1 }\n')).toEqual([
      'doc.yaml:4:14: Host/h: spec.transport.address: required (string)',
      'doc.yaml:4:27: Host/h: spec.transport.adress: unknown key (did you mean "address"?) (known keys: address, kind, port)',
      'doc.yaml:5:22: Host/h: spec.content.base64: Invalid input: expected string, received number',
    ]);
    expect(specErrors(schema, 'kind: Host\nname: h\nspec:\n  transport: { kind: ftp }\n  content: 12\n')).toEqual([
      'doc.yaml:4:22: Host/h: spec.transport.kind: Invalid discriminator value. Expected \'local\' | \'ssh\'',
      'doc.yaml:5:12: Host/h: spec.content: expected string or object, got the number 12',
    ]);
  });

  it('reports a schema that throws instead of crashing', () => {
    const schema = z.strictObject({ a: z.string() }).transform(() => {
      throw new Error('boom');
    });
    expect(specErrors(schema, 'kind: X\nname: x\nspec: { a: b }\n')).toEqual(['doc.yaml:3:7: X/x: the X schema failed: boom']);
  });
});

describe('helpers', () => {
  it('suggests close candidates only', () => {
    expect(didYouMean('depends_on', ['kind', 'dependsOn'])).toBe('dependsOn');
    expect(didYouMean('Fiel', ['File', 'Host'])).toBe('File');
    expect(didYouMean('contnet', ['content', 'path'])).toBe('content');
    expect(didYouMean('banana', ['File', 'Host'])).toBeUndefined();
    expect(didYouMean('x'.repeat(10_000), ['x'])).toBeUndefined();
  });

  it('formats paths', () => {
    expect(formatPath(['spec', 'listen', 0, 'port'])).toBe('spec.listen[0].port');
    expect(formatPath(['spec', 'a key'])).toBe('spec["a key"]');
  });
});
