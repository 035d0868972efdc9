import { open, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { describeStateUrl } from '../../state/state-url.js';
import { loadControllerConfig, parseDuration } from '../../reconcile/config.js';
import { createApiToken } from '../../server/auth.js';
import { openStore } from '../../state/open.js';
import { controllerStoreOf, ROLES, type ControllerStore, type Role } from '../../state/store.js';
import { currentActor, UsageError } from '../context.js';

interface TokenStateOptions {
  state?: string;
  config?: string;
}

export function registerTokenCommand(program: Command): void {
  const token = program.command('token').description('API tokens of the controller (capstan serve)');
  const stateOptions = (cmd: Command): Command =>
    cmd
      .option('--config <file>', 'the controller configuration `capstan serve` runs with: act on its state store')
      .option('--state <url>', 'or the state store itself: sqlite:PATH or postgres://...');

  stateOptions(token.command('create'))
    .description('create a token and print it once (only its hash is stored)')
    .requiredOption('--role <role>', `one of ${ROLES.join(', ')}`)
    .option('--name <name>', 'who or what will use it (shown in the audit log)')
    .option('--expires <duration>', 'lifetime, e.g. 30d or 12h (default: no expiry)')
    .option('--out <file>', 'write the token to this new file (mode 0600) instead of stdout, for --token-file')
    .action(async (options: TokenStateOptions & { role: string; name?: string; expires?: string; out?: string }) => {
      if (!ROLES.includes(options.role as Role)) throw new UsageError(`--role must be one of ${ROLES.join(', ')}, not "${options.role}"`);
      let expiresInMs: number | undefined;
      if (options.expires !== undefined) {
        expiresInMs = parseDuration(options.expires);
        if (!expiresInMs) throw new UsageError(`--expires "${options.expires}" is not a duration such as 30d or 12h`);
      }
      await withControllerStore(options, async (cs, where) => {
        // The file first: when it cannot be made, no token is.
        const out = options.out === undefined ? undefined : await createTokenFile(options.out);
        try {
          const actor = currentActor();
          const name = options.name ?? `${options.role} token for ${actor.user}`;
          const created = await createApiToken(cs, { role: options.role as Role, name, expiresInMs });
          await cs.appendAudit({ actor: `${actor.user}@${actor.host} (cli)`, role: null, action: 'token.create', target: created.record.id, detail: { role: options.role, name, expiresAt: created.record.expiresAt }, ip: null, outcome: 'ok' });
          if (out) await out.handle.writeFile(`${created.token}\n`);
          else process.stdout.write(`${created.token}\n`);
          process.stderr.write(
            `Created ${options.role} token ${created.record.id} (${name})${created.record.expiresAt ? `, expires ${created.record.expiresAt}` : ''}. ` +
              (out ? `Wrote it to ${options.out} (mode 0600): use it with --token-file ${options.out}.\n` : 'It is shown only this once: store it now.\n') +
              `Stored in ${where}: a \`capstan serve\` on this store accepts it.\n`,
          );
        } catch (err) {
          await out?.discard();
          throw err;
        } finally {
          await out?.handle.close();
        }
      });
    });

  stateOptions(token.command('list'))
    .description('list tokens (never the tokens themselves)')
    .option('--json', 'machine output')
    .action(async (options: TokenStateOptions & { json?: boolean }) => {
      await withControllerStore(options, async (cs) => {
        const tokens = await cs.listTokens();
        if (options.json) {
          process.stdout.write(JSON.stringify(tokens, null, 2) + '\n');
          return;
        }
        for (const t of tokens) {
          const state = t.revokedAt ? `revoked ${t.revokedAt}` : t.expiresAt ? `expires ${t.expiresAt}` : 'no expiry';
          process.stdout.write(`${t.id}  ${t.role.padEnd(8)}  ${t.createdAt}  ${state}  ${t.name}\n`);
        }
      });
    });

  stateOptions(token.command('revoke <id>'))
    .description('revoke a token at once')
    .action(async (id: string, options: TokenStateOptions) => {
      await withControllerStore(options, async (cs) => {
        if (!(await cs.revokeToken(id))) throw new UsageError(`no active token ${id}`);
        const actor = currentActor();
        await cs.appendAudit({ actor: `${actor.user}@${actor.host} (cli)`, role: null, action: 'token.revoke', target: id, detail: null, ip: null, outcome: 'ok' });
        process.stderr.write(`Revoked token ${id}.\n`);
      });
    });
}

/**
 * Tokens live in the store of the server that checks them, so the command
 * needs to be told which: there is no default (a store nobody serves would take
 * tokens that never work).
 */
async function withControllerStore(options: TokenStateOptions, use: (cs: ControllerStore, where: string) => Promise<void>): Promise<void> {
  if (options.config !== undefined && options.state !== undefined) throw new UsageError('give --config or --state, not both');
  // Only the state URL is needed: the config's secrets (webhook secrets) are not read.
  const url = options.state ?? (options.config ? (await loadControllerConfig(options.config, process.env, { secrets: 'lazy' })).state : undefined);
  if (url === undefined) throw new UsageError('which server\'s tokens? Pass --config FILE (the file `capstan serve` runs with) or --state URL (its state store)');
  const where = describeStore(url) + (options.config ? ` (the state store of ${options.config})` : '');
  const store = await openStore(url);
  try {
    await use(controllerStoreOf(store), where);
  } finally {
    await store.close();
  }
}

/** A new file only the owner can read; never an existing one (it may hold another token). */
async function createTokenFile(file: string): Promise<{ handle: FileHandle; discard(): Promise<void> }> {
  let handle: FileHandle;
  try {
    handle = await open(file, 'wx', 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(code === 'EEXIST' ? `--out ${file} exists: remove it or name another file` : `cannot create --out ${file}: ${code ?? (err as Error).message}`);
  }
  return { handle, discard: () => rm(file, { force: true }) };
}

/** The store as messages show it: an SQLite file by its absolute path, any other URL without credentials. */
function describeStore(url: string): string {
  if (!url.startsWith('sqlite:')) return describeStateUrl(url);
  const file = url.slice('sqlite:'.length).replace(/^\/\//, '');
  return file === ':memory:' ? url : `sqlite:${path.resolve(file)}`;
}
