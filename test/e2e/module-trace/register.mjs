// `node --import ./register.mjs ...`: appends the URL of every ES module the
// process loads to the file named by CAPSTAN_TEST_MODULE_LOG, one per line.
// Used by test/e2e/lazy-loading.test.ts.
import { register } from 'node:module';

register(new URL('./hooks.mjs', import.meta.url), { data: { log: process.env.CAPSTAN_TEST_MODULE_LOG } });
