import { describe, expect, it } from 'vitest';
import { builtinKinds, defaultRegistry } from './index.js';
import { lazyKind, ProviderRegistry } from './registry.js';
import type { AnyProvider } from './provider.js';

describe('ProviderRegistry', () => {
  it('knows every built-in kind and its description before loading any provider', () => {
    const registry = defaultRegistry();
    expect(registry.kinds()).toContain('File');
    expect(registry.description('File')).toMatch(/regular file/);
    expect(registry.loaded()).toEqual([]);
  });

  it('loads only the kinds asked for', async () => {
    const registry = await defaultRegistry().load(['Host', 'File', 'NoSuchKind', null]);
    expect(registry.loaded().map((p) => p.kind).sort()).toEqual(['File', 'Host']);
    expect(registry.resource('File')?.kind).toBe('File');
    expect(registry.target('Host')?.kind).toBe('Host');
    expect(registry.get('NoSuchKind')).toBeUndefined();
    expect(() => registry.get('Package')).toThrow(/the provider for kind Package is not loaded/);
  });

  it("registers each built-in kind with its provider's own kind and description", async () => {
    const registry = await defaultRegistry().loadAll();
    for (const registration of builtinKinds) {
      const provider = registry.get(registration.kind);
      expect(provider?.kind).toBe(registration.kind);
      expect(provider?.description, registration.kind).toBe(registration.description);
    }
  });

  it('imports a kind once however many callers load it at the same time', async () => {
    let imports = 0;
    const provider = { role: 'target', kind: 'Probe', description: 'd' } as unknown as AnyProvider;
    const registry = new ProviderRegistry([lazyKind('Probe', 'd', async () => (imports++, provider))]);
    await Promise.all([registry.load(['Probe']), registry.load(['Probe']), registry.load(['Probe'])]);
    expect(imports).toBe(1);
    expect(registry.get('Probe')).toBe(provider);
  });

  it('refuses a module whose provider is for another kind', async () => {
    const provider = { role: 'target', kind: 'Other', description: 'd' } as unknown as AnyProvider;
    const registry = new ProviderRegistry([lazyKind('Probe', 'd', async () => provider)]);
    await expect(registry.load(['Probe'])).rejects.toThrow(/for kind Other/);
  });
});
