import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { hasErrors } from '../../diag/diagnostic.js';
import { hasChanges } from '../../plan/plan.js';
import { planChanges } from '../../plan/planner.js';
import { renderPlanText } from '../../plan/render-text.js';
import { TargetPool } from '../../providers/target-pool.js';
import { checkPlanPolicies } from '../policy-gate.js';
import { parsePrune, PRUNE_HELP } from '../prune-option.js';
import { RecoveryFiles } from '../../apply/recovery.js';
import { addSourceOptions, loadSpec, openStateStore, stateUrl, useColor, type SourceOptions } from '../context.js';

export interface PlanCommandOptions extends SourceOptions {
  out?: string;
  json?: boolean;
  detailedExitcode?: boolean;
  allowMassDelete?: boolean;
  prune?: 'adopted';
}

export function registerPlanCommand(program: Command): void {
  addSourceOptions(program.command('plan [dir]'))
    .description('show what apply would change, without changing anything')
    .option('--out <file>', 'save the plan as JSON, for `apply --plan FILE`')
    .option('--json', 'print the plan as JSON')
    .option('--detailed-exitcode', 'exit 0 when there are no changes, 2 when there are, 1 on error')
    .option('--allow-mass-delete', 'allow deleting more than half of the managed resources')
    .option('--prune <what>', PRUNE_HELP, parsePrune)
    .action(async (dir: string | undefined, options: PlanCommandOptions) => {
      const { source, stack, registry, keyring } = await loadSpec(dir, options);
      // A plan changes nothing: without a store yet it plans against an empty one and creates none.
      const store = await openStateStore(dir, options, { ifMissing: 'empty' });
      const targets = new TargetPool(registry, { signal: new AbortController().signal, repoDir: source.dir, digester: keyring.digester });
      try {
        for (const { file, record } of await RecoveryFiles.forState(stateUrl(dir, options)).find(options.stack)) {
          process.stderr.write(
            `Warning: ${file} holds ${record.results.length} result(s) of run ${record.runId} that the state store could not record; ` +
              '`capstan apply` imports them before it plans, so this plan may not show what that run already did.\n',
          );
        }
        const plan = await planChanges({
          stack: options.stack,
          desired: stack,
          source,
          registry,
          store,
          targets,
          allowMassDelete: options.allowMassDelete ?? false,
          pruneAdopted: options.prune === 'adopted',
        });
        if (options.out) await writeFile(options.out, JSON.stringify(plan, null, 2) + '\n', { mode: 0o600 });
        if (options.json) process.stdout.write(JSON.stringify(plan, null, 2) + '\n');
        else {
          const text = renderPlanText(plan, { color: useColor(process.stdout) });
          (hasErrors(plan.diagnostics) ? process.stderr : process.stdout).write(text);
          if (options.out && !hasErrors(plan.diagnostics)) {
            process.stdout.write(`\nSaved the plan to ${options.out}. Apply exactly this plan with: capstan apply --plan ${options.out}\n`);
          }
        }
        const policy = checkPlanPolicies(plan, stack);
        if (policy.denied) process.stderr.write('apply would refuse this plan: a policy denies it\n');
        if (hasErrors(plan.diagnostics) || policy.denied) process.exitCode = 1;
        else process.exitCode = options.detailedExitcode && hasChanges(plan) ? 2 : 0;
      } finally {
        await targets.close();
        await store.close();
      }
    });
}
