/**
 * Health checks between the batches of a rollout: an HTTP status, a TCP
 * connect, or a command on the host, tried up to `retries` times. The HTTP and
 * TCP probes run from where Capstan runs (as a load balancer would see the
 * host); the command runs on the host, through its transport.
 */
import net from 'node:net';
import type { HostTransport } from '../transport/transport.js';
import { describeProbe } from '../plan/rollout.js';
import type { RenderedHealthCheck, RenderedProbe } from '../spec/host-group.js';

export type HealthResult = { readonly healthy: true; readonly attempts: number } | { readonly healthy: false; readonly attempts: number; readonly detail: string };

/** What a command probe needs: the host's transport, opened on demand. */
export type TransportOf = () => Promise<HostTransport>;

export async function checkHealth(check: RenderedHealthCheck, transportOf: TransportOf, signal: AbortSignal): Promise<HealthResult> {
  let last = 'not checked';
  const attempts = Math.max(1, check.retries);
  for (let attempt = 1; attempt <= attempts; attempt++) {
    signal.throwIfAborted();
    const outcome = await probeOnce(check, check.timeoutMs, transportOf, signal);
    if (outcome === null) return { healthy: true, attempts: attempt };
    last = outcome;
    if (attempt < attempts) await sleep(check.intervalMs, signal);
  }
  return { healthy: false, attempts, detail: `${describeProbe(check)}: ${last} (${attempts} attempt${attempts === 1 ? '' : 's'})` };
}

/** null when healthy, else why not. */
async function probeOnce(probe: RenderedProbe, timeoutMs: number, transportOf: TransportOf, signal: AbortSignal): Promise<string | null> {
  const attemptSignal = AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]);
  try {
    switch (probe.type) {
      case 'http': {
        // No redirects: a health endpoint that redirects (to a login page, say) is not healthy.
        const response = await fetch(probe.url, { signal: attemptSignal, redirect: 'manual', headers: { 'user-agent': 'capstan-health-check' } });
        await response.body?.cancel();
        return response.status === probe.expectStatus ? null : `status ${response.status}, expected ${probe.expectStatus}`;
      }
      case 'tcp':
        await connect(probe.address, probe.port, attemptSignal);
        return null;
      case 'command': {
        const transport = await transportOf();
        const result = await transport.exec(probe.argv, { timeoutMs, signal });
        if (result.timedOut) return `timed out after ${timeoutMs} ms`;
        if (result.exitCode === 0) return null;
        const output = (result.stderr || result.stdout).trim().split('\n').slice(-3).join(' | ');
        return `${result.exitCode === null ? `killed by ${result.signal ?? 'a signal'}` : `exit status ${result.exitCode}`}${output ? `: ${output}` : ''}`;
      }
    }
  } catch (err) {
    signal.throwIfAborted();
    if (attemptSignal.aborted) return `no answer within ${timeoutMs} ms`;
    return errorText(err);
  }
}

function connect(host: string, port: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const onAbort = (): void => {
      socket.destroy();
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => {
      signal.removeEventListener('abort', onAbort);
      socket.end();
      socket.destroy();
      resolve();
    });
    socket.once('error', (err) => {
      signal.removeEventListener('abort', onAbort);
      reject(err);
    });
  });
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // fetch wraps the socket error: its cause says what happened (ECONNREFUSED ...).
  const cause = (err as { cause?: unknown }).cause;
  const code = (cause as { code?: unknown } | undefined)?.code ?? (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : cause instanceof Error ? cause.message : err.message;
}
