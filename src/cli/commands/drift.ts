import path from 'node:path';
import type { Command } from 'commander';
import { detectDrift } from '../../plan/drift.js';
import { defaultRegistry } from '../../providers/index.js';
import { TargetPool } from '../../providers/target-pool.js';
import { renderFieldChanges } from '../../plan/render-text.js';
import { addStateOptions, loadKeyring, openStateStore, useColor } from '../context.js';

export function registerDriftCommand(program: Command): void {
  addStateOptions(program.command('drift [dir]'))
    .description('compare the live state with what was last applied (exit 0 in sync, 2 drift, 1 error)')
    .option('--json', 'print the drift report as JSON')
    .option('--identity <file>', 'age identity file: its key digests sensitive files (default: $CAPSTAN_AGE_IDENTITY_FILE, then $CAPSTAN_AGE_IDENTITY)')
    .action(async (dir: string | undefined, options: { state?: string; stack: string; json?: boolean; identity?: string }) => {
      const registry = defaultRegistry();
      const keyring = await loadKeyring(options);
      const store = await openStateStore(dir, options, { readOnly: true });
      // The spec directory (default: the current one): Host key files named relative to it resolve there.
      const targets = new TargetPool(registry, { signal: new AbortController().signal, repoDir: path.resolve(dir ?? '.'), digester: keyring.digester });
      try {
        const report = await detectDrift({ stack: options.stack, store, registry, targets });
        if (options.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
        else {
          for (const r of report.resources) {
            if (r.status === 'in-sync') continue;
            if (r.status === 'error') process.stdout.write(`! ${r.address}: ${r.error}\n`);
            else if (r.status === 'missing') process.stdout.write(`- ${r.address}: missing\n`);
            else {
              // The same field lines as the plan: what re-applying would change (- live, + last applied).
              const lines = renderFieldChanges(r.fields, 'update', { color: useColor(process.stdout) });
              process.stdout.write(`~ ${r.address}: ${r.fields.map((f) => f.path).join(', ')} drifted\n${lines.map((l) => `${l}\n`).join('')}`);
            }
          }
          const inSync = report.resources.length - report.drifted - report.errors;
          process.stdout.write(`Drift: ${report.drifted} drifted, ${inSync} in sync${report.errors ? `, ${report.errors} not readable` : ''} (stack ${report.stack}).\n`);
        }
        process.exitCode = report.errors > 0 ? 1 : report.drifted > 0 ? 2 : 0;
      } finally {
        await targets.close();
        await store.close();
      }
    });
}
