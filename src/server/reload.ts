/**
 * Reloads the stack list of a running controller from the file it was started
 * with (`POST /api/stacks/reload`, SIGHUP): the same loader and validation as
 * at start, and an invalid file changes nothing. Only `stacks` is applied; the
 * rest of the file (listen, state, concurrency, timeouts, webhook limits) is
 * validated but takes effect on the next restart.
 */
import { DiagnosticsError, formatDiagnostic } from '../diag/diagnostic.js';
import { loadControllerConfig } from '../reconcile/config.js';
import type { Controller, StacksDiff } from '../reconcile/controller.js';
import type { ControllerMetrics } from './metrics.js';

export const RELOAD_NOTE = 'only the stacks section is reloaded: listen, state and the other settings take effect on restart';

export type ReloadResult = { readonly ok: true; readonly file: string; readonly diff: StacksDiff } | { readonly ok: false; readonly file: string; readonly errors: readonly string[] };

/** Reads `file` and applies its stacks; `ok: false` with the loader's messages (`FILE:LINE:COL: ...`) when it is invalid. */
export async function reloadStacks(file: string, controller: Controller, metrics?: ControllerMetrics): Promise<ReloadResult> {
  let config;
  try {
    config = await loadControllerConfig(file);
  } catch (err) {
    if (err instanceof DiagnosticsError) return { ok: false, file, errors: err.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic) };
    throw err;
  }
  const diff = await controller.setStacks(config.stacks);
  metrics?.declareStacks(config.stacks.filter((s) => diff.added.includes(s.name)));
  return { ok: true, file, diff };
}
