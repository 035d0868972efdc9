/**
 * The OpenAPI document without a running controller (`capstan docs`, tests): the
 * real server built with no stacks on an in-memory store, never listening.
 */
import { pino } from 'pino';
import { defaultRegistry } from '../providers/index.js';
import { systemClock } from '../reconcile/clock.js';
import type { ControllerConfig } from '../reconcile/config.js';
import { Controller } from '../reconcile/controller.js';
import { EventBus } from '../reconcile/events.js';
import { stackEngine } from '../reconcile/run-stack.js';
import { openStore } from '../state/open.js';
import { controllerStoreOf } from '../state/store.js';
import { buildServer } from './app.js';
import { ControllerMetrics } from './metrics.js';
import { registeredRoutes } from './openapi.js';

const NO_STACKS: ControllerConfig = {
  file: '(none)',
  listen: { host: '127.0.0.1', port: 0 },
  state: 'sqlite::memory:',
  cacheDir: undefined,
  concurrency: 1,
  passTimeoutMs: 60_000,
  shutdownGraceMs: 0,
  trustProxy: false,
  webhookRateLimit: 20,
  webhookConcurrency: 4,
  webhookMaxBytes: 1024 * 1024,
  audit: { retentionMs: null, maxRows: null },
  stacks: [],
};

/** The document and the routes the server registered (`METHOD URL`). */
export async function openApiDocumentAndRoutes(): Promise<{ document: Record<string, unknown>; routes: readonly string[] }> {
  const store = await openStore(NO_STACKS.state);
  try {
    const controllerStore = controllerStoreOf(store);
    const logger = pino({ level: 'silent' });
    const engine = stackEngine({ registry: defaultRegistry(), store, cacheDir: undefined, gitTimeoutMs: 60_000 });
    const events = new EventBus();
    const metrics = new ControllerMetrics('docs');
    const controller = new Controller({
      stacks: [],
      store,
      controllerStore,
      engine,
      events,
      clock: systemClock,
      logger,
      actor: { user: 'docs', host: 'docs', pid: process.pid },
      replicaId: 'docs',
      concurrency: 1,
      passTimeoutMs: NO_STACKS.passTimeoutMs,
    });
    const app = await buildServer({ config: NO_STACKS, controller, store, controllerStore, engine, events, metrics, logger });
    try {
      await app.ready();
      return { document: app.swagger() as unknown as Record<string, unknown>, routes: registeredRoutes(app) };
    } finally {
      await app.close();
    }
  } finally {
    await store.close();
  }
}

export async function openApiDocument(): Promise<Record<string, unknown>> {
  return (await openApiDocumentAndRoutes()).document;
}
