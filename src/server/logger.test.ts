import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { Secret } from '../reconcile/config.js';
import { createLogger } from './logger.js';

describe('controller logs', () => {
  it('redact tokens, webhook secrets and signature headers', async () => {
    let out = '';
    const destination = new Writable({
      write(chunk: Buffer, _enc, done) {
        out += chunk.toString();
        done();
      },
    });
    const log = createLogger({ level: 'info', destination });
    log.child({ runId: 'pass-1' }).info(
      {
        req: { headers: { authorization: 'Bearer capstan_0123_secret', 'x-hub-signature-256': 'sha256=abc', 'x-gitlab-token': 'gl-secret' } },
        token: 'capstan_0123_secret',
        stack: { name: 'prod', webhookSecret: new Secret('hook-secret') },
        created: { token: 'capstan_4567_other' },
      },
      'hello',
    );
    log.flush();
    await new Promise((r) => setImmediate(r));
    const line = JSON.parse(out) as Record<string, unknown>;
    expect(line).toMatchObject({ runId: 'pass-1', msg: 'hello', token: '(redacted)' });
    for (const secret of ['capstan_0123_secret', 'sha256=abc', 'gl-secret', 'hook-secret', 'capstan_4567_other']) expect(out).not.toContain(secret);
  });
});
