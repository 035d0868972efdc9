/** What the commands that talk to a running controller share: `--server`, `--token-file`, the client. */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { ApiClient } from '../client/api-client.js';
import { UsageError } from './context.js';

export interface ServerOptions {
  server?: string;
  tokenFile?: string;
  timeout?: string;
}

const MAKE_A_TOKEN = 'make one on the server with `capstan token create --config <serve config> --role viewer`';

export function addServerOptions(cmd: Command): Command {
  return cmd
    .option('--server <url>', 'the controller (capstan serve), e.g. http://127.0.0.1:7070 (default: $CAPSTAN_SERVER)')
    .option('--token-file <file>', 'file holding the API token (default: the token in $CAPSTAN_TOKEN)')
    .option('--timeout <seconds>', 'how long to wait for each answer', '30');
}

/**
 * The client of `--server` with the token of `--token-file` or `$CAPSTAN_TOKEN`;
 * a missing one is a UsageError. `warn` hears when the token would cross the
 * network unencrypted (plain http to a host that is not this one).
 */
export async function connect(options: ServerOptions, env: NodeJS.ProcessEnv = process.env, warn: (line: string) => void = (line) => process.stderr.write(line + '\n')): Promise<ApiClient> {
  const server = options.server ?? env.CAPSTAN_SERVER;
  if (!server) throw new UsageError('which controller? Pass --server URL (e.g. http://127.0.0.1:7070) or set CAPSTAN_SERVER');
  const timeoutSeconds = Number(options.timeout ?? 30);
  if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) throw new UsageError(`--timeout "${options.timeout}" is not a number of seconds`);
  let token: string;
  let tokenSource: string;
  if (options.tokenFile !== undefined) {
    tokenSource = `--token-file ${options.tokenFile}`;
    try {
      token = (await readFile(options.tokenFile, 'utf8')).trim();
    } catch (err) {
      throw new UsageError(`cannot read the token file ${options.tokenFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (!token) throw new UsageError(`the token file ${options.tokenFile} is empty; ${MAKE_A_TOKEN}`);
  } else if (env.CAPSTAN_TOKEN?.trim()) {
    token = env.CAPSTAN_TOKEN.trim();
    tokenSource = '$CAPSTAN_TOKEN';
  } else {
    throw new UsageError(`no API token: pass --token-file FILE or set CAPSTAN_TOKEN; ${MAKE_A_TOKEN}`);
  }
  if (/\s/.test(token)) throw new UsageError(`${tokenSource} holds more than one word: it must hold only the token`);
  let client: ApiClient;
  try {
    client = new ApiClient({ server, token, tokenSource, timeoutMs: timeoutSeconds * 1000 });
  } catch (err) {
    throw new UsageError(`--server: ${(err as Error).message}`);
  }
  const url = new URL(client.server);
  if (url.protocol === 'http:' && !LOOPBACK.test(url.hostname)) {
    warn(`Warning: the token goes to ${client.server} unencrypted; put TLS in front of capstan serve and use https://`);
  }
  return client;
}

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/i;

/** A path segment of the API: a stack name or run id, escaped. */
export function segment(value: string): string {
  return encodeURIComponent(value);
}

/** Prints the value as the scripts' JSON (`--json`). */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

export function shortCommit(commit: string | null | undefined): string {
  return commit ? commit.slice(0, 12) : '-';
}
