/**
 * Stack-wide budgets: what one stack's load may spend in total, whatever the size
 * of each file or template (Argo CD's `max.combined.directory.manifests.size`).
 *
 * - YAML bytes: all the stack's YAML files together, checked before any is parsed.
 * - Render time: milliseconds spent rendering templates, summed over every render
 *   of the stack (renders run in parallel in the render pool).
 * - Rendered bytes: the size of the specs of the stack's instances, each instance
 *   counted (a 15 MB template output on 40 hosts is 600 MB).
 *
 * Over a budget the stack is invalid with one diagnostic that names the budget,
 * the amount, the limit, the option that sets it, and the files or resources that
 * used most of it; the load stops spending (no more renders), so memory and time
 * stay bounded by the limit plus what was in flight.
 */
import { error, type Diagnostic, type SourcePosition } from '../diag/diagnostic.js';

export const MAX_STACK_YAML_BYTES = 64 * 1024 * 1024;
export const MAX_STACK_RENDER_TIME_MS = 30_000;
export const MAX_STACK_RENDERED_BYTES = 256 * 1024 * 1024;

export type BudgetName = 'renderTime' | 'renderedBytes';

interface Use {
  amount: number;
  /** Instances (or renders) that used it. */
  count: number;
  readonly source: SourcePosition | undefined;
}

/** How many of the largest users a budget message lists. */
const SHOWN = 5;

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} bytes`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GiB`;
}

function formatMs(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

const BUDGETS: Record<BudgetName, { what: string; option: string; format: (n: number) => string }> = {
  renderTime: { what: 'template render time', option: 'maxRenderTimeMs; serve config limits.renderTime', format: formatMs },
  renderedBytes: { what: 'rendered size (the specs of all instances)', option: 'maxRenderedBytes; serve config limits.renderedBytes', format: formatBytes },
};

/** One load's spending against its render budgets. Not thread-safe, not shared between loads. */
export class StackBudget {
  private readonly spent: Record<BudgetName, number> = { renderTime: 0, renderedBytes: 0 };
  private readonly users: Record<BudgetName, Map<string, Use>> = { renderTime: new Map(), renderedBytes: new Map() };
  private over: BudgetName | undefined;

  constructor(readonly limits: Readonly<Record<BudgetName, number>>) {}

  /** Records `amount` spent by `who` (a resource address or template path). Returns false once the budget is over. */
  charge(budget: BudgetName, who: string, amount: number, source?: SourcePosition): boolean {
    this.spent[budget] += amount;
    const use = this.users[budget].get(who);
    if (use) {
      use.amount += amount;
      use.count++;
    } else {
      this.users[budget].set(who, { amount, count: 1, source });
    }
    if (this.over === undefined && this.spent[budget] > this.limits[budget]) this.over = budget;
    return this.over === undefined;
  }

  /** What is left of a budget (0 once spent). */
  left(budget: BudgetName): number {
    return Math.max(0, this.limits[budget] - this.spent[budget]);
  }

  /** Marks a budget as spent although the last charge did not cross it (a render stopped at the budget's edge). */
  exhaust(budget: BudgetName): void {
    this.over ??= budget;
  }

  /** The first budget that ran out, if any. */
  get exceeded(): BudgetName | undefined {
    return this.over;
  }

  /** The one diagnostic for the budget that ran out. */
  diagnostic(): Diagnostic | undefined {
    const budget = this.over;
    if (budget === undefined) return undefined;
    const { what, option, format } = BUDGETS[budget];
    const top = [...this.users[budget]].sort((a, b) => b[1].amount - a[1].amount).slice(0, SHOWN);
    const unit = budget === 'renderTime' ? 'renders' : 'instances';
    const most = top.map(([who, use]) => `${who} ${format(use.amount)}${use.count > 1 ? ` (${use.count} ${unit})` : ''}`).join(', ');
    return error(`the stack is over its ${what} budget: ${format(this.spent[budget])} spent (and stopped there), over the limit of ${format(this.limits[budget])} for the whole stack`, {
      source: top[0]?.[1].source,
      detail: `most used by ${most}; make the templates cheaper, split the stack, or raise the limit (${option})`,
    });
  }
}

/**
 * The diagnostic for a stack whose YAML files together are over `limit` bytes
 * (checked before any is parsed: nothing of such a stack is read further), or undefined.
 */
export function yamlBudgetDiagnostic(files: readonly { readonly file: string; readonly size: number }[], limit: number): Diagnostic | undefined {
  const total = files.reduce((sum, f) => sum + f.size, 0);
  if (total <= limit) return undefined;
  const largest = [...files].sort((a, b) => b.size - a.size || (a.file < b.file ? -1 : 1)).slice(0, SHOWN);
  return error(`the stack's YAML files are ${formatBytes(total)} together (${files.length} files), over the limit of ${formatBytes(limit)} for the whole stack: nothing was parsed`, {
    source: largest[0] ? { file: largest[0].file, line: 1, col: 1 } : undefined,
    detail: `largest: ${largest.map((f) => `${f.file} ${formatBytes(f.size)}`).join(', ')}; split the stack or raise the limit (maxStackYamlBytes; serve config limits.yamlBytes)`,
  });
}
