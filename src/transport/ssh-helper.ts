/**
 * The client side of the persistent inspect helper (remote-inspect.ts,
 * `helperCommand`): one python3 process per SSH connection answering framed
 * inspect and realpath requests in order, so that reading a host costs a round
 * trip, not a process start (shell, interpreter) per call.
 *
 * Requests are answered strictly in order. A request that times out poisons the
 * stream (its answer would arrive later, out of step): the helper is failed and
 * its owner kills it; the next request starts a new one. A cancelled request is
 * dropped from the caller's view but its answer is still read and discarded.
 */
import type { Readable, Writable } from 'node:stream';
import { HELPER_HELLO } from './remote-inspect.js';

interface Pending {
  readonly resolve: (answer: Buffer) => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout;
  abandoned: boolean;
}

export class InspectHelper {
  readonly ready: Promise<void>;
  private readonly pending: Pending[] = [];
  private chunks: Buffer[] = [];
  private size = 0;
  private hello = false;
  private failure: Error | null = null;
  private resolveReady!: () => void;
  private rejectReady!: (err: Error) => void;

  /**
   * @param input  the helper's stdin
   * @param output the helper's stdout
   * @param onPoisoned called once when the helper can no longer be used (timeout, garbage): kill it
   */
  constructor(
    private readonly input: Writable,
    output: Readable,
    private readonly what: string,
    private readonly onPoisoned: (why: Error) => void,
  ) {
    this.ready = new Promise<void>((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.ready.catch(() => undefined);
    output.on('data', (chunk: Buffer) => this.onData(chunk));
  }

  get failed(): boolean {
    return this.failure !== null;
  }

  request(frame: Buffer, timeoutMs: number, signal?: AbortSignal): Promise<Buffer> {
    if (this.failure) return Promise.reject(this.failure);
    signal?.throwIfAborted();
    return new Promise<Buffer>((resolve, reject) => {
      const entry: Pending = {
        resolve: (answer) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(answer);
        },
        reject: (err) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
        timer: setTimeout(() => this.poison(new Error(`${this.what} did not answer within ${timeoutMs} ms`)), timeoutMs),
        abandoned: false,
      };
      const onAbort = () => {
        entry.abandoned = true;
        reject(signal?.reason instanceof Error ? signal.reason : new Error('cancelled'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.push(entry);
      this.input.write(frame);
    });
  }

  /** The helper ended or its connection dropped: every waiting and later request fails with `err`. */
  fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.rejectReady(err);
    for (const p of this.pending.splice(0)) {
      clearTimeout(p.timer);
      if (!p.abandoned) p.reject(err);
    }
  }

  private poison(err: Error): void {
    if (this.failure) return;
    this.fail(err);
    this.onPoisoned(err);
  }

  private onData(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    if (!this.hello) {
      if (this.size < HELPER_HELLO.length) return;
      const all = Buffer.concat(this.chunks);
      if (all.subarray(0, HELPER_HELLO.length).toString('latin1') !== HELPER_HELLO) {
        this.poison(new Error(`${this.what} did not start (got ${JSON.stringify(all.subarray(0, 80).toString('utf8'))})`));
        return;
      }
      this.hello = true;
      this.chunks = [all.subarray(HELPER_HELLO.length)];
      this.size = all.length - HELPER_HELLO.length;
      this.resolveReady();
    }
    for (;;) {
      if (this.size < 8) return;
      const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
      const length = Number(all.readBigUInt64BE(0));
      if (all.length < 8 + length) {
        this.chunks = [all];
        return;
      }
      const answer = all.subarray(8, 8 + length);
      const rest = all.subarray(8 + length);
      this.chunks = [rest];
      this.size = rest.length;
      const entry = this.pending.shift();
      if (!entry) {
        this.poison(new Error(`${this.what} answered a request it was not asked`));
        return;
      }
      clearTimeout(entry.timer);
      if (!entry.abandoned) entry.resolve(Buffer.from(answer));
    }
  }
}
