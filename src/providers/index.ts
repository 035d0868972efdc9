import { hostProviders } from './host/index.js';
import { observabilityProviders } from './observability/index.js';
import { postgresProviders } from './postgres/index.js';
import { ProviderRegistry } from './registry.js';
import { systemProviders } from './system/index.js';

/** Every provider that ships with Capstan. */
export function defaultRegistry(): ProviderRegistry {
  return new ProviderRegistry([...hostProviders, ...systemProviders, ...observabilityProviders, ...postgresProviders]);
}
