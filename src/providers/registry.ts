import type { AnyProvider, AnyResourceProvider, AnyTargetProvider } from './provider.js';

/** The set of kinds a stack may use, each with its provider. */
export class ProviderRegistry {
  private readonly byKind = new Map<string, AnyProvider>();

  constructor(providers: readonly AnyProvider[]) {
    for (const p of providers) {
      if (this.byKind.has(p.kind)) throw new Error(`two providers registered for kind ${p.kind}`);
      this.byKind.set(p.kind, p);
    }
  }

  get(kind: string): AnyProvider | undefined {
    return this.byKind.get(kind);
  }

  resource(kind: string): AnyResourceProvider | undefined {
    const p = this.byKind.get(kind);
    return p?.role === 'resource' ? p : undefined;
  }

  target(kind: string): AnyTargetProvider | undefined {
    const p = this.byKind.get(kind);
    return p?.role === 'target' ? p : undefined;
  }

  kinds(): string[] {
    return [...this.byKind.keys()].sort();
  }

  all(): AnyProvider[] {
    return [...this.byKind.values()];
  }
}
