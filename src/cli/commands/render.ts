import path from 'node:path';
import type { Command } from 'commander';
import { hasErrors } from '../../diag/diagnostic.js';
import { renderArtifacts, renderFiles } from '../../observability/render.js';
import { addSourceOptions, loadSpec, reportDiagnostics, type SourceOptions } from '../context.js';

export function registerRenderCommand(program: Command): void {
  addSourceOptions(program.command('render [dir]'))
    .description('write every generated artefact (Prometheus rule files and tests, Alertmanager config, Grafana dashboards) to OUT for inspection')
    .requiredOption('--out <dir>', 'directory to write into (created when missing; existing files of the same names are overwritten)')
    .option('--json', 'print the written files as JSON')
    .option('--dry-run', 'list the files it would write to OUT, and write nothing')
    .action(async (dir: string | undefined, options: SourceOptions & { out: string; json?: boolean; dryRun?: boolean }) => {
      const { stack } = await loadSpec(dir, options);
      if (reportDiagnostics(stack.diagnostics) || hasErrors(stack.diagnostics)) {
        process.exitCode = 1;
        return;
      }
      const out = path.resolve(options.out);
      const written = options.dryRun
        ? renderFiles([...stack.resources]).map((f) => path.join(out, ...f.path.split('/'))).sort()
        : await renderArtifacts([...stack.resources], out);
      const shown = written.map((p) => path.relative(process.cwd(), p) || p);
      if (options.json) process.stdout.write(JSON.stringify({ out, files: written, ...(options.dryRun ? { dryRun: true } : {}) }, null, 2) + '\n');
      else if (options.dryRun && written.length > 0) process.stdout.write(`Would write ${written.length} file(s) to ${path.relative(process.cwd(), out) || out}:\n${shown.map((p) => `  ${p}\n`).join('')}`);
      else if (written.length === 0) process.stdout.write('Nothing to render: the spec has no SLO, AlertRules, AlertTest, Alerting or Dashboard resources.\n');
      else process.stdout.write(`Wrote ${written.length} file(s):\n${shown.map((p) => `  ${p}\n`).join('')}`);
      process.exitCode = 0;
    });
}
