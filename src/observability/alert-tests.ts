/**
 * `capstan test` for alerting: renders the rule files and the tests (generated
 * for each SLO, written by hand as AlertTest resources) into a work directory,
 * runs `promtool check rules` on every rule file, `promtool test rules` on every
 * test file and `amtool check-config` on every Alertmanager configuration. Each
 * check and each test file counts as one test.
 */
import { execa } from 'execa';
import { relative } from 'node:path';
import type { Resource } from '../spec/resource.js';
import { renderArtifacts } from './render.js';

export interface AlertTestResult {
  readonly passed: number;
  readonly failed: number;
  /** promtool's output, each run introduced by a line naming what was run. */
  readonly output: string;
}

export interface AlertTestOptions {
  /** The promtool binary (default: `$CAPSTAN_PROMTOOL` or `promtool` on PATH). */
  readonly promtool?: string | undefined;
  /** The amtool binary (default: `$CAPSTAN_AMTOOL` or `amtool` on PATH). */
  readonly amtool?: string | undefined;
  readonly timeoutMs?: number | undefined;
}

export async function runAlertTests(resources: Resource[], workDir: string, options: AlertTestOptions = {}): Promise<AlertTestResult> {
  const promtool = options.promtool ?? process.env['CAPSTAN_PROMTOOL'] ?? 'promtool';
  const amtool = options.amtool ?? process.env['CAPSTAN_AMTOOL'] ?? 'amtool';
  const timeout = options.timeoutMs ?? 120_000;
  const written = await renderArtifacts(resources, workDir);
  const rel = (p: string): string => relative(workDir, p).split('\\').join('/');
  const ruleFiles = written.filter((p) => rel(p).startsWith('prometheus/rules/'));
  const testFiles = written.filter((p) => rel(p).startsWith('prometheus/tests/'));
  const amFiles = written.filter((p) => rel(p).startsWith('alertmanager/'));
  let passed = 0;
  let failed = 0;
  const out: string[] = [];
  const run = async (label: string, args: string[], bin = promtool): Promise<void> => {
    const res = await execa(bin, args, { cwd: workDir, reject: false, timeout, all: true });
    const ok = res.exitCode === 0;
    if (ok) passed++;
    else failed++;
    const text = String(res.all ?? '').trim() || (res.exitCode === undefined ? (res.message ?? '') : '');
    out.push(`${ok ? 'PASS' : 'FAIL'} ${label}${ok ? '' : `\n${indent(text)}`}`);
  };
  for (const file of ruleFiles) await run(`promtool check rules ${rel(file)}`, ['check', 'rules', rel(file)]);
  for (const file of testFiles) await run(`promtool test rules ${rel(file)}`, ['test', 'rules', rel(file)]);
  for (const file of amFiles) await run(`amtool check-config ${rel(file)}`, ['check-config', rel(file)], amtool);
  return { passed, failed, output: out.join('\n') + (out.length > 0 ? '\n' : '') };
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');
}
