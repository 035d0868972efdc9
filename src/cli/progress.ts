/**
 * Apply progress. On a terminal: one status line redrawn in place (done/total,
 * failures, what is running) with failures printed above it as they happen.
 * Elsewhere (CI logs, pipes): one plain line per finished change.
 */
import type { ApplyReporter, ChangeOutcome } from '../apply/reporter.js';
import type { PlannedChange } from '../plan/plan.js';

const PAST: Record<string, string> = { create: 'created', update: 'updated', replace: 'replaced', delete: 'deleted', noop: 'recorded' };

export function progressReporter(stream: NodeJS.WriteStream, options: { tty?: boolean } = {}): ApplyReporter {
  return (options.tty ?? stream.isTTY === true) ? new TerminalProgress(stream) : new LineProgress(stream);
}

function outcomeLine(o: ChangeOutcome): string {
  const ms = `${Math.round(o.durationMs)}ms`;
  if (o.status === 'succeeded') return `${o.change.address}: ${o.change.refresh ? 'refreshed' : (PAST[o.change.action] ?? o.change.action)} (${ms})`;
  if (o.status === 'skipped') return `${o.change.address}: ${o.error ?? 'skipped'}`;
  return `${o.change.address}: FAILED to ${o.change.action}: ${o.error ?? 'unknown error'}`;
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

class TerminalProgress implements ApplyReporter {
  private total = 0;
  private done = 0;
  private failed = 0;
  private readonly running = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private lastWidth = 0;

  constructor(private readonly out: NodeJS.WriteStream) {}

  started(total: number, runId: number): void {
    this.total = total;
    this.out.write(`Applying ${total} change(s) (run ${runId})\n`);
    this.timer = setInterval(() => this.draw(), 100);
    this.timer.unref();
  }
  began(change: PlannedChange): void {
    this.running.add(change.address);
  }
  finished(o: ChangeOutcome): void {
    this.running.delete(o.change.address);
    this.done += 1;
    if (o.status !== 'succeeded') {
      if (o.status === 'failed') this.failed += 1;
      this.clear();
      this.out.write(outcomeLine(o) + '\n');
    }
  }
  note(message: string): void {
    this.clear();
    this.out.write(message + '\n');
  }
  ended(): void {
    if (this.timer) clearInterval(this.timer);
    this.clear();
  }

  private clear(): void {
    if (this.lastWidth > 0) this.out.write(`\r${' '.repeat(this.lastWidth)}\r`);
    this.lastWidth = 0;
  }

  private draw(): void {
    const running = [...this.running];
    const shown = running.slice(0, 3).join(', ') + (running.length > 3 ? ` +${running.length - 3}` : '');
    let line = `[${this.done}/${this.total}]${this.failed ? ` ${this.failed} failed` : ''}${shown ? ` running: ${shown}` : ''}`;
    const width = Math.max(20, (this.out.columns ?? 80) - 1);
    if (line.length > width) line = line.slice(0, width - 1) + '…';
    this.clear();
    this.out.write(line);
    this.lastWidth = line.length;
  }
}
