import { writeFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { hasErrors } from '../../diag/diagnostic.js';
import { hasChanges } from '../../plan/plan.js';
import { planChanges } from '../../plan/planner.js';
import { renderPlanMarkdown } from '../../plan/render-markdown.js';
import { renderPlanText } from '../../plan/render-text.js';
import { TargetPool } from '../../providers/target-pool.js';
import { checkPlanPolicies } from '../policy-gate.js';
import { parsePrune, PRUNE_HELP } from '../prune-option.js';
import { RecoveryFiles } from '../../apply/recovery.js';
import { selectByBase } from '../base-scope.js';
import { addSourceOptions, loadSpec, openStateStore, stateUrl, UsageError, useColor, type SourceOptions } from '../context.js';

export interface PlanCommandOptions extends SourceOptions {
  out?: string;
  json?: boolean;
  format?: PlanFormat;
  outJson?: string;
  detailedExitcode?: boolean;
  allowMassDelete?: boolean;
  prune?: 'adopted';
  base?: string;
  offline?: boolean;
}

export type PlanFormat = 'text' | 'json' | 'markdown';

export function registerPlanCommand(program: Command): void {
  addSourceOptions(program.command('plan [dir]'))
    .description('show what apply would change, without changing anything')
    .option('--out <file>', 'save the plan as JSON, for `apply --plan FILE`')
    .option('--json', 'print the plan as JSON (the same as --format json)')
    .addOption(new Option('--format <format>', 'print the plan as text, JSON (docs/plan-json.md) or a pull-request comment in Markdown').choices(['text', 'json', 'markdown']))
    .option('--out-json <file>', 'also write the full plan as JSON to FILE (a CI artefact: a shortened Markdown plan names it)')
    .option('--detailed-exitcode', 'exit 0 when there are no changes, 2 when there are, 1 on error')
    .option('--allow-mass-delete', 'allow deleting more than half of the managed resources')
    .option('--prune <what>', PRUNE_HELP, parsePrune)
    .option('--base <ref>', 'plan only what changed since this commit (e.g. the merge base of a pull request), and what depends on it')
    .option('--offline', 'read nothing live: compare the spec with the last recorded state (no connection, no credentials); drift is not visible')
    .action(async (dir: string | undefined, options: PlanCommandOptions) => {
      if (options.json && options.format && options.format !== 'json') throw new UsageError(`--json asks for JSON, --format for ${options.format}: give one of them`);
      const format: PlanFormat = options.json ? 'json' : (options.format ?? 'text');
      const loaded = await loadSpec(dir, options, { unreadSecrets: options.offline === true });
      const { source, stack, registry, keyring } = loaded;
      const scope = options.base === undefined ? undefined : await selectByBase(loaded, options.base, options);
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
          scope,
          offline: options.offline ?? false,
        });
        const json = JSON.stringify(plan, null, 2) + '\n';
        for (const file of [options.out, options.outJson]) if (file) await writeFile(file, json, { mode: 0o600 });
        if (format === 'json') process.stdout.write(json);
        else if (format === 'markdown') {
          const destructiveKinds = new Set(plan.changes.map((c) => c.kind).filter((kind) => registry.resource(kind)?.destructiveDelete));
          process.stdout.write(renderPlanMarkdown(plan, { destructiveKinds, fullPlanFile: options.outJson }));
        } else {
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
