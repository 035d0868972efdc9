import type { Command } from 'commander';
import { NoStateStoreError } from '../../state/open.js';
import type { RunRecord } from '../../state/store.js';
import { addStateOptions, openStateStore, parsePositiveInt } from '../context.js';
import { formatCounts } from '../run-counts.js';

export function registerHistoryCommand(program: Command): void {
  addStateOptions(program.command('history [dir]'))
    .description('past runs: when, which commit, who, what changed, result')
    .option('--json', 'print runs as JSON')
    .option('--limit <n>', 'how many runs', parsePositiveInt, 20)
    .option('--all-stacks', 'runs of every stack in the store')
    .action(async (dir: string | undefined, options: { state?: string; stack: string; json?: boolean; limit: number; allStacks?: boolean }) => {
      const store = await openStateStore(dir, options, { readOnly: true }).catch((err: unknown) => {
        if (err instanceof NoStateStoreError) return err;
        throw err;
      });
      if (store instanceof NoStateStoreError) {
        // Nothing to list, and why; not an error: no run was ever recorded in this store.
        if (options.json) process.stdout.write('[]\n');
        (options.json ? process.stderr : process.stdout).write(`${store.message}.\n`);
        process.exitCode = 0;
        return;
      }
      try {
        const runs = await store.listRuns({ ...(options.allStacks ? {} : { stack: options.stack }), limit: options.limit });
        if (options.json) process.stdout.write(JSON.stringify(runs, null, 2) + '\n');
        else if (runs.length === 0) process.stdout.write('No runs yet.\n');
        else for (const run of runs) process.stdout.write(formatRun(run) + '\n');
        process.exitCode = 0;
      } finally {
        await store.close();
      }
    });
}

function formatRun(run: RunRecord): string {
  const commit = run.commit ? run.commit.slice(0, 12) : 'no commit';
  const what = formatCounts(run.counts);
  const subject = run.message ? `  "${run.message}"` : '';
  return `#${run.id}  ${run.startedAt}  ${run.status.padEnd(11)} ${run.stack}  ${commit}  ${run.actor.user}@${run.actor.host}  ${what}${subject}`;
}
