import type { AnyProvider, AnyResourceProvider, AnyTargetProvider } from './provider.js';

/**
 * A kind the registry knows before its provider module is loaded: its name, its
 * one-line description and how to import the provider. Loading is per kind, so a
 * run pays only for the kinds its stack (and its state) uses: a File-only stack
 * never imports the PostgreSQL or Prometheus providers, nor their clients.
 */
export interface ProviderRegistration {
  readonly kind: string;
  readonly description: string;
  readonly load: () => Promise<AnyProvider>;
}

/** One line per kind: `lazyKind('File', 'A regular file…', async () => (await import('./host/file.js')).fileProvider)`. */
export function lazyKind(kind: string, description: string, load: () => Promise<AnyProvider>): ProviderRegistration {
  return { kind, description, load };
}

/**
 * The set of kinds a stack may use, each with its provider.
 *
 * Contract: `kinds()`, `has()` and `description()` answer for every registered
 * kind at once. `get`, `resource` and `target` answer only for kinds whose
 * provider is loaded: call `load(kinds)` (or `loadAll()`) first, as the spec
 * loader, the planner, drift detection and apply do for the kinds they meet.
 * They return undefined for a kind nobody registered, and throw for a registered
 * kind not loaded yet (a bug in the caller, never a user error).
 */
export class ProviderRegistry {
  private readonly registered = new Map<string, ProviderRegistration>();
  private readonly loadedByKind = new Map<string, AnyProvider>();
  private readonly loading = new Map<string, Promise<void>>();

  constructor(providers: readonly (AnyProvider | ProviderRegistration)[]) {
    for (const p of providers) {
      if (this.registered.has(p.kind)) throw new Error(`two providers registered for kind ${p.kind}`);
      if ('load' in p) {
        this.registered.set(p.kind, p);
      } else {
        this.registered.set(p.kind, { kind: p.kind, description: p.description, load: () => Promise.resolve(p) });
        this.loadedByKind.set(p.kind, p);
      }
    }
  }

  /** Imports the providers of these kinds (unknown kinds are ignored: validation reports them). */
  async load(kinds: Iterable<string | null | undefined>): Promise<this> {
    const pending: Promise<void>[] = [];
    for (const kind of new Set(kinds)) {
      if (kind == null || this.loadedByKind.has(kind)) continue;
      const registration = this.registered.get(kind);
      if (!registration) continue;
      let loading = this.loading.get(kind);
      if (!loading) {
        loading = registration.load().then((provider) => {
          if (provider.kind !== kind) throw new Error(`the provider loaded for kind ${kind} is for kind ${provider.kind}`);
          this.loadedByKind.set(kind, provider);
        });
        this.loading.set(kind, loading);
        loading.catch(() => this.loading.delete(kind));
      }
      pending.push(loading);
    }
    await Promise.all(pending);
    return this;
  }

  /** Imports every registered provider (`capstan schema`, conformance checks). */
  loadAll(): Promise<this> {
    return this.load(this.registered.keys());
  }

  has(kind: string): boolean {
    return this.registered.has(kind);
  }

  description(kind: string): string | undefined {
    return this.registered.get(kind)?.description;
  }

  get(kind: string): AnyProvider | undefined {
    const p = this.loadedByKind.get(kind);
    if (p === undefined && this.registered.has(kind)) {
      throw new Error(`the provider for kind ${kind} is not loaded: call registry.load([${JSON.stringify(kind)}]) first`);
    }
    return p;
  }

  resource(kind: string): AnyResourceProvider | undefined {
    const p = this.get(kind);
    return p?.role === 'resource' ? p : undefined;
  }

  target(kind: string): AnyTargetProvider | undefined {
    const p = this.get(kind);
    return p?.role === 'target' ? p : undefined;
  }

  /** Every registered kind, loaded or not, sorted. */
  kinds(): string[] {
    return [...this.registered.keys()].sort();
  }

  /** The providers loaded so far. */
  loaded(): AnyProvider[] {
    return [...this.loadedByKind.values()];
  }

  /** Every provider; only after `loadAll()`. */
  all(): AnyProvider[] {
    return this.kinds().map((k) => this.get(k)!);
  }
}
