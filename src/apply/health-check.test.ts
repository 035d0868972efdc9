/** Health-check probes against real sockets on loopback and real commands on this machine. */
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalTransport } from '../transport/local.js';
import { checkHealth } from './health-check.js';

const timing = { timeoutMs: 300, retries: 2, intervalMs: 10 };
const local = new LocalTransport();
const transportOf = () => Promise.resolve(local);
const signal = new AbortController().signal;

let listener: net.Server;
let silent: http.Server;
let openPort: number;
let silentPort: number;
let closedPort: number;

beforeAll(async () => {
  listener = net.createServer((socket) => socket.end());
  // Accepts connections but never answers a request: an HTTP probe must time out.
  silent = http.createServer(() => undefined);
  await Promise.all([listener, silent].map((s) => new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))));
  openPort = (listener.address() as AddressInfo).port;
  silentPort = (silent.address() as AddressInfo).port;
  // A port that was just free: nothing listens on it.
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  closedPort = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
});
afterAll(async () => {
  silent.closeAllConnections();
  await Promise.all([listener, silent].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
});

describe('checkHealth', () => {
  it('tcp: healthy when the port accepts, unhealthy with the reason after every attempt when it refuses', async () => {
    expect(await checkHealth({ type: 'tcp', address: '127.0.0.1', port: openPort, ...timing }, transportOf, signal)).toEqual({ healthy: true, attempts: 1 });
    expect(await checkHealth({ type: 'tcp', address: '127.0.0.1', port: closedPort, ...timing }, transportOf, signal)).toEqual({
      healthy: false,
      attempts: 2,
      detail: `tcp 127.0.0.1:${closedPort}: ECONNREFUSED (2 attempts)`,
    });
  });

  it('http: a server that never answers fails within the timeout', async () => {
    const result = await checkHealth({ type: 'http', url: `http://127.0.0.1:${silentPort}/healthz`, expectStatus: 200, ...timing, retries: 1 }, transportOf, signal);
    expect(result).toEqual({ healthy: false, attempts: 1, detail: `GET http://127.0.0.1:${silentPort}/healthz: no answer within 300 ms (1 attempt)` });
  });

  it('command: runs on the host through its transport; its exit status and output say why', async () => {
    expect(await checkHealth({ type: 'command', argv: ['true'], ...timing }, transportOf, signal)).toEqual({ healthy: true, attempts: 1 });
    expect(await checkHealth({ type: 'command', argv: ['sh', '-c', 'echo not ready >&2; exit 3'], ...timing }, transportOf, signal)).toEqual({
      healthy: false,
      attempts: 2,
      detail: 'command sh -c echo not ready >&2; exit 3: exit status 3: not ready (2 attempts)',
    });
  });

  it('stops between attempts when the apply is cancelled', async () => {
    const cancel = new AbortController();
    const pending = checkHealth({ type: 'tcp', address: '127.0.0.1', port: closedPort, timeoutMs: 300, retries: 5, intervalMs: 60_000 }, transportOf, cancel.signal);
    setTimeout(() => cancel.abort(new Error('cancelled')), 50);
    await expect(pending).rejects.toThrow('cancelled');
  });
});
