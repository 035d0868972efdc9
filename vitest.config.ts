import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // @actions/workflow-parser (dev, checks the CI templates) imports its JSON schema without
    // an import attribute, which Node 20 refuses; inlining lets vite load it.
    server: { deps: { inline: ['@actions/workflow-parser'] } },
  },
});
