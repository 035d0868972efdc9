import path from 'node:path';
import type { Command } from 'commander';
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
      .option('--state <url>', 'state store: sqlite:PATH or postgres://... (default: the one of --config, else .capstan/state.db)')
      .option('--config <file>', 'take the state store from this controller configuration');

  stateOptions(token.command('create'))
    .description('create a token and print it once (only its hash is stored)')
    .requiredOption('--role <role>', `one of ${ROLES.join(', ')}`)
    .option('--name <name>', 'who or what will use it (shown in the audit log)')
    .option('--expires <duration>', 'lifetime, e.g. 30d or 12h (default: no expiry)')
    .action(async (options: TokenStateOptions & { role: string; name?: string; expires?: string }) => {
      if (!ROLES.includes(options.role as Role)) throw new UsageError(`--role must be one of ${ROLES.join(', ')}, not "${options.role}"`);
      let expiresInMs: number | undefined;
      if (options.expires !== undefined) {
        expiresInMs = parseDuration(options.expires);
        if (!expiresInMs) throw new UsageError(`--expires "${options.expires}" is not a duration such as 30d or 12h`);
      }
      await withControllerStore(options, async (cs) => {
        const actor = currentActor();
        const name = options.name ?? `${options.role} token for ${actor.user}`;
        const created = await createApiToken(cs, { role: options.role as Role, name, expiresInMs });
        await cs.appendAudit({ actor: `${actor.user}@${actor.host} (cli)`, role: null, action: 'token.create', target: created.record.id, detail: { role: options.role, name, expiresAt: created.record.expiresAt }, ip: null, outcome: 'ok' });
        process.stdout.write(`${created.token}\n`);
        process.stderr.write(
          `Created ${options.role} token ${created.record.id} (${name})${created.record.expiresAt ? `, expires ${created.record.expiresAt}` : ''}. ` +
            'It is shown only this once: store it now.\n',
        );
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

async function withControllerStore(options: TokenStateOptions, use: (cs: ControllerStore) => Promise<void>): Promise<void> {
  // Only the state URL is needed: the config's secrets (webhook secrets) are not read.
  const url = options.state ?? (options.config ? (await loadControllerConfig(options.config, process.env, { secrets: 'lazy' })).state : `sqlite:${path.resolve('.capstan/state.db')}`);
  const store = await openStore(url);
  try {
    await use(controllerStoreOf(store));
  } finally {
    await store.close();
  }
}
