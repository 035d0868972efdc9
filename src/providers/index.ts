import { hostProviders } from './host/index.js';
import { observabilityProviders } from './observability/index.js';
import { ProviderRegistry } from './registry.js';

/** Every provider that ships with Capstan. */
export function defaultRegistry(): ProviderRegistry {
  return new ProviderRegistry([...hostProviders, ...observabilityProviders]);
}
