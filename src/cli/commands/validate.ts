import type { Command } from 'commander';
import { hasErrors } from '../../diag/diagnostic.js';
import { addSourceOptions, loadSpec, reportDiagnostics, type SourceOptions } from '../context.js';

export function registerValidateCommand(program: Command): void {
  addSourceOptions(program.command('validate [dir]'))
    .description('load and check the spec: schemas, references, cycles; print every problem')
    .option('--json', 'print diagnostics as JSON')
    .action(async (dir: string | undefined, options: SourceOptions & { json?: boolean }) => {
      const { stack } = await loadSpec(dir, options, { workTree: false });
      if (options.json) {
        process.stdout.write(JSON.stringify({ valid: !hasErrors(stack.diagnostics), diagnostics: stack.diagnostics, resources: stack.resources.length, targets: stack.targets.length, files: stack.files.length }, null, 2) + '\n');
      } else if (!reportDiagnostics(stack.diagnostics)) {
        process.stdout.write(`Valid: ${stack.resources.length} resource(s) on ${stack.targets.length} target(s) in ${stack.files.length} file(s).\n`);
      }
      process.exitCode = hasErrors(stack.diagnostics) ? 1 : 0;
    });
}
