/**
 * The render pool: Liquid templates are parsed and rendered in worker processes
 * (src/spec/render-worker.ts), never on the event loop, so a template that loops
 * until its limit cannot stall the controller's HTTP API, its webhooks or the
 * other stacks.
 *
 * Workers are child processes (`child_process.fork`, IPC with structured clone),
 * not worker threads and not piscina: a worker thread over its `resourceLimits`
 * heap can take the whole process down with it (V8's "Reached heap limit" is
 * fatal when the allocation goes on past Node's near-heap-limit slack, which a
 * Liquid loop does: measured on Node 20.20 with a 128 MiB limit), and a
 * controller must survive any template. A child process with
 * `--max-old-space-size` dies alone. The pool also needs a hard per-render time
 * limit that kills the worker and replaces it, and workers that keep the
 * process alive only while they work; no dependency does that for us.
 *
 * Every render has two time limits: LiquidJS's own `renderLimit` (checked
 * between template nodes; the worker answers with a clean error), and the pool's
 * hard limit a little later (`graceMs`), for work inside one node (a `sort` over
 * millions of items): the worker is terminated, and the render fails with the
 * same "took longer than" message. A worker over its memory limit dies the same
 * way; the next render gets a fresh worker. `render` never rejects for a
 * template's sake: every failure is a `RenderOutcome` with `ok: false`.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { revealVars } from './render-secrets.js';
import type { RenderFailure, RenderReply, RenderRequest } from './render-worker.js';
import type { TemplateVars } from './template.js';

export type { RenderFailure } from './render-worker.js';

export interface RenderPoolOptions {
  /** Worker processes (default 2, at most the CPUs available). */
  readonly size?: number;
  /** Heap limit per worker process in MiB (default 512): a render that needs more fails, the controller lives on. */
  readonly maxMemoryMiB?: number;
  /** How long past a render's own time limit the worker may run before it is terminated (default 250 ms). */
  readonly graceMs?: number;
}

export interface RenderJob {
  /** Stable for one template during the pool's life: workers keep parsed templates by it. */
  readonly templateId: string;
  /** The template's name in errors (a repository path). */
  readonly name: string;
  readonly text: string;
  /** May hold `Sensitive` values (secret vars): revealed to the worker over IPC only; an output that read one says so. */
  readonly vars: TemplateVars;
  readonly maxOutputBytes: number;
  readonly timeLimitMs: number;
}

export type RenderOutcome =
  /** `readSecret`: the output depends on a secret variable and must be sealed before anything shows it. */
  | { readonly ok: true; readonly output: string; readonly bytes: number; readonly ms: number; readonly readSecret: boolean }
  | { readonly ok: false; readonly failure: RenderFailure; readonly ms: number };

interface Pending {
  readonly job: RenderJob;
  readonly resolve: (outcome: RenderOutcome) => void;
}

interface Slot {
  readonly worker: ChildProcess;
  ready: boolean;
  current: { readonly pending: Pending; readonly id: number; readonly started: number; readonly timer: NodeJS.Timeout } | undefined;
  /** Set once the worker is being replaced: its late events are ignored. */
  gone: boolean;
  /** Templates this worker was sent the text of. */
  readonly known: Set<string>;
}

const HERE = import.meta.url;
/** Running from the TypeScript sources (tsx, vitest): the worker needs tsx's loader too. */
const FROM_SOURCES = HERE.endsWith('.ts');

/** The worker's module, and (from the sources) tsx's loader for it. */
function workerEntry(): { file: string; execArgv: string[] } {
  if (!FROM_SOURCES) return { file: fileURLToPath(new URL('./render-worker.js', HERE)), execArgv: [] };
  const tsx = new URL('dist/loader.mjs', pathToFileURL(createRequire(HERE).resolve('tsx/package.json'))).href;
  return { file: fileURLToPath(new URL('./render-worker.ts', HERE)), execArgv: ['--import', tsx] };
}

function setRef(child: ChildProcess, ref: boolean): void {
  // The IPC channel keeps the event loop alive as much as the process handle does.
  const channel = child.channel as { ref(): void; unref(): void } | null | undefined;
  if (ref) {
    child.ref();
    channel?.ref();
  } else {
    child.unref();
    channel?.unref();
  }
}

export class RenderPool {
  readonly size: number;
  private readonly maxMemoryMiB: number;
  private readonly graceMs: number;
  private readonly slots: Slot[] = [];
  private readonly queue: Pending[] = [];
  private nextId = 1;
  private closed = false;

  constructor(options: RenderPoolOptions = {}) {
    this.size = Math.max(1, Math.min(options.size ?? 2, availableParallelism()));
    this.maxMemoryMiB = options.maxMemoryMiB ?? 512;
    this.graceMs = options.graceMs ?? 250;
  }

  /** Renders `job` in a worker. Resolves with the output or the failure; rejects only after `close`. */
  render(job: RenderJob): Promise<RenderOutcome> {
    if (this.closed) return Promise.reject(new Error('the render pool is closed'));
    return new Promise((resolve) => {
      this.queue.push({ job, resolve });
      this.dispatch();
    });
  }

