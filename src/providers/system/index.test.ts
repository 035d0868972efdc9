import { describe, expect, it } from 'vitest';
import { hostProviders } from '../host/index.js';
import { ProviderRegistry } from '../registry.js';
import { kindSpecJsonSchema } from '../../spec/json-schema.js';
import { systemProviders } from './index.js';

describe('systemProviders', () => {
  it('are resource providers living on a Host, with kinds that do not clash with the host family', () => {
    const registry = new ProviderRegistry([...hostProviders, ...systemProviders]);
    expect(systemProviders.map((p) => p.kind)).toEqual(['Package', 'Group', 'User', 'Sysctl', 'Firewall', 'Route', 'Exec']);
    for (const p of systemProviders) {
      expect(p.role).toBe('resource');
      expect(p.role === 'resource' && p.targetKind).toBe('Host');
      expect(registry.target('Host')).toBeDefined();
    }
  });

  it('give editors a JSON Schema of what users write', () => {
    for (const p of systemProviders) {
      const schema = kindSpecJsonSchema(p.schema) as { type?: string; properties?: Record<string, unknown> };
      expect(schema.type, p.kind).toBe('object');
      expect(Object.keys(schema.properties ?? {}).length, p.kind).toBeGreaterThan(0);
    }
    // A field that takes a secret offers what users write there: { secret: PATH }.
    const exec = JSON.stringify(kindSpecJsonSchema(systemProviders.find((p) => p.kind === 'Exec')!.schema));
    expect(exec).toContain('"required":["secret"]');
  });

  it('describe every field of User, Group, Package and Sysctl, with examples, for the reference docs', () => {
    for (const kind of ['User', 'Group', 'Package', 'Sysctl']) {
      const schema = kindSpecJsonSchema(systemProviders.find((p) => p.kind === kind)!.schema) as { properties: Record<string, { description?: string; examples?: unknown[] }> };
      for (const [field, property] of Object.entries(schema.properties)) {
        expect(property.description, `${kind}.${field}`).toMatch(/\w/);
        expect(property.examples ?? [], `${kind}.${field}`).not.toEqual([]);
      }
    }
  });
});
