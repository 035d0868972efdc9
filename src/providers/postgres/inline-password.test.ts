/**
 * A password written inline (not `{ secret: PATH }`) is still a secret: the loader
 * seals the fields a provider declares sensitive, so the loaded stack, and
 * everything serialised from it (plans, the store), holds only a keyed digest.
 */
import { describe, expect, it } from 'vitest';
import { isSensitive, revealString } from '../../secrets/sensitive.js';
import { useTempStack } from '../../spec/testing/temp-stack.js';
import { ProviderRegistry } from '../registry.js';
import { postgresProviders } from './index.js';

const registry = new ProviderRegistry(postgresProviders);
const repo = useTempStack(registry, 'capstan-pg-inline-');
const PASSWORD = 'inline-Pa55-"quoted"';

describe('an inline PostgreSQL password', () => {
  it('is sealed on the server and on a role: never in the stack as JSON, yet given to the provider', async () => {
    const stack = await repo.load({
      'db.yaml': [
        `kind: PostgresServer\nname: main\nspec: { host: 127.0.0.1, user: postgres, password: '${PASSWORD}' }`,
        `kind: PostgresRole\nname: app\ntarget: main\nspec: { name: app, login: true, password: '${PASSWORD}' }`,
      ].join('\n---\n'),
    });
    expect(stack.diagnostics.filter((d) => d.severity === 'error').map((d) => d.summary)).toEqual([]);
    const server = stack.targets.find((t) => t.kind === 'PostgresServer')!.spec as { password: unknown };
    const role = stack.resources.find((r) => r.kind === 'PostgresRole')!.spec as { password: unknown };
    for (const value of [server.password, role.password]) {
      expect(isSensitive(value)).toBe(true);
      expect(revealString(value as string)).toBe(PASSWORD);
    }
    expect(JSON.stringify(stack)).not.toContain('inline-Pa55');
  });
});
