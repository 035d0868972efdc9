/**
 * A Host whose private key and passphrase are secrets (`privateKey: { secret }`,
 * `passphrase: { secret }`): the key is handed to the SSH client as bytes and the
 * passphrase decrypts it; a wrong passphrase fails without naming it.
 */
import { execa } from 'execa';
import * as fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostSchema, hostTarget } from '../../src/providers/host/host.js';
import { ctx, testResource } from '../../src/providers/host/testing/sandbox.js';
import { Sensitive } from '../../src/secrets/sensitive.js';
import { createFleet, type Fleet } from './fleet/netns.js';

const PASSPHRASE = 'open sesame "quoted" $$';
let fleet: Fleet;
let encryptedKey: string;

beforeAll(async () => {
  fleet = await createFleet({ size: 1 });
  // The fleet's authorised key, protected with a passphrase.
  const copy = path.join(fleet.dir, 'protected-key');
  await fs.copyFile(fleet.identityFile, copy);
  await fs.chmod(copy, 0o600);
  await execa('ssh-keygen', ['-q', '-p', '-P', '', '-N', PASSPHRASE, '-f', copy]);
  encryptedKey = await fs.readFile(copy, 'utf8');
}, 60_000);
afterAll(async () => {
  await fleet?.destroy();
});

const hostWith = (passphrase: string) =>
  testResource(
    'Host',
    'h',
    hostSchema.parse({
      transport: 'ssh',
      address: fleet.hosts[0]!.address,
      knownHostsFile: fleet.knownHostsFile,
      privateKey: new Sensitive(encryptedKey, 'hmac-sha256:k'),
      passphrase: new Sensitive(passphrase, 'hmac-sha256:p'),
      root: fleet.hosts[0]!.root,
    }),
  );

describe('Host with a secret private key', () => {
  it('connects with the key and passphrase given as secrets', async () => {
    const handle = await hostTarget.connect(hostWith(PASSPHRASE), ctx);
    try {
      expect((await handle.transport.exec(['true'], { timeoutMs: 10_000 })).exitCode).toBe(0);
    } finally {
      await handle.close();
    }
  });

  it('fails with a wrong passphrase, naming the host and not the passphrase', async () => {
    const err = (await hostTarget.connect(hostWith('wrong passphrase'), ctx).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toMatch(/Host\/h/);
    expect(err.message).not.toContain('wrong passphrase');
    expect(JSON.stringify(hostWith(PASSPHRASE).spec)).not.toContain('open sesame');
  });
});
