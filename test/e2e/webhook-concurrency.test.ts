/**
 * `webhookConcurrency` against the real `capstan serve`: one address holding
 * that many webhook requests in flight (bodies uploaded slowly, so no
 * signature can be checked yet) gets 429 with Retry-After for the next one,
 * counted in capstan_http_rejected_total{reason="webhook_concurrency"}; a
 * signed delivery from another address still passes, and once the held uploads
 * end the address is served again.
 */
import { createHmac, randomUUID } from 'node:crypto';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, createToken, gitRemote, hostYaml, killAll, pushPayload, serve, serveConfig, stackYaml, waitFor, type GitRemote, type Served } from './controller-harness.js';
import { assertBuilt } from './harness.js';

const HOOK_SECRET = 'concurrency-test-hook-secret';
const CAP = 3;

interface Answer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

/** A POST from `localAddress` (any 127.x address is this machine's loopback). */
function post(url: string, body: string, headers: Record<string, string>, localAddress: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', localAddress, headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function signed(body: string): Record<string, string> {
  return {
    'content-type': 'application/json',
    'x-github-event': 'push',
    'x-github-delivery': randomUUID(),
    'x-hub-signature-256': `sha256=${createHmac('sha256', HOOK_SECRET).update(body).digest('hex')}`,
  };
}

/** A delivery whose body never finishes arriving: the server cannot check its signature until it does. */
function heldUpload(url: string, localAddress: string): http.ClientRequest {
  const req = http.request(url, {
    method: 'POST',
    localAddress,
    headers: { 'content-type': 'application/json', 'x-github-event': 'push', 'x-hub-signature-256': `sha256=${'0'.repeat(64)}`, 'content-length': '500000' },
  });
  req.on('error', () => undefined);
  req.flushHeaders();
  req.write('{"ref":"refs/heads/main","pad":"');
  return req;
}

let remote: GitRemote;
let served: Served;
let state: string;
let commit: string;

beforeAll(async () => {
  assertBuilt();
  remote = await gitRemote();
  const cfg = await serveConfig(remote, stackYaml('prod', { interval: '1h', webhookSecret: '{ env: HOOK_SECRET }' }), `webhookConcurrency: ${CAP}\n`);
  state = cfg.state;
  commit = await remote.push({ 'stack.yaml': hostYaml('local', cfg.root) }, 'host only');
  served = await serve(cfg.config, { HOOK_SECRET });
}, 60_000);

afterAll(async () => {
  await killAll();
  await remote?.cleanup();
});

describe('webhookConcurrency', () => {
  it('holds N uploads in flight from one address: the N+1th is refused (429, Retry-After), another address still passes', async () => {
    const hook = `${served.url}/api/webhooks/github`;
    const held = Array.from({ length: CAP }, () => heldUpload(hook, '127.0.0.1'));
    try {
      // The held requests reach the server in their own time: ask until they count (an unknown provider answers 404 cheaply until then).
      const refused = await waitFor(
        'the held uploads to fill the address',
        async () => {
          const r = await post(`${served.url}/api/webhooks/bitbucket`, '{}', { 'content-type': 'application/json' }, '127.0.0.1');
          return r.status === 429 ? r : undefined;
        },
        60_000,
      );
      expect(refused.headers['retry-after']).toBe('1');
      expect(refused.body).toMatch(/already has 3 webhook deliveries in flight/);
      // A signed delivery from the same address is refused as well: nothing is read before the cap.
      const payload = pushPayload(remote.remote, commit);
      expect((await post(hook, payload, signed(payload), '127.0.0.1')).status).toBe(429);
      // Another address is not held back.
      const other = await post(hook, payload, signed(payload), '127.0.0.2');
      expect(other.status, other.body).toBe(202);
      expect(JSON.parse(other.body)).toMatchObject({ status: 'accepted', stacks: ['prod'] });
    } finally {
      for (const req of held) req.destroy();
    }
    // The held uploads gone, the address is served again.
    const again = await waitFor(
      'the address to be served again',
      async () => {
        const payload = pushPayload(remote.remote, commit);
        const r = await post(hook, payload, signed(payload), '127.0.0.1');
        return r.status === 429 ? undefined : r;
      },
      60_000,
    );
    expect(again.status).toBe(202);
    const token = await createToken(state, 'viewer', 'metrics');
    const metrics = await api<string>(served, '/metrics', { token });
    const line = /capstan_http_rejected_total\{reason="webhook_concurrency"\} (\d+)/.exec(metrics.body);
    expect(Number(line?.[1])).toBeGreaterThanOrEqual(2);
  }, 120_000);
});
