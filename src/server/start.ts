/**
 * Everything `capstan serve` runs, put together: the store, the engine, the
 * reconcile loop and the HTTP server. `stop` is the graceful shutdown: no new
 * work, in-flight applies finish (or are stopped through their AbortSignal
 * after the grace period and recorded as interrupted), stack locks released,
 * server and store closed.
 */
import os from 'node:os';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { RecoveryFiles } from '../apply/recovery.js';
import { defaultRegistry } from '../providers/index.js';
import { systemClock, type Clock } from '../reconcile/clock.js';
import type { ControllerConfig } from '../reconcile/config.js';
import { Controller } from '../reconcile/controller.js';
import { EventBus } from '../reconcile/events.js';
import { stackEngine, type StackEngine } from '../reconcile/run-stack.js';
import { Keyring } from '../secrets/keyring.js';
import { openStore } from '../state/open.js';
import { controllerStoreOf, type Store } from '../state/store.js';
import { buildServer } from './app.js';
import { scheduleAuditRetention } from './audit.js';
import { ControllerMetrics } from './metrics.js';
import { reloadStacks, type ReloadResult } from './reload.js';

export const VERSION = '0.1.0';

export interface RunningController {
  readonly url: string;
  readonly app: FastifyInstance;
  readonly controller: Controller;
  readonly store: Store;
  /** Re-reads the stacks of the config file (SIGHUP); an invalid file changes nothing. */
  reloadStacks(): Promise<ReloadResult>;
  /** Graceful: see the module comment. Safe to call twice. */
  stop(graceMs?: number): Promise<void>;
}

export interface StartOptions {
  readonly logger: Logger;
  readonly clock?: Clock;
  readonly engine?: StackEngine;
  readonly leaseRetryMs?: number;
}

export async function startController(config: ControllerConfig, options: StartOptions): Promise<RunningController> {
  const { logger } = options;
  // The identity first: a controller that cannot read its secrets does not start.
  const keyring = options.engine ? undefined : await keyringOf(config);
  const store = await openStore(config.state);
  const controllerStore = controllerStoreOf(store);
  const engine =
    options.engine ??
    stackEngine({
      registry: defaultRegistry(),
      store,
      cacheDir: config.cacheDir,
      gitTimeoutMs: Math.min(config.passTimeoutMs, 10 * 60_000),
      loadOptions: {
        maxRenderTimeMs: config.limits?.renderTimeMs,
        renderTimeLimitMs: config.limits?.renderTimeEachMs,
        maxRenderedBytes: config.limits?.renderedBytes,
        maxStackYamlBytes: config.limits?.yamlBytes,
      },
      keyring,
      recovery: RecoveryFiles.forState(config.state),
      onRecoveryImported: (stack, r) =>
        logger.warn({ stack, storeRunId: r.runId, imported: r.imported, file: r.file }, 'imported the results a failed state store could not record, from a recovery file (now removed)'),
    });
  const events = new EventBus();
  const metrics = new ControllerMetrics(VERSION);
  metrics.declareStacks(config.stacks);
  const replicaId = `${os.hostname()}:${process.pid}`;
  const controller = new Controller({
    stacks: config.stacks,
    store,
    controllerStore,
    engine,
    events,
    clock: options.clock ?? systemClock,
    logger,
    actor: { user: 'controller', host: os.hostname(), pid: process.pid },
    replicaId,
    concurrency: config.concurrency,
    passTimeoutMs: config.passTimeoutMs,
    observer: metrics,
    leaseRetryMs: options.leaseRetryMs,
  });
  let app: FastifyInstance;
  try {
    app = await buildServer({ config, controller, store, controllerStore, engine, events, metrics, logger });
    await app.listen({ host: config.listen.host, port: config.listen.port });
  } catch (err) {
    await store.close();
    throw err;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.listen.port;
  const host = config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host;
  const url = `http://${host}:${port}`;
  logger.info({ url, stacks: config.stacks.map((s) => s.name), replica: replicaId, state: redactState(config.state) }, 'capstan serve: listening');
  controller.start();
  const stopAuditRetention = scheduleAuditRetention(controllerStore, config.audit, logger);

  let stopping: Promise<void> | undefined;
  return {
    url,
    app,
    controller,
    store,
    reloadStacks: () => reloadStacks(config.file, controller, metrics),
    stop(graceMs = config.shutdownGraceMs) {
      stopping ??= (async () => {
        logger.info({ graceMs }, 'shutting down: no new work; waiting for passes in flight');
        stopAuditRetention();
        await controller.stop(graceMs);
        await app.close();
        await store.close();
        logger.info('shut down');
      })();
      return stopping;
    },
  };
}

function redactState(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/]*@/i, '$1***@');
}

/** The config's `identity:` (a file or an environment variable); without one, CAPSTAN_AGE_IDENTITY_FILE / CAPSTAN_AGE_IDENTITY. */
function keyringOf(config: ControllerConfig): Promise<Keyring> {
  const identity = config.identity;
  if (identity === undefined) return Keyring.load();
  return 'file' in identity ? Keyring.load({ file: identity.file }) : Keyring.load({ envVariable: identity.env });
}
