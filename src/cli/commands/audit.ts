/** `capstan audit`: the audit log of a running controller (admin): who did what, when, from where, with what outcome. */
import type { Command } from 'commander';
import type { AuditRecord } from '../../client/api-types.js';
import { parsePositiveInt } from '../context.js';
import { addServerOptions, connect, printJson, type ServerOptions } from '../remote.js';
import { renderTable } from '../table.js';

export function registerAuditCommand(program: Command): void {
  addServerOptions(program.command('audit'))
    .description('the audit log of a running controller, newest first (admin token)')
    .option('--limit <n>', 'how many entries (at most 1000)', parsePositiveInt, 50)
    .option('--before <id>', 'only entries older than this one (to page back)', parsePositiveInt)
    .option('--json', 'the server\'s answer as JSON')
    .action(async (options: ServerOptions & { limit: number; before?: number; json?: boolean }) => {
      const client = await connect(options);
      const query = `limit=${options.limit}${options.before === undefined ? '' : `&before=${options.before}`}`;
      const entries = await client.get<AuditRecord[]>(`/api/audit?${query}`);
      if (options.json) return printJson(entries);
      if (entries.length === 0) return void process.stdout.write('The audit log is empty.\n');
      const rows = entries.map((e) => [String(e.id), e.at, e.actor, e.role ?? '-', e.action, e.target ?? '-', e.outcome, e.ip ?? '-']);
      process.stdout.write(renderTable(['ID', 'AT', 'ACTOR', 'ROLE', 'ACTION', 'TARGET', 'OUTCOME', 'FROM'], rows));
    });
}
