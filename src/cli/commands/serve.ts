import type { Command } from 'commander';
import { loadControllerConfig, parseListen, type ControllerConfig } from '../../reconcile/config.js';
import { UsageError } from '../context.js';

/** pino's levels, most verbose first; `silent` turns logging off. */
const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

function checkLogLevel(level: string | undefined, where: string): void {
  if (level === undefined || (LOG_LEVELS as readonly string[]).includes(level)) return;
  throw new UsageError(`${where} "${level}" is not a log level: use one of ${LOG_LEVELS.join(', ')}`);
}

/** A port in use or reserved: say which address and how to choose another, instead of a bare EADDRINUSE. */
function listenFailure(err: unknown, config: ControllerConfig): UsageError | undefined {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  const address = `${config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host}:${config.listen.port}`;
  const fix = `choose another address with --listen HOST:PORT or listen: in ${config.file}`;
  if (code === 'EADDRINUSE') return new UsageError(`cannot listen on ${address}: the port is already in use (another capstan serve?); ${fix}`);
  if (code === 'EACCES') return new UsageError(`cannot listen on ${address}: permission denied (ports below 1024 need privileges); ${fix}`);
  if (code === 'EADDRNOTAVAIL') return new UsageError(`cannot listen on ${address}: no network interface has this address; ${fix}`);
  return undefined;
}

interface ServeOptions {
  config: string;
  listen?: string;
  logLevel?: string;
}

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('run the controller: reconcile loop, HTTP API, webhooks, UI, /metrics (SIGTERM stops it gracefully, SIGHUP reloads the stacks)')
    .requiredOption('--config <file>', 'controller configuration (YAML: listen, state, stacks)')
    .option('--listen <host:port>', 'listen address, overriding the configuration')
    .option('--log-level <level>', LOG_LEVELS.join(', '))
    .action(async (options: ServeOptions) => {
      checkLogLevel(options.logLevel, '--log-level');
      checkLogLevel(options.logLevel === undefined ? process.env.CAPSTAN_LOG_LEVEL : undefined, 'CAPSTAN_LOG_LEVEL');
      let config = await loadControllerConfig(options.config);
      if (options.listen) {
        const listen = parseListen(options.listen);
        if (!listen) throw new UsageError(`--listen "${options.listen}" is not HOST:PORT`);
        config = { ...config, listen };
      }
      // Loaded here: the other commands need no HTTP server.
      const [{ createLogger }, { startController }] = await Promise.all([import('../../server/logger.js'), import('../../server/start.js')]);
      const logger = createLogger({ level: options.logLevel });
      const running = await startController(config, { logger }).catch((err: unknown) => {
        throw listenFailure(err, config) ?? err;
      });
      // SIGHUP: re-read the stacks of the config file, like POST /api/stacks/reload; the rest needs a restart.
      const onHangup = (): void => {
        if (running.controller.stopping) return;
        running.reloadStacks().then(
          (result) => {
            if (result.ok) logger.info({ file: result.file, ...result.diff }, 'SIGHUP: stacks reloaded (listen, state and the other settings need a restart)');
            else logger.error({ file: result.file, errors: result.errors }, 'SIGHUP: the configuration is invalid; nothing changed');
          },
          (err: unknown) => logger.error({ err }, 'SIGHUP: could not reload the stacks'),
        );
      };
      process.on('SIGHUP', onHangup);
      await new Promise<void>((resolve) => {
        let signals = 0;
        const onSignal = (signal: NodeJS.Signals): void => {
          signals += 1;
          if (signals === 1) {
            logger.info({ signal }, 'stopping: finishing the work in flight (again to stop applies now)');
            running.stop().then(resolve, (err: unknown) => {
              logger.error({ err }, 'shutdown failed');
              process.exitCode = 1;
              resolve();
            });
          } else {
            logger.warn({ signal }, 'stopping the applies in flight now');
            running.controller.abortInFlight(`${signal} received twice`);
          }
        };
        process.on('SIGTERM', onSignal);
        process.on('SIGINT', onSignal);
      });
      await new Promise<void>((resolve) => logger.flush(() => resolve()));
    });
}
