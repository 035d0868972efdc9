/**
 * SshTransport's command channels against an in-process ssh2 server that
 * plays the packet orderings a real server may produce, each one on demand:
 * the exit status in the same read as the reply that started the command, a
 * server that closes without a status once it reads our CHANNEL_CLOSE (as RFC
 * 4254 allows), a server at its session limit, and a channel that closes
 * without a status. The same transport against a real sshd is in
 * test/e2e/ssh-transport.test.ts.
 */
import * as fs from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Server, utils, type ServerChannel } from 'ssh2';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { formatKnownHostsLine, knownHostsName } from './known-hosts.js';
import { SshTransport } from './ssh.js';
import { ConnectionLimiter } from './ssh-limits.js';

/** How the fake server runs one command: `argv` is the command line the transport sent. */
type Behaviour = (stream: ServerChannel, command: string) => void;

interface FakeServer {
  readonly port: number;
  /** Commands the server started, in order. */
  readonly commands: string[];
  /** Session channels open at once, at most, over the server's life. */
  peakSessions: number;
  /** Session opens refused because of `maxSessions`. */
  refused: number;
  close(): Promise<void>;
}

let dir: string;
let hostKey: string;
let knownHostsFile: string;
let identityFile: string;
const servers: FakeServer[] = [];
const transports: SshTransport[] = [];

beforeAll(async () => {
  dir = await fs.mkdtemp(join(tmpdir(), 'capstan-ssh-unit-'));
  hostKey = utils.generateKeyPairSync('ed25519').private;
  identityFile = join(dir, 'client_key');
  await fs.writeFile(identityFile, utils.generateKeyPairSync('ed25519').private, { mode: 0o600 });
  knownHostsFile = join(dir, 'known_hosts');
});

afterEach(async () => {
  await Promise.allSettled(transports.splice(0).map((t) => t.close()));
  await Promise.allSettled(servers.splice(0).map((s) => s.close()));
});

afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** Starts a server on 127.0.0.1 that accepts any key and runs every exec with `behaviour`. */
async function fakeServer(behaviour: Behaviour, options: { maxSessions?: number } = {}): Promise<FakeServer> {
  const commands: string[] = [];
  let open = 0;
  const state = { peakSessions: 0, refused: 0 };
  const server = new Server({ hostKeys: [hostKey] }, (client) => {
    client.on('error', () => undefined);
    client.on('authentication', (ctx) => ctx.accept());
    client.on('session', (accept, reject) => {
      if (options.maxSessions !== undefined && open >= options.maxSessions) {
        state.refused++;
        reject();
        return;
      }
      open++;
      state.peakSessions = Math.max(state.peakSessions, open);
      const session = accept();
      let released = false;
      const release = () => {
        if (!released) open--;
        released = true;
      };
      session.once('close', release);
      session.once('exec', (acceptExec, _rejectExec, info) => {
        commands.push(info.command);
        const stream = acceptExec();
        stream.once('close', release);
        stream.on('error', () => undefined);
        // stdin is left unread: ending it would end the server's side of the channel too.
        behaviour(stream, info.command);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const key = utils.parseKey(hostKey);
  if (key instanceof Error) throw key;
  await fs.appendFile(knownHostsFile, `${formatKnownHostsLine(knownHostsName('127.0.0.1', port), key.getPublicSSH())}\n`);
  const fake: FakeServer = {
    port,
    commands,
    get peakSessions() {
      return state.peakSessions;
    },
    get refused() {
      return state.refused;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
      }),
  } as FakeServer;
  servers.push(fake);
  return fake;
}

function transportTo(server: FakeServer): SshTransport {
  const t = new SshTransport({
    label: 'Host/fake',
    host: '127.0.0.1',
    port: server.port,
    identityFile,
    knownHostsFile,
    limiter: new ConnectionLimiter(10),
    interpreter: 'sh',
  });
  transports.push(t);
  return t;
}

/** The exit status the fake command asks for: the transport runs `exec sh -c 'exit N'`. */
function wantedStatus(command: string): number {
  return Number(/'exit (\d+)'/.exec(command)?.[1] ?? 0);
}

describe('SshTransport command channels', () => {
  it('keeps an exit status that arrives in the same read as the reply that started the command', async () => {
    // Reply, output, exit status, EOF and close, all written in one tick: the client reads them in one go.
    const server = await fakeServer((stream, command) => {
      stream.write('out\n');
      stream.stderr.write('err\n');
      stream.exit(wantedStatus(command));
      stream.end();
    });
    const t = transportTo(server);
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => t.exec(['sh', '-c', `exit ${i}`], { timeoutMs: 10_000 })));
    expect(results.map((r) => r.exitCode)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(results.every((r) => r.stdout === 'out\n' && r.stderr === 'err\n' && r.signal === null)).toBe(true);
  });

  it('reports a signal the same way', async () => {
    const server = await fakeServer((stream) => {
      stream.exit('TERM', false, '');
      stream.end();
    });
    expect(await transportTo(server).exec(['sleep', '9'], { timeoutMs: 10_000 })).toMatchObject({ exitCode: null, signal: 'SIGTERM', timedOut: false });
  });

  it('never closes a channel before the server has sent the exit status', async () => {
    // Output ends first; the status comes later (the command is still being reaped). A server that reads
    // our CHANNEL_CLOSE meanwhile closes without a status, as RFC 4254 allows.
    let closedFirst = 0;
    const server = await fakeServer((stream, command) => {
      let clientClosed = false;
      stream.once('close', () => {
        clientClosed = true;
        closedFirst++;
      });
      stream.write('done\n');
      stream.eof();
      setTimeout(() => {
        if (clientClosed) return;
        // ssh2's ServerChannel.exit() sends nothing after eof(), though the protocol allows it.
        const raw = stream as unknown as { outgoing: { id: number }; _client: { _protocol: { exitStatus(id: number, status: number): void } } };
        raw._client._protocol.exitStatus(raw.outgoing.id, wantedStatus(command));
        stream.end();
      }, 100);
    });
    const t = transportTo(server);
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => t.exec(['sh', '-c', `exit ${i + 1}`], { timeoutMs: 10_000 })));
    expect(closedFirst).toBe(0);
    expect(results.map((r) => [r.exitCode, r.stdout])).toEqual(Array.from({ length: 8 }, (_, i) => [i + 1, 'done\n']));
  });

  it('waits for a session when the server is at its session limit, instead of failing the command', async () => {
    // The transport allows 8 commands at once; this server only 2 sessions, so most opens are refused
    // at first, for longer than a few quick retries would wait.
    const server = await fakeServer(
      (stream, command) => {
        setTimeout(() => {
          stream.exit(wantedStatus(command));
          stream.end();
        }, 150);
      },
      { maxSessions: 2 },
    );
    const t = transportTo(server);
    const results = await Promise.all(Array.from({ length: 24 }, (_, i) => t.exec(['sh', '-c', `exit ${i}`], { timeoutMs: 30_000 })));
    expect(results.map((r) => r.exitCode)).toEqual(Array.from({ length: 24 }, (_, i) => i));
    expect(server.refused).toBeGreaterThan(0);
    expect(server.peakSessions).toBeLessThanOrEqual(2);
    // Each command ran exactly once: a refused open ran nothing, and nothing was run twice.
    expect(server.commands).toHaveLength(24);
  }, 30_000);

  it('gives up soon when the server refuses every session and none of ours is open', async () => {
    const server = await fakeServer(() => undefined, { maxSessions: 0 });
    const started = Date.now();
    await expect(transportTo(server).exec(['true'], { timeoutMs: 60_000 })).rejects.toThrow(
      /cannot start a command on Host\/fake \(ssh root@127\.0\.0\.1:\d+\): \(SSH\) Channel open failure: .*\(refused 5 times\)/,
    );
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(server.commands).toEqual([]);
  });

  it('fails a command whose channel closes without an exit status, and never runs it again', async () => {
    const server = await fakeServer((stream) => {
      stream.write('partial');
      stream.end();
    });
    const t = transportTo(server);
    await expect(t.exec(['sh', '-c', 'echo once >> /tmp/log'], { timeoutMs: 10_000 })).rejects.toThrow(
      /Host\/fake \(ssh root@127\.0\.0\.1:\d+\) closed the channel of a running command without an exit status: it may or may not have finished/,
    );
    expect(server.commands).toHaveLength(1);
    // The connection stays usable: the next command is started (and ends the same way on this server).
    await expect(t.exec(['true'], { timeoutMs: 10_000 })).rejects.toThrow(/without an exit status/);
    expect(server.commands).toHaveLength(2);
  });
});
