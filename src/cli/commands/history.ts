import type { Command } from 'commander';
import { NoStateStoreError } from '../../state/open.js';
import { RESOURCE_NOTE, type RunRecord, type Store } from '../../state/store.js';
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
        // Older runs too, to tell a rollback (an older commit applied again) from a first apply.
        const window = await store.listRuns({ ...(options.allStacks ? {} : { stack: options.stack }), limit: options.limit + ROLLBACK_LOOKBACK });
        const rollbacks = findRollbacks(window);
        const runs = await withNotes(store, window.slice(0, options.limit).map((r) => (rollbacks.has(r.id) ? { ...r, rollback: rollbacks.get(r.id)! } : r)));
        if (options.json) process.stdout.write(JSON.stringify(runs, null, 2) + '\n');
        else if (runs.length === 0) process.stdout.write('No runs yet.\n');
        else for (const run of runs) process.stdout.write(formatRun(run, rollbacks.get(run.id)) + (run.notes ?? []).map((n) => `\n    ${n.address ?? ''}: ${n.message}`).join('') + '\n');
        process.exitCode = 0;
      } finally {
        await store.close();
      }
    });
}

const ROLLBACK_LOOKBACK = 200;

/** A run that applied a commit older than the one applied before it. */
export interface Rollback {
  /** The commit gone back to. */
  readonly commit: string;
  /** The earlier run that applied it. */
  readonly previousRun: number;
  /** The commit it rolled back from. */
  readonly from: string;
}

/**
 * Apply runs that went back to a commit an earlier successful run of the stack
 * applied, after a successful run of another commit: `capstan rollback`, the
 * controller's rollback, or a branch reset to an older commit.
 */
export function findRollbacks(runs: readonly RunRecord[]): Map<number, Rollback> {
  const found = new Map<number, Rollback>();
  const byStack = new Map<string, RunRecord[]>();
  for (const r of runs) {
    if (r.kind !== 'apply' || !r.commit) continue;
    const list = byStack.get(r.stack);
    if (list) list.push(r);
    else byStack.set(r.stack, [r]);
  }
  for (const list of byStack.values()) {
    list.sort((a, b) => a.id - b.id);
    const lastApplied = new Map<string, number>();
    let current: string | undefined;
    for (const r of list) {
      const earlier = lastApplied.get(r.commit!);
      if (current !== undefined && current !== r.commit && earlier !== undefined) found.set(r.id, { commit: r.commit!, previousRun: earlier, from: current });
      if (r.status === 'succeeded') {
        lastApplied.set(r.commit!, r.id);
        current = r.commit!;
      }
    }
  }
  return found;
}

interface RunNote {
  readonly address: string | null;
  readonly message: string;
}

/** Each run with the notes providers left on its changes (a backup's path), when it has any. */
async function withNotes<R extends RunRecord>(store: Store, runs: readonly R[]): Promise<(R & { notes?: RunNote[] })[]> {
  return Promise.all(
    runs.map(async (run) => {
      const notes = (await store.listEvents(run.id)).filter((e) => e.type === RESOURCE_NOTE).map((e) => ({ address: e.address, message: e.message }));
      return notes.length > 0 ? { ...run, notes } : run;
    }),
  );
}

function formatRun(run: RunRecord, rollback?: Rollback): string {
  const commit = run.commit ? run.commit.slice(0, 12) : 'no commit';
  const what = formatCounts(run.counts);
  const back = rollback ? `  ROLLBACK to ${rollback.commit.slice(0, 12)} (as run #${rollback.previousRun}) from ${rollback.from.slice(0, 12)}` : '';
  const subject = (run.message ? `  "${run.message}"` : '') + back;
  return `#${run.id}  ${run.startedAt}  ${run.status.padEnd(11)} ${run.stack}  ${commit}  ${run.actor.user}@${run.actor.host}  ${what}${subject}`;
}
