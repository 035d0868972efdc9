/** The CI templates in ci-templates/: GitHub's own workflow parser for the Actions workflow, a structural check for GitLab. */
import { convertWorkflowTemplate, NoOperationTraceWriter, parseWorkflow } from '@actions/workflow-parser';
import { execa } from 'execa';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ROOT } from '../e2e/harness.js';
import { gitlabCiProblems } from './gitlab-ci-structure.js';

const GITHUB = path.join(ROOT, 'ci-templates/github/capstan.yml');
const GITLAB = path.join(ROOT, 'ci-templates/gitlab/capstan.gitlab-ci.yml');
const MARKER = '<!-- capstan-plan -->';
const PLAN_FLAGS = ['--offline', '${CAPSTAN_PLAN_STATE:+--state "$CAPSTAN_PLAN_STATE"}', '--format markdown --out-json plan.json > plan.md'];

/** The errors of GitHub's workflow parser (schema workflow-v1.0) and of its conversion to a workflow. */
async function workflowProblems(name: string, content: string): Promise<string[]> {
  const parsed = parseWorkflow({ name, content }, new NoOperationTraceWriter());
  const problems = parsed.context.errors.getErrors().map((e) => e.message);
  if (parsed.value === undefined) return [...problems, 'no workflow'];
  const template = await convertWorkflowTemplate(parsed.context, parsed.value);
  return [...new Set([...problems, ...(template.errors ?? []).map((e) => e.Message)])];
}

