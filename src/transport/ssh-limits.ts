/**
 * Limits of the SSH transport: how many channels one connection may have open at
 * once (sshd refuses more than its MaxSessions, 10 by default), and how many
 * connections the whole process keeps open.
 */

/** A counting semaphore; waiters are served in order. */
export class Semaphore {
  private used = 0;
  private readonly waiters: (() => void)[] = [];

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`a semaphore needs a positive size, not ${size}`);
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await fn();
    } finally {
      this.release();
    }
  }

  private acquire(): Promise<void> {
    if (this.used < this.size) {
      this.used++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private release(): void {
    const next = this.waiters.shift();
    // The slot passes straight to the next waiter.
    if (next) next();
    else this.used--;
  }
}

/** A connection the limiter can close to make room for another, when nothing uses it. */
export interface LimitedConnection {
  isIdle(): boolean;
  /** When it was last used (ms since the epoch), to evict the least recently used first. */
  lastUsed(): number;
  /** Closes the connection; its owner opens it again the next time it is needed. */
  evict(): void;
}

/**
 * The process-wide cap on open SSH connections. When the cap is reached, a new
 * connection closes the least recently used idle one (which reopens on demand)
 * or, when every open connection is busy, waits for one to become idle. A fleet
 * larger than the cap therefore still completes, with reconnections, instead of
 * deadlocking.
 */
export class ConnectionLimiter {
  private readonly open = new Set<LimitedConnection>();
  private waiters: (() => void)[] = [];

  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`a connection limit must be a positive whole number, not ${max}`);
  }

  get openCount(): number {
    return this.open.size;
  }

  async acquire(owner: LimitedConnection, signal?: AbortSignal): Promise<void> {
    for (;;) {
      signal?.throwIfAborted();
      if (this.open.has(owner)) return;
      if (this.open.size < this.max) {
        this.open.add(owner);
        return;
      }
      let victim: LimitedConnection | undefined;
      for (const c of this.open) {
        if (c !== owner && c.isIdle() && (victim === undefined || c.lastUsed() < victim.lastUsed())) victim = c;
      }
      if (victim) {
        this.open.delete(victim);
        victim.evict();
        continue;
      }
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  release(owner: LimitedConnection): void {
    if (this.open.delete(owner)) this.wake();
  }

  /** Tells waiters that a connection became idle and may now be evicted. */
  idle(): void {
    if (this.waiters.length > 0) this.wake();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

const DEFAULT_MAX_CONNECTIONS = 256;

/** Shared by every SshTransport of the process; `CAPSTAN_SSH_MAX_CONNECTIONS` overrides the default of 256. */
export const processConnectionLimiter = new ConnectionLimiter(
  Number.parseInt(process.env.CAPSTAN_SSH_MAX_CONNECTIONS ?? '', 10) > 0
    ? Number.parseInt(process.env.CAPSTAN_SSH_MAX_CONNECTIONS ?? '', 10)
    : DEFAULT_MAX_CONNECTIONS,
);
