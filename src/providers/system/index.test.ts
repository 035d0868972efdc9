import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { hostProviders } from '../host/index.js';
import { ProviderRegistry } from '../registry.js';
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
      const schema = z.toJSONSchema(p.schema, { target: 'draft-2020-12', io: 'input' }) as { type?: string; properties?: Record<string, unknown> };
      expect(schema.type, p.kind).toBe('object');
      expect(Object.keys(schema.properties ?? {}).length, p.kind).toBeGreaterThan(0);
    }
  });
});
