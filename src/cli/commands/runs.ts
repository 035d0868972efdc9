/** `capstan runs NAME [ID]`: the runs of a stack of a running controller, or one run with its results and events. */
import type { Command } from 'commander';
import type { RunDetail, RunView } from '../../client/api-types.js';
import { parsePositiveInt, UsageError } from '../context.js';
import { addServerOptions, connect, printJson, segment, shortCommit, type ServerOptions } from '../remote.js';
import { formatCounts } from '../run-counts.js';
import { renderTable } from '../table.js';

export function registerRunsCommand(program: Command): void {
  addServerOptions(program.command('runs <stack> [id]'))
    .description('past runs of a stack on a running controller (newest first), or run ID with its results and events')
    .option('--limit <n>', 'how many runs', parsePositiveInt, 20)
    .option('--json', 'the server\'s answer as JSON')
    .action(async (stack: string, id: string | undefined, options: ServerOptions & { limit: number; json?: boolean }) => {
      if (id !== undefined && !/^[1-9][0-9]*$/.test(id)) throw new UsageError(`run id "${id}" is not a run number`);
      const client = await connect(options);
      if (id === undefined) {
        const runs = await client.get<RunView[]>(`/api/stacks/${segment(stack)}/runs?limit=${options.limit}`);
        if (options.json) return printJson(runs);
        if (runs.length === 0) return void process.stdout.write(`Stack ${stack} has no runs yet.\n`);
        const rows = runs.map((r) => [`#${r.id}`, r.startedAt, r.kind, r.status, shortCommit(r.commit), r.actor, formatCounts(r.counts), r.message ?? '']);
        return void process.stdout.write(renderTable(['RUN', 'STARTED', 'KIND', 'STATUS', 'COMMIT', 'BY', 'CHANGES', 'MESSAGE'], rows));
      }
      const run = await client.get<RunDetail>(`/api/runs/${segment(id)}`);
      // Run ids are global: one of another stack is not "run ID of STACK".
      if (run.stack !== stack) throw new UsageError(`run ${id} belongs to stack ${run.stack}, not ${stack}`);
      if (options.json) return printJson(run);
      process.stdout.write(
        `Run #${run.id} of stack ${run.stack}: ${run.kind} ${run.status}, commit ${shortCommit(run.commit)}${run.message ? ` "${run.message}"` : ''}, by ${run.actor}\n` +
          `Started ${run.startedAt}${run.finishedAt ? `, finished ${run.finishedAt}` : ''}; ${formatCounts(run.counts)}\n` +
          (run.error ? `Error: ${run.error}\n` : ''),
      );
      if (run.results.length > 0) {
        process.stdout.write('\n' + renderTable(['RESOURCE', 'ACTION', 'STATUS', 'MS', 'ERROR'], run.results.map((r) => [r.address, r.action, r.status, String(r.durationMs), r.error ?? ''])));
      }
      if (run.events.length > 0) {
        process.stdout.write('\n' + renderTable(['AT', 'EVENT', 'RESOURCE', 'MESSAGE'], run.events.map((e) => [e.at, e.type, e.address ?? '', e.message])));
      }
    });
}
