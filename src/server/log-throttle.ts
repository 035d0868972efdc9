/**
 * At most `perMinute` log lines per key and minute; the lines held back are
 * counted and reported with the next line let through, so a flood of hostile
 * requests cannot flood the log while the log still says it happened.
 */
export class LogThrottle {
  readonly #windows = new Map<string, { start: number; logged: number; suppressed: number }>();

  constructor(
    private readonly perMinute: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether to log now, and how many lines of this key were held back since the last one logged. */
  admit(key: string): { log: boolean; suppressed: number } {
    const t = this.now();
    let w = this.#windows.get(key);
    if (!w || t - w.start >= 60_000) {
      const suppressed = w?.suppressed ?? 0;
      w = { start: t, logged: 0, suppressed: 0 };
      this.#windows.set(key, w);
      if (this.#windows.size > 10_000) this.#sweep(t);
      w.logged = 1;
      return { log: true, suppressed };
    }
    if (w.logged < this.perMinute) {
      w.logged += 1;
      const suppressed = w.suppressed;
      w.suppressed = 0;
      return { log: true, suppressed };
    }
    w.suppressed += 1;
    return { log: false, suppressed: 0 };
  }

  #sweep(t: number): void {
    for (const [key, w] of this.#windows) if (t - w.start >= 60_000) this.#windows.delete(key);
  }
}
