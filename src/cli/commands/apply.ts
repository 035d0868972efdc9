import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { hasErrors } from '../../diag/diagnostic.js';
import { applyPlan, DEFAULT_PARALLELISM, type StoreFailure } from '../../apply/apply.js';
import { importRecoveries, RecoveryFiles } from '../../apply/recovery.js';
import { restoreSecrets } from '../../apply/saved-plan-secrets.js';
import { findStaleness } from '../../apply/staleness.js';
import { ACTION_SYMBOL, hasChanges, isChange, PLAN_FORMAT_VERSION, type Plan } from '../../plan/plan.js';
import { planChanges } from '../../plan/planner.js';
import { renderPlanText } from '../../plan/render-text.js';
import { TargetPool } from '../../providers/target-pool.js';
import type { StackLock } from '../../state/store.js';
import { confirm } from '../confirm.js';
import {
  addSourceOptions,
  currentActor,
  loadSpec,
  openStateStore,
  parsePositiveInt,
  reportDiagnostics,
  stateUrl,
  UsageError,
  useColor,
  type SourceOptions,
} from '../context.js';
import { groupByMissingProgram } from '../../util/prerequisites.js';
import { applySummary, OutcomeTally } from '../apply-summary.js';
import { progressReporter } from '../progress.js';
import { checkPlanPolicies } from '../policy-gate.js';
import { parsePrune, PRUNE_HELP } from '../prune-option.js';
import { trapInterrupts } from '../signals.js';
import { nameOf, type RolloutOutcome } from '../../apply/rollout.js';

interface ApplyCommandOptions extends SourceOptions {
  plan?: string;
  yes?: boolean;
  parallelism: number;
  allowMassDelete?: boolean;
  prune?: 'adopted';
  progress?: boolean;
}

export function registerApplyCommand(program: Command): void {
  addSourceOptions(program.command('apply [dir]'))
    .description('converge the live state on the spec (asks first unless --yes or --plan)')
    .option('--plan <file>', 'apply exactly this saved plan; refused if the spec, state or live objects moved since')
    .option('--yes', 'do not ask for confirmation')
    .option('--parallelism <n>', 'changes applied at once', parsePositiveInt, DEFAULT_PARALLELISM)
    .option('--allow-mass-delete', 'allow deleting more than half of the managed resources')
    .option('--prune <what>', PRUNE_HELP, parsePrune)
    .option('--progress', 'show each result and a progress bar on stderr, as on a terminal (default: when stderr is a terminal)')
    .option('--no-progress', 'one plain line per result on stdout, even on a terminal')
    .action(async (dir: string | undefined, options: ApplyCommandOptions) => {
      const saved = options.plan ? await readSavedPlan(options.plan) : undefined;
      const specDir = dir ?? (saved && !options.repo ? saved.source.dir : undefined);
      const stackName = saved?.stack ?? options.stack;
      const { source, stack, registry, keyring } = await loadSpec(specDir, options);
      if (reportDiagnostics(stack.diagnostics)) {
        process.exitCode = 1;
        return;
      }
      const store = await openStateStore(specDir, options);
      const recovery = RecoveryFiles.forState(stateUrl(specDir, options));
      let storeTrouble = false;
      const interrupts = trapInterrupts((name) => process.stderr.write(`\n${name}: finishing the changes in flight, starting no new ones (again to exit now)\n`));
      const targets = new TargetPool(registry, { signal: interrupts.signal, repoDir: source.dir, digester: keyring.digester });
      const actor = currentActor();
      let lock: StackLock | undefined;
      try {
        lock = await store.lock(stackName, actor);
        for (const r of await importRecoveries(store, stackName, recovery)) {
          process.stderr.write(`Imported ${r.imported} result(s) of run ${r.runId} that its state store could not record, from ${r.file} (now removed).\n`);
        }
        let plan: Plan;
        if (saved) {
          // Secrets come back from the re-loaded spec first: reading the live state may need them (an Exec's guards).
          const restored = restoreSecrets(saved, stack);
          const reasons = [...restored.reasons, ...(await findStaleness({ plan: restored.plan, currentSpecHash: stack.specHash, store, registry, targets }))];
          if (reasons.length > 0) {
            throw new UsageError(`the saved plan ${options.plan} is stale and was not applied:\n  - ${reasons.join('\n  - ')}\nMake a new plan.`);
          }
          plan = restored.plan;
        } else {
          plan = await planChanges({ stack: stackName, desired: stack, source, registry, store, targets, allowMassDelete: options.allowMassDelete ?? false, pruneAdopted: options.prune === 'adopted' });
          const text = renderPlanText(plan, { color: useColor(process.stdout) });
          if (hasErrors(plan.diagnostics)) {
            process.stderr.write(text);
            process.exitCode = 1;
            return;
          }
          process.stdout.write(text);
        }
        if (checkPlanPolicies(plan, stack).denied) {
          process.stderr.write('\nApply refused: a policy denies this plan; nothing was changed.\n');
          process.exitCode = 1;
          return;
        }
        if (!saved) {
          if (hasChanges(plan) && !options.yes) {
            if (!process.stdin.isTTY) throw new UsageError('refusing to apply without confirmation: pass --yes, or apply a saved plan with --plan');
            if (!(await confirm('\nDo you want to perform these actions?'))) {
              process.stdout.write('Apply cancelled.\n');
              process.exitCode = 1;
              return;
            }
          }
        }
        if (!hasChanges(plan) && !plan.changes.some((c) => c.recordOnly)) {
          process.exitCode = 0;
          return;
        }
        // On a terminal (stderr) the results and a bar go there; elsewhere one plain line per result on stdout, as the plan.
        const terminal = options.progress ?? process.stderr.isTTY === true;
        const tally = new OutcomeTally(progressReporter(terminal ? process.stderr : process.stdout, { tty: terminal }));
        const result = await applyPlan({
          plan,
          registry,
          store,
          targets,
          actor,
          parallelism: options.parallelism,
          signal: interrupts.signal,
          reporter: tally,
          onRunStarted: (run) => void lock?.setRunId?.(run.id).catch(() => undefined),
          ...(lock.signal ? { lockLost: lock.signal } : {}),
          recovery,
        });
        storeTrouble = result.storeFailure !== undefined || lock.signal?.aborted === true;
        if (result.status === 'succeeded') tally.countRecordOnly(plan.changes, new Set(result.failures.map((f) => f.address)));
        const line = applySummary(tally.counts);
        if (result.status === 'succeeded') process.stdout.write(`\nApply complete (run ${result.run.id}): ${line}.\n`);
        else {
          process.stderr.write(`\nApply ${result.status} (run ${result.run.id}): ${line}.\n`);
          const { missing, other } = groupByMissingProgram(result.failures);
          for (const f of other) process.stderr.write(`  ${f.address}: ${f.error}\n`);
          for (const [line, addresses] of missing) process.stderr.write(`  ${line}; failed for want of it: ${addresses.join(', ')}\n`);
          if (result.run.error && (result.storeFailure || lock.signal?.aborted)) process.stderr.write(`  ${result.run.error}\n`);
        }
        if (result.storeFailure) process.stderr.write(describeStoreFailure(result.storeFailure));
        for (const r of result.rollouts) process.stderr.write(describeRollout(r));
        process.exitCode = result.status === 'succeeded' ? 0 : (interrupts.exitCode() ?? 1);
      } finally {
        interrupts.dispose();
        await targets.close();
        // With the store gone these fail too; the next run takes the lock over and marks the run.
        const tolerate = (err: unknown): void => {
          if (!storeTrouble) throw err;
        };
        await lock?.release().catch(tolerate);
        await store.close().catch(tolerate);
      }
    });
}

