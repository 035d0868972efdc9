import path from 'node:path';
import type { Command } from 'commander';
import { formatDiagnostic, hasErrors, sortDiagnostics } from '../../diag/diagnostic.js';
import { runPolicyTests } from '../../policy/policy-test.js';

export function registerPolicyCommand(program: Command): void {
  const policy = program.command('policy').description('policies checked against every plan (docs/policies.md)');
  policy
    .command('test [dir]')
    .description('run the PolicyTest cases under DIR (default .) against its Policy documents; exit 1 when one fails')
    .action(async (dir: string | undefined) => {
      const root = path.resolve(dir ?? '.');
      const run = await runPolicyTests(root);
      for (const d of sortDiagnostics(run.diagnostics)) process.stderr.write(formatDiagnostic(d) + '\n');
      let failed = 0;
      for (const c of run.cases) {
        const where = `${c.source.file}:${c.source.line}:${c.source.col}`;
        if (c.failures.length === 0) {
          process.stdout.write(`PASS ${c.test}: ${c.name}\n`);
          continue;
        }
        failed++;
        process.stdout.write(`FAIL ${where}: ${c.test}: ${c.name}\n`);
        for (const f of c.failures) {
          process.stdout.write(`  Policy/${f.policy}: expected ${f.expected}, got ${f.actual}${f.messages.length > 0 ? ` (${f.messages.join('; ')})` : ''}\n`);
        }
      }
      process.stdout.write(`\n${run.cases.length - failed} passed, ${failed} failed (${run.policies} policies)\n`);
      process.exitCode = failed > 0 || hasErrors(run.diagnostics) ? 1 : 0;
    });
}