  /** Terminates every worker; renders in flight or queued fail. */
  async close(): Promise<void> {
    this.closed = true;
    const failed = (p: Pending) => p.resolve(this.failedOutcome(p.job, 'the render pool was closed', undefined, 0));
    for (const p of this.queue.splice(0)) failed(p);
    const slots = this.slots.splice(0);
    for (const slot of slots) {
      slot.gone = true;
      if (slot.current) {
        clearTimeout(slot.current.timer);
        failed(slot.current.pending);
        slot.current = undefined;
      }
    }
    for (const s of slots) s.worker.kill('SIGKILL');
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      const slot = this.slots.find((s) => s.ready && s.current === undefined);
      if (!slot) {
        if (this.slots.length < this.size) this.spawn();
        return; // a worker that becomes ready or idle dispatches again
      }
      this.start(slot, this.queue.shift()!);
    }
  }

  private spawn(): void {
    const { file, execArgv } = workerEntry();
    const worker = fork(file, [], {
      execArgv: [...execArgv, `--max-old-space-size=${this.maxMemoryMiB}`],
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
      // The worker needs no environment: templates see only their variables.
      env: { CAPSTAN_RENDER_WORKER: '1', PATH: process.env.PATH ?? '' },
    });
    const slot: Slot = { worker, ready: false, current: undefined, gone: false, known: new Set() };
    this.slots.push(slot);
    worker.on('message', (message: RenderReply | { readonly ready: true }) => {
      if (slot.gone) return;
      if ('ready' in message) {
        slot.ready = true;
        setRef(worker, false);
        this.dispatch();
        return;
      }
      const current = slot.current;
      if (!current || current.id !== message.id) return;
      if ('missing' in message) {
        // Evicted by the worker since: the same request again, with the text.
        slot.worker.send(requestOf(current.id, current.pending.job, true));
        return;
      }
      clearTimeout(current.timer);
      slot.current = undefined;
      setRef(worker, false);
      current.pending.resolve(message.ok ? { ok: true, output: message.output, bytes: message.bytes, ms: message.ms, readSecret: message.readSecret } : { ok: false, failure: message.failure, ms: message.ms });
      this.dispatch();
    });
    worker.on('error', (err) => this.retire(slot, `the render worker failed: ${err.message}`, undefined));
    worker.on('exit', (code, signal) => {
      // V8 out of memory: abort (SIGABRT) or exit code 134 with --max-old-space-size.
      const oom = signal === 'SIGABRT' || code === 134;
      this.retire(
        slot,
        oom ? `rendering needs more than ${this.maxMemoryMiB} MiB of memory` : `the render worker stopped (${signal ?? `exit code ${code}`})`,
        oom ? 'memory' : undefined,
      );
    });
  }

  private start(slot: Slot, pending: Pending): void {
    const id = this.nextId++;
    const { job } = pending;
    // The text only the first time this worker renders this template.
    const request = requestOf(id, job, !slot.known.has(job.templateId));
    // Bounded: forgetting only costs sending a text again.
    if (slot.known.size >= 10_000) slot.known.clear();
    slot.known.add(job.templateId);
    const started = performance.now();
    const timer = setTimeout(() => {
      this.retire(slot, `rendering took longer than ${job.timeLimitMs} ms`, 'time', performance.now() - started);
    }, job.timeLimitMs + this.graceMs);
    slot.current = { pending, id, started, timer };
    setRef(slot.worker, true);
    slot.worker.send(request);
  }

  /** Fails the slot's render (if any) with `reason`, terminates the worker and lets a new one take its place. */
  private retire(slot: Slot, reason: string, limit: RenderFailure['limit'], ms?: number): void {
    if (slot.gone) return;
    slot.gone = true;
    const index = this.slots.indexOf(slot);
    if (index >= 0) this.slots.splice(index, 1);
    const current = slot.current;
    slot.current = undefined;
    if (current) {
      clearTimeout(current.timer);
      current.pending.resolve(this.failedOutcome(current.pending.job, reason, limit, ms ?? performance.now() - current.started));
    } else if (!slot.ready) {
      // A worker that cannot start fails the render waiting for it, not every render forever.
      const waiting = this.queue.shift();
      if (waiting) waiting.resolve(this.failedOutcome(waiting.job, reason, limit, 0));
    }
    slot.worker.kill('SIGKILL');
    if (!this.closed) this.dispatch();
  }

  private failedOutcome(job: RenderJob, reason: string, limit: RenderFailure['limit'], ms: number): RenderOutcome {
    return { ok: false, ms, failure: { file: job.name, line: undefined, col: undefined, reason, undefinedVariable: undefined, limit, phase: 'render' } };
  }
}

/** The IPC message for `job`: its secret vars revealed (see src/spec/render-secrets.ts), its text only when `withText`. */
function requestOf(id: number, job: RenderJob, withText: boolean): RenderRequest {
  const { vars, secretPaths } = revealVars(job.vars);
  return { id, templateId: job.templateId, name: job.name, text: withText ? job.text : undefined, vars, secretPaths, maxOutputBytes: job.maxOutputBytes, timeLimitMs: job.timeLimitMs };
}

let shared: RenderPool | undefined;

/** The process's render pool, made on first use; its idle workers do not keep the process alive. */
export function sharedRenderPool(): RenderPool {
  shared ??= new RenderPool();
  return shared;
}
