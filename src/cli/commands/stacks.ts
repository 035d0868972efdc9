/**
 * `capstan stacks ...`: the stacks of a running controller, through its API.
 * Exit codes as the local commands: 0 ok, 1 error; `stacks plan
 * --detailed-exitcode` 0 no changes, 2 changes, like `capstan plan`.
 */
import { Option, type Command } from 'commander';
import { ApiError } from '../../client/api-client.js';
import type { PlanSummary, PlanView, StackDetail, StackView } from '../../client/api-types.js';
import { addServerOptions, connect, printJson, segment, shortCommit, type ServerOptions } from '../remote.js';
import { formatCounts } from '../run-counts.js';
import { renderTable } from '../table.js';

type Options = ServerOptions & { json?: boolean };

export function registerStacksCommand(program: Command): void {
  const stacks = program.command('stacks').description('the stacks of a running controller (capstan serve), through its API');

  addServerOptions(stacks.command('list'))
    .description('every stack: status, policy, commits, drift, last run')
    .option('--json', 'the server\'s answer as JSON')
    .action(async (options: Options) => {
      const client = await connect(options);
      const list = await client.get<StackView[]>('/api/stacks');
      if (options.json) return printJson(list);
      if (list.length === 0) return void process.stdout.write(`${client.server} follows no stacks.\n`);
      const rows = list.map((s) => [s.name, statusOf(s), s.policy, shortCommit(s.lastAppliedCommit), shortCommit(s.headCommit), String(s.drifted), s.lastRun ? `#${s.lastRun.id} ${s.lastRun.kind} ${s.lastRun.status}` : '-']);
      process.stdout.write(renderTable(['NAME', 'STATUS', 'POLICY', 'APPLIED', 'HEAD', 'DRIFTED', 'LAST RUN'], rows));
    });

  addServerOptions(stacks.command('show <name>'))
    .description('one stack in detail, with its current plan')
    .option('--json', 'the server\'s answer as JSON')
    .action(async (name: string, options: Options) => {
      const client = await connect(options);
      const s = await client.get<StackDetail>(`/api/stacks/${segment(name)}`);
      if (options.json) return printJson(s);
      const rows: [string, string][] = [
        ['Stack', s.name],
        ['Status', statusOf(s)],
        ['Policy', `${s.policy}${s.selfHeal ? ', self-heal' : ''}`],
        ['Source', `${s.repo} branch ${s.branch}, path ${s.path}`],
        ['Head', shortCommit(s.headCommit)],
        ['Applied', shortCommit(s.lastAppliedCommit)],
        ['Drifted', String(s.drifted)],
        ['Last run', s.lastRun ? `#${s.lastRun.id} ${s.lastRun.kind} ${s.lastRun.status} ${s.lastRun.startedAt} ${formatCounts(s.lastRun.counts)}` : '-'],
        ['Plan', s.plan ? describePlan(s.plan) : '-'],
      ];
      if (s.paused) rows.push(['Paused', `by ${s.paused.by} at ${s.paused.at} (resume: capstan stacks resume ${s.name})`]);
      if (s.rollback) rows.push(['Rollback', `to ${shortCommit(s.rollback.commit)} while the branch stays at ${shortCommit(s.rollback.head)}${s.rollback.by ? `, by ${s.rollback.by}` : ''}`]);
      if (s.branchMovedBackwards) rows.push(['Branch', s.branchMovedBackwards.message]);
      if (s.error) rows.push(['Error', s.error]);
      if (s.failures > 0) rows.push(['Failures', `${s.failures} in a row`]);
      if (s.lastPass) rows.push(['Last pass', `${s.lastPass.outcome} at ${s.lastPass.finishedAt} (${s.lastPass.durationMs} ms)${s.lastPass.error ? `: ${s.lastPass.error}` : ''}`]);
      rows.push(['Owner', s.owner ?? '-']);
      if (s.nextPassInMs !== null) rows.push(['Next pass', `in ${Math.ceil(s.nextPassInMs / 1000)} s`]);
      const width = Math.max(...rows.map(([k]) => k.length));
      process.stdout.write(rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n') + '\n');
    });

  addServerOptions(stacks.command('plan <name>'))
    .description('the stack\'s current plan, as `capstan plan` shows it (exit 1 when it has errors)')
    .option('--json', 'the plan and its summary as JSON')
    .option('--detailed-exitcode', 'exit 0 when there are no changes, 2 when there are, 1 on error')
    .action(async (name: string, options: Options & { detailedExitcode?: boolean }) => {
      const client = await connect(options);
      const stack = await client.get<StackView>(`/api/stacks/${segment(name)}`);
      // An invalid spec at the head has no plan: the stored one, if any, is of an earlier commit.
      const invalid = stack.status === 'invalid';
      const plan = await client.get<PlanView>(`/api/stacks/${segment(name)}/plan`).catch((err: unknown) => {
        if (invalid && err instanceof ApiError && err.status === 404) return null;
        throw err;
      });
      const failed = invalid || plan!.diagnostics.some((d) => d.severity === 'error');
      if (invalid) process.stderr.write(`Error: stack ${name} cannot be planned at commit ${shortCommit(stack.headCommit)}: ${stack.error ?? 'the spec is invalid'}\n`);
      if (options.json) printJson(plan);
      else if (!plan) process.stderr.write('It has no earlier plan either.\n');
      else if (invalid) process.stderr.write(`The last plan, ${describePlan(plan)}, is of an earlier commit.\n`);
      else {
        (failed ? process.stderr : process.stdout).write(plan.text.endsWith('\n') ? plan.text : `${plan.text}\n`);
        process.stdout.write(`\n${describePlan(plan)}\n`);
        if (plan.state === 'pending') process.stdout.write(`Approve it with: capstan stacks approve ${name} --plan ${plan.id}\n`);
      }
      process.exitCode = failed ? 1 : options.detailedExitcode && changeCount(plan!) > 0 ? 2 : 0;
    });

  postAction(stacks, 'sync', 'ask for a pass now: re-read git and the live state, apply what the policy allows (operator)', (name, answer: { status: string }) =>
    `Sync of stack ${name} ${answer.status}; follow it with: capstan stacks show ${name}`,
  );

  postAction(
    stacks,
    'approve',
    'approve the plan that awaits approval; the controller applies it (operator)',
    (name, answer: { planId: string; commit: string | null }) => `Approved plan ${answer.planId} of stack ${name} (commit ${shortCommit(answer.commit)}); the controller applies it now.`,
    { flags: '--plan <id>', description: 'approve only this plan (as `stacks plan` shows it): refused if another one awaits', body: (plan) => (plan === undefined ? {} : { planId: plan }) },
  );

  postAction(
    stacks,
    'rollback',
    'apply an earlier commit of the stack\'s branch (or one it applied before) until the next push (operator)',
    (name, answer: { commit: string; until: string }) => `Rollback of stack ${name} to ${shortCommit(answer.commit)} queued; it lasts until ${answer.until}.`,
    { flags: '--to <commit>', description: 'the commit to go back to (7 to 64 hex digits)', required: true, body: (commit) => ({ commit }) },
  );

  postAction(stacks, 'pause', 'stop reconciling the stack (no fetch, plan, apply or heal) until it is resumed (operator)', (name) =>
    `Stack ${name} is paused: the controller leaves it alone until \`capstan stacks resume ${name}\`.`,
  );

  postAction(stacks, 'resume', 'reconcile a paused stack again, starting with a pass now (operator)', (name) => `Stack ${name} is reconciled again; a pass is queued.`);
}

/** The value a `stacks` action sends in its body, from its one option. */
interface ActionOption {
  readonly flags: string;
  readonly description: string;
  readonly required?: boolean;
  body(value: string | undefined): Record<string, unknown>;
}

/** `stacks ACTION NAME`: POST /api/stacks/NAME/ACTION; prints `done(answer)`, or the answer with --json. */
function postAction<A>(stacks: Command, action: string, description: string, done: (name: string, answer: A) => string, option?: ActionOption): void {
  const cmd = addServerOptions(stacks.command(`${action} <name>`)).description(description).option('--json', 'the server\'s answer as JSON');
  const extra = option ? new Option(option.flags, option.description).makeOptionMandatory(option.required ?? false) : undefined;
  if (extra) cmd.addOption(extra);
  cmd.action(async (name: string, options: Options & Record<string, string | undefined>) => {
    const client = await connect(options);
    const answer = await client.post<A>(`/api/stacks/${segment(name)}/${action}`, option && extra ? option.body(options[extra.attributeName()]) : undefined);
    if (options.json) return printJson(answer);
    process.stdout.write(done(name, answer) + '\n');
  });
}

function statusOf(s: StackView): string {
  return s.branchMovedBackwards ? `${s.status} (branch moved backwards)` : s.status;
}

function changeCount(plan: PlanSummary): number {
  return Object.entries(plan.counts).reduce((n, [action, count]) => (action === 'noop' ? n : n + count), 0);
}

function describePlan(plan: PlanSummary): string {
  const counts = Object.entries(plan.counts)
    .filter(([action]) => action !== 'noop')
    .map(([action, n]) => `${n} to ${action}`);
  const decided = plan.decidedBy ? `, ${plan.state} by ${plan.decidedBy}` : '';
  return `plan ${plan.id} (${plan.state}${decided}) of commit ${shortCommit(plan.commit)}: ${counts.length ? counts.join(', ') : 'no changes'}`;
}
