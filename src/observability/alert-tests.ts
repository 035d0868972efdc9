/**
 * `capstan test` for alerting: renders the rule files and the tests (generated
 * for each SLO, written by hand as AlertTest resources) into a work directory,
 * runs `promtool check rules` on every rule file, `promtool test rules` on every
 * test file and `amtool check-config` on every Alertmanager configuration. Each
 * check and each test file counts as one test.
 *
 * A failure names the YAML it comes from, not the rendered file: the resource's
 * FILE:LINE:COL, and for each failing AlertTest case the position of that case
 * (see locate-failures.ts).
 */
import { execa } from 'execa';
import { mkdir, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { SourcePosition } from '../diag/diagnostic.js';
import type { Resource } from '../spec/resource.js';
import { missingProgram } from '../util/prerequisites.js';
import { locateFailures } from './locate-failures.js';
import { renderFiles } from './render.js';

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

/** Throws MissingProgramError (one line naming the Debian package) when promtool or amtool is not installed. */
export async function runAlertTests(resources: Resource[], workDir: string, options: AlertTestOptions = {}): Promise<AlertTestResult> {
  const promtool = options.promtool ?? process.env['CAPSTAN_PROMTOOL'] ?? 'promtool';
  const amtool = options.amtool ?? process.env['CAPSTAN_AMTOOL'] ?? 'amtool';
  const timeout = options.timeoutMs ?? 120_000;
  const files = renderFiles(resources);
  for (const f of files) {
    const path = join(workDir, ...f.path.split('/'));
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, f.content);
  }
  const byAddress = new Map<string, Resource>();
  for (const r of resources) if (!byAddress.has(`${r.kind}/${r.name}`)) byAddress.set(`${r.kind}/${r.name}`, r);
  const sorted = [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  let passed = 0;
  let failed = 0;
  const out: string[] = [];
  const run = async (bin: string, args: readonly string[], file: (typeof files)[number]): Promise<void> => {
    const command = `${basename(bin)} ${args.join(' ')}`;
    const res = await execa(bin, [...args, file.path], { cwd: workDir, reject: false, timeout, all: true });
    const notFound = missingProgram(bin, res.cause);
    if (notFound) throw notFound;
    const ok = res.exitCode === 0;
    if (ok) passed++;
    else failed++;
    if (ok) {
      out.push(`PASS ${command} ${file.path}`);
      return;
    }
    const text = String(res.all ?? '').trim() || (res.exitCode === undefined ? (res.message ?? '') : '');
    const resource = byAddress.get(file.address);
    const where = resource ? `${at(resource.source)}: ` : '';
    const output = resource && file.role === 'test' && resource.kind === 'AlertTest' ? locateFailures(text, resource) : text;
    out.push(`FAIL ${where}${file.address}: ${command} (rendered as ${file.path})\n${indent(output)}`);
  };
  for (const f of sorted) if (f.role === 'rules') await run(promtool, ['check', 'rules'], f);
  for (const f of sorted) if (f.role === 'test') await run(promtool, ['test', 'rules'], f);
  for (const f of sorted) if (f.role === 'alertmanager') await run(amtool, ['check-config'], f);
  return { passed, failed, output: out.join('\n') + (out.length > 0 ? '\n' : '') };
}

export function at(p: SourcePosition): string {
  return `${p.file}:${p.line}:${p.col}`;
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');
}
