/**
 * pino JSON logs of the controller. Secrets never reach a log line: request
 * headers that carry tokens or signatures, and any field named like a token or
 * secret, are censored; config secrets print as `(redacted)` on their own.
 */
import { pino, type DestinationStream, type Logger } from 'pino';

export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers["x-hub-signature-256"]',
  'req.headers["x-hub-signature"]',
  'req.headers["x-gitlab-token"]',
  'req.headers["x-gitea-signature"]',
  'headers.authorization',
  'authorization',
  'token',
  '*.token',
  'secret',
  '*.secret',
  'webhookSecret',
  '*.webhookSecret',
  'password',
  '*.password',
];

export function createLogger(options: { level?: string; destination?: DestinationStream } = {}): Logger {
  return pino(
    {
      level: options.level ?? process.env.CAPSTAN_LOG_LEVEL ?? 'info',
      base: { pid: process.pid },
      redact: { paths: REDACTED_PATHS, censor: '(redacted)' },
    },
    options.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