async function readSavedPlan(file: string): Promise<Plan> {
  let plan: Plan;
  try {
    plan = JSON.parse(await readFile(file, 'utf8')) as Plan;
  } catch (err) {
    throw new UsageError(`cannot read the saved plan ${file}: ${(err as Error).message}`);
  }
  if (plan?.formatVersion !== PLAN_FORMAT_VERSION || !Array.isArray(plan.changes) || typeof plan.specHash !== 'string') {
    throw new UsageError(`${file} is not a Capstan plan (format ${PLAN_FORMAT_VERSION})`);
  }
  if (hasErrors(plan.diagnostics ?? [])) throw new UsageError(`the saved plan ${file} has errors and cannot be applied`);
  if (plan.offline) throw new UsageError(`the saved plan ${file} was made offline (against the last recorded state, not the live targets) and cannot be applied: make it again without --offline`);
  return { ...plan, source: { ...plan.source, dir: path.resolve(plan.source.dir) } };
}

/** What the store did not take, for people: each change made, and where it was saved. */
function describeStoreFailure(f: StoreFailure): string {
  const made = f.unrecorded.filter((r) => r.status === 'succeeded' && (isChange(r.action) || r.inventory !== undefined));
  const lines = [
    `\nThe state store stopped taking results: ${f.error}`,
    'No change was started after that; the changes in flight finished.',
  ];
  if (made.length === 0) lines.push('No change made in this run is missing from the store.');
  else {
    lines.push(`Made but not recorded in the store (${made.length}):`);
    for (const r of made) lines.push(`  ${isChange(r.action) ? ACTION_SYMBOL[r.action] : '='} ${r.address} (${isChange(r.action) ? r.action : 'adopted'})`);
  }
  if (f.recoveryFile) {
    lines.push(`Every unrecorded result (${f.unrecorded.length}) is saved in ${f.recoveryFile}; the next \`capstan apply\` of this stack imports it into the store before it plans.`);
  } else {
    lines.push(`The unrecorded results could not be saved (${f.recoveryError}): the next apply reads the live state again.`);
  }
  return lines.join('\n') + '\n';
}

/** A stopped rollout, for people: why, and which hosts changed and which did not. */
function describeRollout(r: RolloutOutcome): string {
  if (!r.stopped) return '';
  const names = (hosts: readonly string[]): string => (hosts.length > 0 ? hosts.map(nameOf).join(', ') : 'none');
  return (
    `\nRollout of group ${r.group} stopped after batch ${r.stopped.afterBatch + 1} of ${r.batches}.\n` +
    r.failedHosts.map((f) => `  failed:      ${nameOf(f.host)}: ${f.why}\n`).join('') +
    `  changed:     ${names(r.changedHosts)}\n` +
    `  not changed: ${names(r.unchangedHosts)}\n`
  );
}
