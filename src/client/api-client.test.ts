import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiClient, ApiError, normalizeServerUrl } from './api-client.js';

const TOKEN = `capstan_${'a'.repeat(16)}_${'S'.repeat(43)}`;
let server: Server | undefined;

/** A real HTTP server on a loopback port answering with `handle`; returns its URL. */
async function listen(handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  server = createServer(handle);
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

async function failure(promise: Promise<unknown>): Promise<ApiError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApiError);
  return err as ApiError;
}

describe('ApiClient', () => {
  it('sends the token as a bearer header and JSON bodies; parses JSON answers', async () => {
    const seen: { auth?: string; type?: string; body: string; url?: string }[] = [];
    const url = await listen((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen.push({ auth: req.headers.authorization, type: req.headers['content-type'], body, url: req.url });
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ ok: true }));
      });
    });
    const client = new ApiClient({ server: `${url}/`, token: TOKEN, tokenSource: '$CAPSTAN_TOKEN' });
    expect(await client.post('/api/stacks/web/approve', { planId: 'p1' })).toEqual({ ok: true });
    expect(seen).toEqual([{ auth: `Bearer ${TOKEN}`, type: 'application/json', body: '{"planId":"p1"}', url: '/api/stacks/web/approve' }]);
  });

  it('turns 401, 403, 404 and 5xx answers into one line naming the server, never the token', async () => {
    const answers: Record<string, [number, string]> = {
      '/401': [401, JSON.stringify({ error: 'authentication required (revoked token): make one with `capstan token create`' })],
      '/403': [403, JSON.stringify({ error: 'role viewer may not do this; it needs operator' })],
      '/404': [404, ''],
      '/500': [502, 'Bad gateway\nfrom the proxy'],
    };
    const url = await listen((req, res) => {
      const [status, body] = answers[req.url!]!;
      res.statusCode = status;
      res.end(body);
    });
    const client = new ApiClient({ server: url, token: TOKEN, tokenSource: '--token-file /etc/capstan/token' });
    const messages = await Promise.all(Object.keys(answers).map(async (route) => (await failure(client.get(route))).message));
    expect(messages).toEqual([
      `${url} refused the token of --token-file /etc/capstan/token: authentication required (revoked token): make one with \`capstan token create\``,
      `${url} refused: role viewer may not do this; it needs operator`,
      `${url} has no GET /404: is it a Capstan controller?`,
      `${url} answered 502: Bad gateway`,
    ]);
    for (const m of messages) expect(m).not.toContain(TOKEN);
  });

  it('never follows a redirect (the token would go along) and refuses answers that are not JSON', async () => {
    const url = await listen((req, res) => {
      if (req.url === '/api/stacks') {
        res.statusCode = 301;
        res.setHeader('location', 'https://capstan.example.com/api/stacks');
        return res.end();
      }
      res.end('<html>a login page</html>');
    });
    const client = new ApiClient({ server: url, token: TOKEN, tokenSource: '$CAPSTAN_TOKEN' });
    expect((await failure(client.get('/api/stacks'))).message).toBe(`${url} redirects to https://capstan.example.com/api/stacks: give the URL it redirects to as --server`);
    expect((await failure(client.get('/api/audit'))).message).toBe(`${url} answered with something that is not JSON: is it a Capstan controller?`);
  });

  it('gives up on a server that does not answer within the timeout', async () => {
    const url = await listen(() => {
      // never answers
    });
    const client = new ApiClient({ server: url, token: TOKEN, tokenSource: '$CAPSTAN_TOKEN', timeoutMs: 300 });
    const err = await failure(client.get('/api/stacks'));
    expect(err.message).toBe(`${url}: no answer within 300 ms`);
    expect(err.status).toBeNull();
  });

  it('normalizes the server URL and refuses what is not http(s) or carries credentials', () => {
    expect(normalizeServerUrl('127.0.0.1:7070')).toBe('http://127.0.0.1:7070');
    expect(normalizeServerUrl('https://capstan.example.com/ctl/')).toBe('https://capstan.example.com/ctl');
    expect(() => normalizeServerUrl('ftp://host')).toThrow(/not an http:\/\/ or https:\/\/ URL/);
    expect(() => normalizeServerUrl('http://user:pw@host:7070')).toThrow(/without user or password/);
    expect(() => normalizeServerUrl('http://[oops')).toThrow(/not a server URL/);
  });
});
