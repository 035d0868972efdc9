import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UsageError } from './context.js';
import { connect } from './remote.js';

const TOKEN = `capstan_${'b'.repeat(16)}_${'T'.repeat(43)}`;
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'capstan-remote-'));
});
afterEach(async () => rm(dir, { recursive: true, force: true }));

describe('connect', () => {
  it('takes --server over $CAPSTAN_SERVER and --token-file over $CAPSTAN_TOKEN', async () => {
    const file = path.join(dir, 'token');
    await writeFile(file, `${TOKEN}\n`);
    const warnings: string[] = [];
    const client = await connect({ server: 'http://127.0.0.1:7070/', tokenFile: file }, { CAPSTAN_SERVER: 'http://10.0.0.1:1', CAPSTAN_TOKEN: 'other' }, (w) => warnings.push(w));
    expect(client.server).toBe('http://127.0.0.1:7070');
    expect((await connect({}, { CAPSTAN_SERVER: 'https://capstan.example.com', CAPSTAN_TOKEN: TOKEN }, (w) => warnings.push(w))).server).toBe('https://capstan.example.com');
    expect(warnings).toEqual([]);
  });

  it('warns when the token would cross the network over plain http, not on loopback', async () => {
    const warnings: string[] = [];
    for (const server of ['http://localhost:7070', 'http://127.0.0.1:7070', 'http://[::1]:7070', 'http://ctl.internal:7070']) {
      await connect({ server }, { CAPSTAN_TOKEN: TOKEN }, (w) => warnings.push(w));
    }
    expect(warnings).toEqual(['Warning: the token goes to http://ctl.internal:7070 unencrypted; put TLS in front of capstan serve and use https://']);
  });

  it('refuses, in one line and without the token, what cannot work', async () => {
    const empty = path.join(dir, 'empty');
    await writeFile(empty, '\n');
    const twoWords = path.join(dir, 'two');
    await writeFile(twoWords, `${TOKEN} extra\n`);
    const cases: [Parameters<typeof connect>[0], NodeJS.ProcessEnv, RegExp][] = [
      [{}, { CAPSTAN_TOKEN: TOKEN }, /^which controller\? Pass --server URL/],
      [{ server: 'http://h' }, {}, /^no API token: pass --token-file FILE or set CAPSTAN_TOKEN/],
      [{ server: 'http://h', tokenFile: path.join(dir, 'missing') }, {}, /^cannot read the token file .*missing: ENOENT$/],
      [{ server: 'http://h', tokenFile: empty }, {}, /^the token file .*empty is empty/],
      [{ server: 'http://h', tokenFile: twoWords }, {}, /holds more than one word: it must hold only the token$/],
      [{ server: 'ftp://h' }, { CAPSTAN_TOKEN: TOKEN }, /^--server: "ftp:\/\/h" is not an http:\/\/ or https:\/\/ URL$/],
      [{ server: 'http://h', timeout: 'soon' }, { CAPSTAN_TOKEN: TOKEN }, /^--timeout "soon" is not a number of seconds$/],
    ];
    for (const [options, env, message] of cases) {
      const err = await connect(options, env, () => undefined).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(UsageError);
      expect((err as Error).message).toMatch(message);
      expect((err as Error).message).not.toContain(TOKEN);
    }
  });
});