/** Runs a template's policy-test step in bash in a stack with or without a PolicyTest document, `capstan` recorded by a shell function. */
async function policyStep(snippet: string): Promise<{ without: string; with: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-ci-policy-'));
  try {
    const run = async () => (await execa('bash', ['-euo', 'pipefail', '-c', `capstan() { echo "capstan $*"; }\n${snippet}`], { env: { CAPSTAN_DIR: dir } })).stdout;
    await writeFile(path.join(dir, 'site.yaml'), 'kind: File\nname: motd\n');
    const without = await run();
    await writeFile(path.join(dir, 'policy-tests.yaml'), '# cases\nkind: PolicyTest\nname: sudoers\n');
    return { without, with: await run() };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

interface Step { name?: string; uses?: string; run?: string; with?: Record<string, unknown>; if?: string; env?: Record<string, string> }
interface Job { if?: string; permissions?: Record<string, string>; steps: Step[] }

describe('ci-templates/github/capstan.yml', () => {
  const text = readFileSync(GITHUB, 'utf8');
  const workflow = parse(text) as { on: Record<string, unknown>; permissions: Record<string, string>; concurrency: { group: string }; jobs: Record<string, Job> };

  it('passes GitHub\'s workflow parser, which reports a broken copy by line and column', async () => {
    expect(await workflowProblems('capstan.yml', text)).toEqual([]);
    const broken = text.replace('pull-requests: write', 'pull-requests: rite').replace('    runs-on: ubuntu-latest\n    permissions:', '    run-on: ubuntu-latest\n    permissions:');
    const problems = await workflowProblems('capstan.yml', broken);
    expect(problems.join('\n')).toMatch(/capstan\.yml \(Line: \d+, Col: \d+\): Unexpected value 'rite'/);
    expect(problems.join('\n')).toMatch(/Unexpected value 'run-on'/);
  });

  it('plans pull requests offline against the base commit with least privilege, and posts one comment found by the marker', () => {
    expect(Object.keys(workflow.on).sort()).toEqual(['pull_request', 'push']);
    expect(workflow.permissions).toEqual({ contents: 'read' });
    const plan = workflow.jobs.plan!;
    expect(plan.if).toBe("github.event_name == 'pull_request'");
    expect(plan.permissions).toEqual({ contents: 'read', 'pull-requests': 'write' });
    const checkout = plan.steps.find((s) => s.uses?.startsWith('actions/checkout@'));
    expect(checkout?.with?.['fetch-depth']).toBe(0);
    expect(plan.steps.find((s) => s.uses?.startsWith('actions/setup-node@'))?.with?.['node-version']).toBe(20);
    const runs = plan.steps.map((s) => s.run ?? '').join('\n');
    for (const command of ['npm install -g "capstan@', 'capstan validate "$CAPSTAN_DIR"', 'capstan test "$CAPSTAN_DIR"', 'capstan policy test "$CAPSTAN_DIR"']) expect(runs).toContain(command);
    const planStep = plan.steps.find((s) => s.run?.startsWith('capstan plan'))!;
    expect(planStep.env?.BASE_SHA).toBe('${{ github.event.pull_request.base.sha }}');
    expect(planStep.run).toContain('--base "$BASE_SHA"');
    for (const flag of PLAN_FLAGS) expect(planStep.run).toContain(flag);
    expect(plan.steps.find((s) => s.uses?.startsWith('actions/upload-artifact@'))?.with?.path).toBe('plan.json');
    const script = String(plan.steps.find((s) => s.uses?.startsWith('actions/github-script@'))?.with?.script);
    expect(script).toContain(`const marker = '${MARKER}'`);
    expect(script).toMatch(/updateComment[\s\S]*createComment/);
    expect(workflow.concurrency.group).toContain('${{ github.ref }}');
    expect((workflow.jobs.plan as Job & { env: Record<string, string> }).env).toEqual({
      CAPSTAN_AGE_IDENTITY: '${{ secrets.CAPSTAN_PLAN_AGE_IDENTITY }}',
      CAPSTAN_PLAN_STATE: '${{ secrets.CAPSTAN_PLAN_STATE }}',
    });
  });

  it('runs capstan policy test only on a stack with PolicyTest documents (the command fails without any)', async () => {
    const step = workflow.jobs.plan!.steps.find((s) => s.name === 'Policy tests')!;
    const out = await policyStep(step.run!);
    expect(out.without).toMatch(/^No PolicyTest documents under .*: policy tests skipped$/);
    expect(out.with).toMatch(/^capstan policy test \S+capstan-ci-policy-\w+$/);
  });

  it('on the default branch applies or asks the controller for a pass, chosen by vars.CAPSTAN_DEPLOY', () => {
    const { apply, notify } = workflow.jobs;
    expect(apply?.if).toContain("vars.CAPSTAN_DEPLOY == 'apply'");
    expect(notify?.if).toContain("vars.CAPSTAN_DEPLOY == 'sync'");
    for (const job of [apply, notify]) expect(job?.if).toContain("github.ref == format('refs/heads/{0}', github.event.repository.default_branch)");
    const applyStep = apply!.steps.find((s) => s.run?.startsWith('capstan apply'))!;
    expect(applyStep.run).toContain('--yes');
    expect(applyStep.env?.CAPSTAN_AGE_IDENTITY).toBe('${{ secrets.CAPSTAN_AGE_IDENTITY }}');
    const syncStep = notify!.steps.find((s) => s.run?.startsWith('capstan stacks sync'))!;
    expect(syncStep.env?.CAPSTAN_TOKEN).toBe('${{ secrets.CAPSTAN_TOKEN }}');
    expect(syncStep.env?.CAPSTAN_SERVER).toBeDefined();
  });
});

describe('ci-templates/gitlab/capstan.gitlab-ci.yml', () => {
  const text = readFileSync(GITLAB, 'utf8');
  const pipeline = parse(text) as Record<string, { script?: string[]; before_script?: string[]; rules?: { if: string }[]; extends?: string }> & { stages: string[] };

  it('has only known keywords, every job in a declared stage with a script, and well-formed rules; a broken copy is reported by job', () => {
    expect(gitlabCiProblems(pipeline)).toEqual([]);
    const broken = parse(text) as Record<string, Record<string, unknown>>;
    broken.plan!.stage = 'review';
    broken.validate!.rules = [{ iff: '$CI_PIPELINE_SOURCE == "merge_request_event"' }];
    broken.apply!.extends = '.nowhere';
    broken.notify!.scrip = broken.notify!.script;
    delete broken.notify!.script;
    expect(gitlabCiProblems(broken)).toEqual([
      'validate: rules[0]: unknown clause iff',
      'plan: stage review is not in stages [check, plan, deploy]',
      'apply: extends .nowhere, which is not a hidden job in this file',
      'notify: unknown keyword scrip',
      'notify: no script',
    ]);
  });

  it('runs capstan policy test only on a stack with PolicyTest documents, as the GitHub workflow does', async () => {
    const out = await policyStep((pipeline['policy-tests']?.script ?? []).join('\n'));
    expect(out.without).toMatch(/^No PolicyTest documents under .*: policy tests skipped$/);
    expect(out.with).toMatch(/^capstan policy test \S+capstan-ci-policy-\w+$/);
  });

  it('runs the same checks and offline plan on merge requests and updates one note found by the marker', () => {
    const mr = ['validate', 'alert-tests', 'policy-tests', 'plan'];
    for (const job of mr) expect(pipeline[job]?.extends, job).toBe('.merge-request');
    expect(pipeline['.merge-request']?.rules).toEqual([{ if: '$CI_PIPELINE_SOURCE == "merge_request_event"' }]);
    // The plan identity, not the deploy one, in every merge-request job (alert-tests has its own before_script).
    for (const job of ['.merge-request', 'alert-tests']) expect(pipeline[job]?.before_script?.[0], job).toBe('export CAPSTAN_AGE_IDENTITY="${CAPSTAN_PLAN_AGE_IDENTITY:-}"');
    const script = (job: string) => (pipeline[job]?.script ?? []).join('\n');
    expect(script('validate')).toContain('capstan validate "$CAPSTAN_DIR"');
    expect(script('alert-tests')).toContain('capstan test "$CAPSTAN_DIR"');
    expect(script('policy-tests')).toContain('capstan policy test "$CAPSTAN_DIR"');
    expect(script('plan')).toContain('--base "$CI_MERGE_REQUEST_DIFF_BASE_SHA"');
    for (const flag of PLAN_FLAGS) expect(script('plan')).toContain(flag);
    expect(script('plan')).toContain(`const marker = "${MARKER}"`);
    expect(script('plan')).toContain('"PRIVATE-TOKEN": process.env.CAPSTAN_GITLAB_TOKEN');
    expect(script('plan')).toMatch(/method: "PUT"[\s\S]*method: "POST"/);
    expect(pipeline.apply?.rules?.[0]?.if).toBe('$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && $CAPSTAN_DEPLOY == "apply"');
    expect(pipeline.notify?.rules?.[0]?.if).toBe('$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && $CAPSTAN_DEPLOY == "sync"');
    expect(script('apply')).toContain('capstan apply "$CAPSTAN_DIR" --state "$CAPSTAN_STATE" --yes');
    expect(script('notify')).toContain('capstan stacks sync');
  });
});
