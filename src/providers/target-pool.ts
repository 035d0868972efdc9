import type { Address, Resource } from '../spec/resource.js';
import type { ProviderContext, TargetHandle } from './provider.js';
import type { ProviderRegistry } from './registry.js';

/**
 * Opens each target at most once per run and shares the handle between plan,
 * apply and drift. A target that cannot be reached fails every resource on it
 * with the same error, once.
 */
export class TargetPool {
  private readonly handles = new Map<Address, Promise<TargetHandle>>();

  constructor(
    private readonly registry: ProviderRegistry,
    private readonly ctx: ProviderContext,
  ) {}

  connect(target: Resource): Promise<TargetHandle> {
    let handle = this.handles.get(target.address);
    if (!handle) {
      handle = this.registry.load([target.kind]).then(() => {
        const provider = this.registry.target(target.kind);
        if (!provider) throw new Error(`no provider for target kind ${target.kind}`);
        return provider.connect(target, this.ctx);
      });
      // A rejected connect stays cached: every resource on that target reports the same failure.
      handle.catch(() => undefined);
      this.handles.set(target.address, handle);
    }
    return handle;
  }

  /** The run's context (repository, secret digester) with another signal: what read, apply and refresh get. */
  contextFor(signal: AbortSignal): ProviderContext {
    return { ...this.ctx, signal };
  }

  async close(): Promise<void> {
    const all = [...this.handles.values()];
    this.handles.clear();
    await Promise.allSettled(all.map(async (h) => (await h).close()));
  }
}

/** Builds a target Resource from a stored spec, for orphans whose target left the spec. */
export function storedTarget(address: Address, kind: string, spec: unknown): Resource {
  const name = address.slice(address.indexOf('/') + 1);
  return {
    address,
    kind,
    name,
    target: undefined,
    dependsOn: [],
    spec,
    source: { file: '(state)', line: 0, col: 0 },
    positionOf: () => ({ file: '(state)', line: 0, col: 0 }),
  };
}
