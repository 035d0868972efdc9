import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { secretOnly, secretString } from '../secrets/sensitive.js';
import { kindSpecJsonSchema } from '../spec/json-schema.js';
import { flattenFields } from './fields.js';

const fields = (schema: z.ZodType) => flattenFields(kindSpecJsonSchema(schema));

describe('flattenFields', () => {
  it('gives each field a dotted path with type, required or default, description and examples', () => {
    const schema = z.strictObject({
      mode: z.string().default('0644').meta({ description: 'Permission bits.', examples: ['0640'] }),
      owner: z.object({ name: z.string().meta({ description: 'Login name.', examples: ['root'] }) }).optional(),
    });
    expect(fields(schema)).toEqual([
      { path: 'mode', type: 'string', required: false, hasDefault: true, default: '0644', description: 'Permission bits.', examples: ['0640'], hasFields: false },
      { path: 'owner', type: 'object', required: false, hasDefault: false, examples: [], hasFields: true },
      { path: 'owner.name', type: 'string', required: true, hasDefault: false, description: 'Login name.', examples: ['root'], hasFields: false },
    ]);
  });

  it('lists the fields of list items at path[] and of map values at path.<key>', () => {
    const schema = z.strictObject({
      rules: z.array(z.strictObject({ name: z.string() })),
      sets: z.record(z.string(), z.strictObject({ type: z.enum(['ipv4_addr', 'inet_service']) })).optional(),
      tags: z.array(z.string()).optional(),
    });
    expect(fields(schema).map((f) => [f.path, f.type])).toEqual([
      ['rules', 'list of object'],
      ['rules[].name', 'string'],
      ['sets', 'map of object'],
      ['sets.<key>.type', '"ipv4_addr" | "inet_service"'],
      ['tags', 'list of string'],
    ]);
  });

  it('merges the variants of a union: a field only some have says when', () => {
    const schema = z.discriminatedUnion('transport', [
      z.strictObject({ transport: z.literal('local'), root: z.string().optional() }),
      z.strictObject({ transport: z.literal('ssh'), root: z.string().optional(), address: z.string() }),
    ]);
    const byPath = new Map(fields(schema).map((f) => [f.path, f]));
    expect(byPath.get('transport')).toMatchObject({ type: '"local" | "ssh"', required: true });
    expect(byPath.get('root')!.when).toBeUndefined();
    expect(byPath.get('address')).toMatchObject({ when: 'when transport: ssh', required: true });
  });

  it('shows a secret field as a string or a secret reference, and a nullable field with its description', () => {
    const schema = z.strictObject({
      password: secretString().optional(),
      // .meta clones the schema: the clone still takes only { secret: PATH }.
      token: secretOnly().meta({ description: 'A token.', examples: [{ secret: 'secrets/token.age' }] }),
      expires: z.string().meta({ description: 'When.', examples: ['2030-01-01'] }).nullable(),
    });
    const [password, token, expires, ...rest] = fields(schema);
    expect(rest).toEqual([]);
    expect(password).toMatchObject({ path: 'password', type: 'string | { secret: PATH }', hasFields: false });
    expect(token).toMatchObject({ path: 'token', type: '{ secret: PATH }', required: true, description: 'A token.', hasFields: false });
    expect(expires).toMatchObject({ path: 'expires', type: 'string | null', description: 'When.', examples: ['2030-01-01'] });
  });
});
