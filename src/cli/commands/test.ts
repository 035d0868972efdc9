import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { hasErrors } from '../../diag/diagnostic.js';
import { runAlertTests } from '../../observability/alert-tests.js';
import { addSourceOptions, loadSpec, reportDiagnostics, type SourceOptions } from '../context.js';

interface TestOptions extends SourceOptions {
  promtool?: string;
  amtool?: string;
  workDir?: string;
  json?: boolean;
}

export function registerTestCommand(program: Command): void {
  addSourceOptions(program.command('test [dir]'))
    .description('run the alerting tests: promtool check of every rule file, the AlertTest resources, the tests generated for each SLO, amtool check of every Alertmanager configuration')
    .option('--promtool <path>', 'the promtool binary (default: $CAPSTAN_PROMTOOL or promtool on PATH)')
    .option('--amtool <path>', 'the amtool binary (default: $CAPSTAN_AMTOOL or amtool on PATH)')
    .option('--work-dir <dir>', 'render into this directory and keep it (default: a temporary directory, removed afterwards)')
    .option('--json', 'print the result as JSON')
    .action(async (dir: string | undefined, options: TestOptions) => {
      const { stack } = await loadSpec(dir, options);
      if (reportDiagnostics(stack.diagnostics) || hasErrors(stack.diagnostics)) {
        process.exitCode = 1;
        return;
      }
      const workDir = options.workDir ? path.resolve(options.workDir) : await mkdtemp(path.join(os.tmpdir(), 'capstan-test-'));
      try {
        const result = await runAlertTests([...stack.resources], workDir, { promtool: options.promtool, amtool: options.amtool });
        if (options.json) {
          process.stdout.write(JSON.stringify(result, null, 2) + '\n');
        } else {
          process.stdout.write(result.output);
          process.stdout.write(`${result.passed} passed, ${result.failed} failed\n`);
        }
        process.exitCode = result.failed > 0 ? 1 : 0;
      } finally {
        if (!options.workDir) await rm(workDir, { recursive: true, force: true });
      }
    });
}
