/**
 * Apply progress. On a terminal: each change's result as it finishes (created,
 * updated, failed..., with its duration), under a status line redrawn in place:
 * a bar, done/total, failures, what is running. Elsewhere (CI logs, pipes): one
 * plain line per finished change, no escape codes.
 *
 * The words are the plan's (src/plan/render-text.ts) in the past tense: a
 * notified change is "refreshed", an adopted one "adopted", one Capstan stops
 * managing without touching it "forgotten".
 */
import type { ApplyReporter, ChangeOutcome } from '../apply/reporter.js';
import type { PlannedChange } from '../plan/plan.js';

const PAST: Record<string, string> = { create: 'created', update: 'updated', replace: 'replaced', delete: 'deleted', noop: 'recorded' };

/** `tty` forces the terminal display (`--progress`) or the plain lines (`--no-progress`); default: whether `stream` is a terminal. */
export function progressReporter(stream: NodeJS.WriteStream, options: { tty?: boolean | undefined } = {}): ApplyReporter {
  return (options.tty ?? stream.isTTY === true) ? new TerminalProgress(stream) : new LineProgress(stream);
}

/** What happened to a change, in the plan's words. */
export function pastTense(change: PlannedChange): string {
  if (change.forget) return 'forgotten';
  if (change.adopt) return change.action === 'noop' ? 'adopted' : `adopted and ${PAST[change.action] ?? change.action}`;
  if (change.refresh) return 'refreshed';
  return PAST[change.action] ?? change.action;
}

export function formatDuration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)}ms` : ms < 60_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1000)}s`;
}

function outcomeLine(o: ChangeOutcome): string {
  const took = formatDuration(o.durationMs);
  if (o.status === 'succeeded') return `${o.change.address}: ${pastTense(o.change)} (${took})`;
  if (o.status === 'skipped') return `${o.change.address}: ${o.error ?? 'skipped'}`;
  return `${o.change.address}: FAILED to ${o.change.refresh ? 'refresh' : o.change.action} (${took}): ${o.error ?? 'unknown error'}`;
}

class LineProgress implements ApplyReporter {
  constructor(private readonly out: NodeJS.WriteStream) {}
  started(total: number, runId: number): void {
    this.out.write(`Applying ${total} change(s) (run ${runId})\n`);
  }
  began(): void {}
  finished(o: ChangeOutcome): void {
    this.out.write(outcomeLine(o) + '\n');
  }
  note(message: string): void {
    this.out.write(message + '\n');
  }
  ended(): void {}
}

const BAR_WIDTH = 20;
const CLEAR_LINE = '\r\u001b[K';

class TerminalProgress implements ApplyReporter {
  private total = 0;
  private done = 0;
  private failed = 0;
  private readonly running = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private drawn = false;
  private last = '';

  constructor(private readonly out: NodeJS.WriteStream) {}

  started(total: number, runId: number): void {
    this.total = total;
    this.out.write(`Applying ${total} change(s) (run ${runId})\n`);
    // The bar appears once a run lasts: short runs show only their results.
    this.timer = setInterval(() => this.draw(), 100);
    this.timer.unref();
  }
  began(change: PlannedChange): void {
    this.running.add(change.address);
  }
  finished(o: ChangeOutcome): void {
    this.running.delete(o.change.address);
    this.done += 1;
    if (o.status === 'failed') this.failed += 1;
    this.print(outcomeLine(o));
  }
  note(message: string): void {
    this.print(message);
  }
  ended(): void {
    if (this.timer) clearInterval(this.timer);
    this.clear();
  }

  /** A line above the status line, which is redrawn after it. */
  private print(line: string): void {
    const wasDrawn = this.drawn;
    this.clear();
    this.out.write(line + '\n');
    if (wasDrawn) this.draw();
  }

  private clear(): void {
    if (this.drawn) this.out.write(CLEAR_LINE);
    this.drawn = false;
  }

  private draw(): void {
    const filled = this.total > 0 ? Math.round((this.done / this.total) * BAR_WIDTH) : BAR_WIDTH;
    const bar = `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}]`;
    const running = [...this.running];
    const shown = running.slice(0, 3).join(', ') + (running.length > 3 ? ` +${running.length - 3}` : '');
    let line = `${bar} ${this.done}/${this.total}${this.failed ? `, ${this.failed} failed` : ''}${shown ? `  running: ${shown}` : ''}`;
    const width = Math.max(20, (this.out.columns || 80) - 1); // a pseudo-terminal without a size says 0
    if (line.length > width) line = line.slice(0, width - 1) + '…';
    if (this.drawn && line === this.last) return;
    this.out.write(CLEAR_LINE + line);
    this.drawn = true;
    this.last = line;
  }
}
