/**
 * A machine reached over SSH: one ssh2 connection per host, reused by every
 * operation of a run.
 *
 * - `inspect` and `realpath` answer a whole batch in one remote step
 *   (remote-inspect.ts): a request to the connection's persistent python3 helper
 *   (ssh-helper.ts; one process for the connection's life, so a read costs a
 *   round trip, not a process start), or, on a host without python3, one POSIX
 *   sh + coreutils script per call.
 * - Writes and metadata changes go through one SFTP channel: files are written
 *   under a temporary name in the same directory, given their owner and mode,
 *   fsynced (when the server offers fsync@openssh.com) and renamed over the
 *   destination with posix-rename@openssh.com.
 * - `exec` quotes its argument array for the remote login shell (shell-quote.ts),
 *   which must be a POSIX shell.
 *
 * Host keys are checked strictly against OpenSSH known_hosts files: an unknown
 * key refuses the host, a changed key refuses it with both fingerprints. The
 * client authenticates with `identityFile`, or the SSH agent when none is given.
 *
 * Connection failures (refused, reset, unreachable, handshake timeout) are
 * retried with exponential backoff; an authentication or host-key failure is not,
 * and neither is a command that may have run: a channel that closes without an
 * exit status fails its command, which is never started again. What is retried
 * is only what ran nothing: a connection that did not open, and a session the
 * server refused to open. When an established connection is lost, operations in
 * flight fail; the next operation reconnects once, and if that fails every later
 * one fails at once with the same error, so a dead host costs one timeout, not
 * one per resource.
 *
 * A command's exit status is watched for from the tick its channel opens, and
 * the channel is closed by the server (after the status), never by us first,
 * unless we kill the command.
 *
 * Channels per connection are capped (`maxSessions`, sshd's MaxSessions: the
 * SFTP channel, the helper and up to eight commands); a session the server
 * refuses anyway (it frees closed ones a little later, or has a lower
 * MaxSessions) is asked for again while our other commands hold sessions.
 * Connections per process are capped by a shared ConnectionLimiter
 * (ssh-limits.ts).
 *
 * Errors carry errno-style codes like LocalTransport's. SFTP reports most
 * failures as a bare "Failure"; where a provider relies on the reason
 * (ENOTEMPTY, EXDEV, EEXIST) the transport looks again and sets the code.
 */
import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import * as fs from 'node:fs/promises';
import os from 'node:os';
import { posix } from 'node:path';
import { debianPackageOf, MissingProgramError } from '../util/prerequisites.js';
import { Client, type ClientChannel, type ConnectConfig, type SFTPWrapper, type Stats as SftpStats } from 'ssh2';
import { fingerprint, hostKeyAlgorithmsFor, keyTypeOf, knownHostsName, readKnownHosts, verifyHostKey, type KnownHostEntry } from './known-hosts.js';
import {
  encodeHelperRequest,
  encodePaths,
  helperCommand,
  inspectCommand,
  parseIdDatabase,
  parseInspectOutput,
  parseRealpathOutput,
  type RemoteInterpreter,
} from './remote-inspect.js';
import { isShellName, quoteArg, quoteCommand } from './shell-quote.js';
import { InspectHelper } from './ssh-helper.js';
import { processConnectionLimiter, Semaphore, type ConnectionLimiter, type LimitedConnection } from './ssh-limits.js';
import {
  describePathType,
  modeBits,
  pathTypeOfMode,
  type AccountIds,
  type ExecOptions,
  type ExecResult,
  type HostTransport,
  type InspectOptions,
  type MkdirOptions,
  type Ownership,
  type PathInfo,
  type PathType,
  type WriteFileOptions,
} from './transport.js';

export interface SshEndpoint {
  readonly host: string;
  readonly port?: number | undefined;
  readonly user?: string | undefined;
}

export interface SshTransportOptions extends SshEndpoint {
  /** Names the host in messages, e.g. `Host/web-1`. */
  readonly label?: string | undefined;
  /** A private key file (absolute); the SSH agent (`SSH_AUTH_SOCK`) when absent. */
  readonly identityFile?: string | undefined;
  /** A private key given as bytes (a decrypted secret) instead of identityFile. */
  readonly privateKey?: Buffer | undefined;
  /** The passphrase of an encrypted private key. Never shown in a message. */
  readonly passphrase?: string | undefined;
  /** known_hosts file (absolute); `~/.ssh/known_hosts` and `/etc/ssh/ssh_known_hosts` when absent. */
  readonly knownHostsFile?: string | undefined;
  /** Reach the host through this one (same key and known_hosts), with a forwarded channel. */
  readonly jump?: SshEndpoint | undefined;
  /** TCP connect + handshake + authentication, per attempt (default 10 s). */
  readonly connectTimeoutMs?: number | undefined;
  /** Connection attempts before giving up (default 3). */
  readonly connectAttempts?: number | undefined;
  /** First retry delay, doubled each time, with jitter (default 250 ms). */
  readonly retryDelayMs?: number | undefined;
  /** Time limit of one inspect or realpath script (default 120 s). */
  readonly commandTimeoutMs?: number | undefined;
  /** Sessions open at once on the connection, SFTP included (default 10, sshd's MaxSessions). */
  readonly maxSessions?: number | undefined;
  /** Keepalive probe interval; three unanswered probes drop the connection (default 5 s). */
  readonly keepaliveIntervalMs?: number | undefined;
  /** Which interpreter runs the inspect script (default: python3 when present, else sh). */
  readonly interpreter?: RemoteInterpreter | undefined;
  readonly limiter?: ConnectionLimiter | undefined;
  /** The agent socket when there is no identityFile (default `SSH_AUTH_SOCK`). */
  readonly agent?: string | undefined;
}

/** The server's host key is not the one known_hosts holds for it (or it holds none). Never retried. */
export class HostKeyError extends Error {
  readonly code = 'EHOSTKEY';
  constructor(message: string) {
    super(message);
    this.name = 'HostKeyError';
  }
}

/** The connection could not be opened, or was lost; `code` tells which low-level failure. */
export class SshConnectionError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly retryable: boolean,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'SshConnectionError';
  }
}

interface Connection {
  readonly client: Client;
  readonly jumpClient: Client | null;
  sftp: Promise<SFTPWrapper> | null;
  /** The persistent inspect helper; resolves null when the host has no python3. */
  helper: Promise<InspectHelper | null> | null;
  /** Set when the connection dropped; operations in flight fail with it. */
  lost: Error | null;
  /** Aborted when the connection drops or is closed. */
  readonly closed: AbortController;
  /** Command channels open now (not the SFTP channel or the helper's, which stay open). */
  channels: number;
  /** When one of them last closed (ms since the epoch). */
  lastChannelClose: number;
}

type State =
  | { readonly kind: 'idle' }
  | { readonly kind: 'connecting'; readonly ready: Promise<Connection> }
  | { readonly kind: 'open'; readonly conn: Connection }
  | { readonly kind: 'failed'; readonly error: Error }
  | { readonly kind: 'closed' };

interface ExitStatus {
  /** Null when the command was killed by a signal. */
  readonly code: number | null;
  /** `SIGTERM`, ... */
  readonly signal: string | null;
}

/** A command running on its own channel. */
interface RemoteCommand {
  readonly stream: ClientChannel;
  /** Settles once the channel has closed: with the exit status the server sent, or null when it sent none. */
  readonly closed: Promise<ExitStatus | null>;
}

interface RawResult {
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly timedOut: boolean;
  readonly stdout: Buffer;
  readonly stderr: Buffer;
}

const SFTP_STATUS: Record<number, string> = {
  1: 'EOF',
  2: 'ENOENT',
  3: 'EACCES',
  4: 'EIO',
  5: 'EINVAL',
  6: 'ENOTCONN',
  7: 'ECONNRESET',
  8: 'ENOTSUP',
};
const NO_CHANGE_ID = 0xffffffff;
/** How long after one of our channels closed a refused session is blamed on it (sshd frees it on its next pass). */
const SESSION_RELEASE_GRACE_MS = 2_000;
const RETRYABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'EAI_AGAIN', 'EPIPE', 'ECONNLOST']);

export class SshTransport implements HostTransport, LimitedConnection {
  readonly description: string;
  private readonly host: string;
  private readonly port: number;
  private readonly user: string;
  private readonly label: string;
  private readonly options: SshTransportOptions;
  private readonly sessions: Semaphore;
  private readonly limiter: ConnectionLimiter;
  private state: State = { kind: 'idle' };
  /** Reconnections after a loss are tried once; then the transport stays failed. */
  private lostOnce = false;
  private busy = 0;
  private lastUse = Date.now();
  private credentials: Promise<{ knownHosts: KnownHostEntry[]; knownHostsFiles: string[]; privateKey: Buffer | null }> | null = null;

  constructor(options: SshTransportOptions) {
    this.options = options;
    this.host = options.host;
    this.port = options.port ?? 22;
    this.user = options.user ?? 'root';
    this.description = `ssh ${this.user}@${this.host}:${this.port}${options.jump ? ` via ${options.jump.host}` : ''}`;
    this.label = options.label ? `${options.label} (${this.description})` : this.description;
    // Two sessions are the SFTP channel and the inspect helper; the rest run commands.
    this.sessions = new Semaphore(Math.max(1, (options.maxSessions ?? 10) - 2));
    this.limiter = options.limiter ?? processConnectionLimiter;
  }

  /** Opens the connection now (operations open it on demand otherwise); rejects with a message naming the host. */
  async connect(signal?: AbortSignal): Promise<void> {
    await this.use(async () => undefined, signal);
  }

  async inspect(paths: readonly string[], options: InspectOptions): Promise<PathInfo[]> {
    for (const p of paths) assertAbsolute(p);
    if (paths.length === 0) return [];
    const request = { confineTo: options.confineTo ?? '', maxContentBytes: options.maxContentBytes, content: options.content };
    const answer = await this.remoteRead('inspect', request, paths, options.signal);
    return parseInspectOutput(answer, paths, options.maxContentBytes);
  }

  async realpath(path: string): Promise<string> {
    assertAbsolute(path);
    const answer = await this.remoteRead('realpath', { confineTo: '', maxContentBytes: 0, content: false }, [posix.normalize(path)]);
    const [real] = parseRealpathOutput(answer, 1);
    return real!;
  }

  async writeFileAtomic(path: string, data: Buffer, options: WriteFileOptions): Promise<void> {
    assertAbsolute(path);
    const bits = modeBits(options.mode);
    const tmp = temporarySibling(path);
    await this.withSftp(async (sftp) => {
      const handle = await sftpCall<Buffer>(sftp, 'open', tmp, (cb) => sftp.open(tmp, 'wx', { mode: 0o600 }, cb));
      let closed = false;
      try {
        if (data.length > 0) await sftpCall(sftp, 'write', tmp, (cb) => sftp.write(handle, data, 0, data.length, 0, cb));
        // chown before chmod: chown clears setuid/setgid bits.
        if (options.uid !== undefined || options.gid !== undefined) {
          await sftpCall(sftp, 'chown', tmp, (cb) => sftp.fsetstat(handle, { uid: options.uid ?? NO_CHANGE_ID, gid: options.gid ?? NO_CHANGE_ID }, cb));
        }
        await sftpCall(sftp, 'chmod', tmp, (cb) => sftp.fsetstat(handle, { mode: bits }, cb));
        if (hasExtension(sftp, 'fsync@openssh.com')) await sftpCall(sftp, 'fsync', tmp, (cb) => sftp.ext_openssh_fsync(handle, cb));
        closed = true;
        await sftpCall(sftp, 'close', tmp, (cb) => sftp.close(handle, cb));
        await this.renameWith(sftp, tmp, path);
      } catch (err) {
        if (!closed) await sftpCall(sftp, 'close', tmp, (cb) => sftp.close(handle, cb)).catch(() => undefined);
        await sftpCall(sftp, 'unlink', tmp, (cb) => sftp.unlink(tmp, cb)).catch(() => undefined);
        throw err;
      }
    });
  }

  async mkdir(path: string, options: MkdirOptions): Promise<boolean> {
    assertAbsolute(path);
    const bits = modeBits(options.mode);
    return this.withSftp(async (sftp) => {
      if (options.parents && path !== '/') await this.mkdirParents(sftp, posix.dirname(path));
      try {
        // Created private, then opened up: never more open than asked, even for an instant.
        await sftpCall(sftp, 'mkdir', path, (cb) => sftp.mkdir(path, { mode: 0o700 }, cb));
      } catch (err) {
        const st = await sftpStat(sftp, path, 'stat');
        if (st?.isDirectory()) return false;
        if (st !== null || (await sftpStat(sftp, path, 'lstat')) !== null) throw withCode(err, 'EEXIST');
        throw err;
      }
      if (options.uid !== undefined || options.gid !== undefined) await this.chownNoFollow(sftp, path, options);
      await sftpCall(sftp, 'chmod', path, (cb) => sftp.setstat(path, { mode: bits }, cb));
      return true;
    });
  }

  async chmod(path: string, mode: string | number): Promise<void> {
    assertAbsolute(path);
    const bits = modeBits(mode);
    await this.withSftp(async (sftp) => {
      const st = await sftpCall<SftpStats>(sftp, 'lstat', path, (cb) => sftp.lstat(path, cb));
      if (!st.isFile() && !st.isDirectory()) {
        throw withCode(new Error(`cannot chmod ${path} on ${this.label}: it is ${describePathType(typeName(st))}`), 'ETYPE');
      }
      await sftpCall(sftp, 'chmod', path, (cb) => sftp.setstat(path, { mode: bits }, cb));
    });
  }

  async lchown(path: string, ownership: Ownership): Promise<void> {
    assertAbsolute(path);
    if (ownership.uid === undefined && ownership.gid === undefined) return;
    await this.withSftp((sftp) => this.chownNoFollow(sftp, path, ownership));
  }

  async symlink(target: string, path: string): Promise<void> {
    assertAbsolute(path);
    const tmp = temporarySibling(path);
    await this.withSftp(async (sftp) => {
      await sftpCall(sftp, 'symlink', tmp, (cb) => sftp.symlink(target, tmp, cb));
      try {
        await this.renameWith(sftp, tmp, path);
      } catch (err) {
        await sftpCall(sftp, 'unlink', tmp, (cb) => sftp.unlink(tmp, cb)).catch(() => undefined);
        throw err;
      }
    });
  }

  async rename(from: string, to: string): Promise<void> {
    assertAbsolute(from);
    assertAbsolute(to);
    await this.withSftp((sftp) => this.renameWith(sftp, from, to));
  }

  async remove(path: string, options: { type: 'file' | 'symlink' | 'directory' }): Promise<boolean> {
    assertAbsolute(path);
    return this.withSftp(async (sftp) => {
      const st = await sftpStat(sftp, path, 'lstat');
      if (st === null) return false;
      const actual = typeName(st);
      if (actual !== options.type) {
        throw withCode(new Error(`cannot remove ${path} on ${this.label}: it is ${describePathType(actual)}, not ${describePathType(options.type)}`), 'ETYPE');
      }
      if (actual !== 'directory') {
        await sftpCall(sftp, 'unlink', path, (cb) => sftp.unlink(path, cb));
        return true;
      }
      try {
        await sftpCall(sftp, 'rmdir', path, (cb) => sftp.rmdir(path, cb));
      } catch (err) {
        if (errnoOf(err) === 'EIO') {
          const entries = await sftpCall<unknown[]>(sftp, 'readdir', path, (cb) => sftp.readdir(path, cb)).catch(() => []);
          if (entries.length > 0) throw withCode(err, 'ENOTEMPTY', `directory not empty: ${path}`);
        }
        throw err;
      }
      return true;
    });
  }

  async resolveAccounts(query: { users: readonly string[]; groups: readonly string[] }): Promise<AccountIds> {
    const [passwd, group] = await this.withSftp((sftp) => Promise.all([readOptional(sftp, '/etc/passwd'), readOptional(sftp, '/etc/group')]));
    const users = parseIdDatabase(passwd);
    const groups = parseIdDatabase(group);
    return {
      users: new Map(query.users.map((u) => [u, users.ids.get(u) ?? null])),
      groups: new Map(query.groups.map((g) => [g, groups.ids.get(g) ?? null])),
    };
  }

  async exec(argv: readonly string[], options: ExecOptions): Promise<ExecResult> {
    const [file] = argv;
    if (file === undefined || file === '') throw new Error('exec needs a program to run');
    const lines: string[] = [];
    for (const [name, value] of Object.entries(options.env ?? {})) {
      if (!isShellName(name)) throw new RangeError(`invalid environment variable name ${JSON.stringify(name)}`);
      lines.push(`${name}=${quoteArg(value)}; export ${name}`);
    }
    if (options.cwd !== undefined) {
      const cwd = options.cwd.startsWith('/') ? options.cwd : `./${options.cwd}`;
      lines.push(`cd ${quoteArg(cwd)} || exit 126`);
    }
    // A program that cannot be found is an error, as with LocalTransport, not an exit status.
    lines.push(`command -v ${quoteArg(file)} >/dev/null 2>&1 || { printf '%s\\n' ${quoteArg(NOT_FOUND)} >&2; exit 127; }`);
    lines.push(`exec ${quoteCommand(argv)}`);
    const input = options.input === undefined ? undefined : Buffer.from(options.input);
    const result = await this.use(
      (conn) => this.runOn(conn, lines.join('\n'), input, options.timeoutMs, options.signal),
      options.signal,
    );
    const stderr = result.stderr.toString('utf8');
    if (result.exitCode === 127 && stderr === `${NOT_FOUND}\n`) throw new MissingProgramError(file, debianPackageOf(file), `host ${this.label}`);
    return {
      exitCode: result.exitCode,
      signal: result.signal,
      timedOut: result.timedOut,
      stdout: result.stdout.toString('utf8'),
      stderr,
    };
  }

  async close(): Promise<void> {
    const state = this.state;
    this.state = { kind: 'closed' };
    if (state.kind === 'open') this.shutdown(state.conn);
    else if (state.kind === 'connecting') await state.ready.then((c) => this.shutdown(c), () => undefined);
    this.limiter.release(this);
  }

  // LimitedConnection

  isIdle(): boolean {
    return this.busy === 0 && this.state.kind === 'open';
  }

  lastUsed(): number {
    return this.lastUse;
  }

  evict(): void {
    if (this.state.kind !== 'open') return;
    const conn = this.state.conn;
    this.state = { kind: 'idle' };
    this.shutdown(conn);
  }

  // Internals

  /** Runs `fn` on an open connection, opening it first when needed; counts as a use for the limiter. */
  private async use<T>(fn: (conn: Connection) => Promise<T>, signal?: AbortSignal): Promise<T> {
    this.busy++;
    this.lastUse = Date.now();
    try {
      const conn = await this.connection(signal);
      try {
        return await fn(conn);
      } catch (err) {
        // A failure caused by the connection dropping says so, whatever the operation saw.
        if (conn.lost) throw new SshConnectionError(`connection to ${this.label} lost: ${conn.lost.message}`, 'ECONNRESET', false, { cause: err });
        throw err;
      }
    } finally {
      this.busy--;
      this.lastUse = Date.now();
      if (this.busy === 0) this.limiter.idle();
    }
  }

  private withSftp<T>(fn: (sftp: SFTPWrapper) => Promise<T>): Promise<T> {
    return this.use(async (conn) => fn(await this.sftpOf(conn)));
  }

  private async connection(signal?: AbortSignal): Promise<Connection> {
    for (;;) {
      const state = this.state;
      switch (state.kind) {
        case 'open':
          if (!state.conn.lost) return state.conn;
          this.state = { kind: 'idle' };
          continue;
        case 'connecting':
          return state.ready;
        case 'failed':
          throw state.error;
        case 'closed':
          throw new SshConnectionError(`the connection to ${this.label} is closed`, 'ECONNABORTED', false);
        case 'idle': {
          const ready = this.open(signal);
          this.state = { kind: 'connecting', ready };
          ready.then(
            (conn) => {
              if (this.state.kind === 'connecting' && this.state.ready === ready) this.state = { kind: 'open', conn };
              else this.shutdown(conn);
            },
            (error: Error) => {
              if (this.state.kind === 'connecting' && this.state.ready === ready) {
                // Keep failing fast once the host proved unreachable (after a loss, or from the start).
                this.state = { kind: 'failed', error };
              }
            },
          );
          return ready;
        }
      }
    }
  }

  /** Opens a connection with retries (connection failures only), under the process-wide limit. */
  private async open(signal?: AbortSignal): Promise<Connection> {
    await this.limiter.acquire(this, signal);
    const attempts = this.lostOnce ? 1 : Math.max(1, this.options.connectAttempts ?? 3);
    const started = Date.now();
    let last: unknown;
    try {
      for (let attempt = 1; attempt <= attempts; attempt++) {
        try {
          return await this.connectOnce();
        } catch (err) {
          last = err;
          if (!(err instanceof SshConnectionError && err.retryable) || attempt === attempts) break;
          const base = (this.options.retryDelayMs ?? 250) * 2 ** (attempt - 1);
          await sleep(base / 2 + Math.random() * base, signal);
        }
      }
    } catch (err) {
      last = err;
    }
    this.limiter.release(this);
    if (last instanceof SshConnectionError && last.retryable && attempts > 1) {
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      throw new SshConnectionError(`${last.message} (${attempts} attempts over ${seconds} s)`, last.code, false, { cause: last });
    }
    throw last;
  }

  private async connectOnce(): Promise<Connection> {
    const { knownHosts, knownHostsFiles, privateKey } = await this.loadCredentials();
    let jumpClient: Client | null = null;
    let sock: NodeJS.ReadableStream | undefined;
    const jump = this.options.jump;
    if (jump) {
      const endpoint = { host: jump.host, port: jump.port ?? 22, user: jump.user ?? 'root' };
      jumpClient = await this.handshake(endpoint, knownHosts, knownHostsFiles, privateKey, undefined, `jump host ${endpoint.host}`);
      try {
        sock = await new Promise<ClientChannel>((resolve, reject) =>
          jumpClient!.forwardOut('127.0.0.1', 0, this.host, this.port, (err, stream) => (err ? reject(err) : resolve(stream))),
        );
      } catch (err) {
        jumpClient.end();
        throw new SshConnectionError(
          `cannot reach ${this.label} through the jump host ${jump.host}: ${(err as Error).message}`,
          'ECONNREFUSED',
          true,
          { cause: err },
        );
      }
    }
    let client: Client;
    try {
      client = await this.handshake({ host: this.host, port: this.port, user: this.user }, knownHosts, knownHostsFiles, privateKey, sock, this.label);
    } catch (err) {
      jumpClient?.end();
      throw err;
    }
    const conn: Connection = { client, jumpClient, sftp: null, helper: null, lost: null, closed: new AbortController(), channels: 0, lastChannelClose: 0 };
    // Every SFTP request in flight listens to it.
    setMaxListeners(0, conn.closed.signal);
    const onLost = (why: string) => (err?: Error) => {
      if (conn.lost) return;
      conn.lost = err ?? new Error(why);
      conn.closed.abort(conn.lost);
      this.lostOnce = true;
      if (this.state.kind === 'open' && this.state.conn === conn) {
        this.state = { kind: 'idle' };
        this.limiter.release(this);
      }
      client.end();
      jumpClient?.end();
    };
    client.on('error', onLost('connection error'));
    client.on('close', onLost('the server closed the connection'));
    jumpClient?.on('error', onLost('jump host connection error'));
    jumpClient?.on('close', onLost('the jump host closed the connection'));
    return conn;
  }

  private handshake(
    endpoint: { host: string; port: number; user: string },
    knownHosts: KnownHostEntry[],
    knownHostsFiles: string[],
    privateKey: Buffer | null,
    sock: NodeJS.ReadableStream | undefined,
    who: string,
  ): Promise<Client> {
    const name = knownHostsName(endpoint.host, endpoint.port);
    const where = `${who}${who.includes(endpoint.host) ? '' : ` (${endpoint.host}:${endpoint.port})`}`;
    let refusal: HostKeyError | null = null;
    const verifier = (key: Buffer): boolean => {
      const verdict = verifyHostKey(knownHosts, name, key);
      if (verdict.status === 'trusted') return true;
      refusal = new HostKeyError(hostKeyMessage(verdict, where, name, key, knownHostsFiles));
      return false;
    };
    const algorithms = hostKeyAlgorithmsFor(knownHosts, name);
    const config: ConnectConfig = {
      host: endpoint.host,
      port: endpoint.port,
      username: endpoint.user,
      readyTimeout: this.options.connectTimeoutMs ?? 10_000,
      keepaliveInterval: this.options.keepaliveIntervalMs ?? 5_000,
      keepaliveCountMax: 3,
      hostVerifier: verifier,
      tryKeyboard: false,
      ...(algorithms.length > 0 ? { algorithms: { serverHostKey: algorithms as never } } : {}),
      ...(privateKey
        ? { privateKey, ...(this.options.passphrase !== undefined ? { passphrase: this.options.passphrase } : {}) }
        : { agent: this.options.agent ?? process.env.SSH_AUTH_SOCK }),
      ...(sock ? { sock: sock as never } : {}),
    };
    return new Promise<Client>((resolve, reject) => {
      const client = new Client();
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        client.end();
        reject(refusal ?? connectError(err, where, endpoint.user, privateKey !== null));
      };
      client.once('ready', () => {
        settled = true;
        // `fail` stays attached (and does nothing now): an error before the caller adds its own listener must not crash.
        resolve(client);
      });
      client.on('error', fail);
      client.once('close', () => fail(Object.assign(new Error('the server closed the connection during the handshake'), { code: 'ECONNLOST' })));
      try {
        client.connect(config);
      } catch (err) {
        fail(err as Error);
      }
    });
  }

  private loadCredentials() {
    this.credentials ??= (async () => {
      const explicit = this.options.knownHostsFile;
      const files = explicit
        ? [{ path: explicit, optional: false }]
        : [
            { path: posix.join(os.homedir(), '.ssh/known_hosts'), optional: true },
            { path: '/etc/ssh/ssh_known_hosts', optional: true },
          ];
      const knownHosts = await readKnownHosts(files).catch((err: Error) => {
        throw new SshConnectionError(`cannot check the host key of ${this.label}: ${err.message}`, 'ENOENT', false, { cause: err });
      });
      let privateKey: Buffer | null = this.options.privateKey ?? null;
      if (privateKey === null && this.options.identityFile) {
        try {
          privateKey = await fs.readFile(this.options.identityFile);
        } catch (err) {
          throw new SshConnectionError(
            `cannot read the identityFile ${this.options.identityFile} for ${this.label}: ${(err as Error).message}`,
            'ENOENT',
            false,
            { cause: err },
          );
        }
      } else if (privateKey === null && !(this.options.agent ?? process.env.SSH_AUTH_SOCK)) {
        throw new SshConnectionError(
          `no key to log in to ${this.label} with: the Host has no identityFile and no SSH agent is running (SSH_AUTH_SOCK is not set)`,
          'ENOKEY',
          false,
        );
      }
      return { knownHosts, knownHostsFiles: files.map((f) => f.path), privateKey };
    })();
    // A failed read is tried again on the next connection.
    this.credentials.catch(() => {
      this.credentials = null;
    });
    return this.credentials;
  }

  private sftpOf(conn: Connection): Promise<SFTPWrapper> {
    if (!conn.sftp) {
      // Its session is one of the two kept out of the command pool (see the constructor).
      const opened = new Promise<SFTPWrapper>((resolve, reject) => {
        conn.client.sftp((err, sftp) => {
          if (err) {
            reject(new Error(`cannot open SFTP on ${this.label}: ${err.message}`, { cause: err }));
            return;
          }
          sftpClosed.set(sftp, conn.closed.signal);
          resolve(sftp);
        });
      });
      conn.sftp = opened;
      opened.catch(() => {
        if (conn.sftp === opened) conn.sftp = null;
      });
    }
    return conn.sftp;
  }

  /**
   * Runs the inspect script for `paths`: through the connection's persistent
   * helper when the host has python3 (one round trip), else as one `sh` script
   * per call.
   */
  private async remoteRead(
    op: 'inspect' | 'realpath',
    request: { confineTo: string; maxContentBytes: number; content: boolean },
    paths: readonly string[],
    signal?: AbortSignal,
  ): Promise<Buffer> {
    const interpreter = this.options.interpreter ?? 'auto';
    const timeout = this.options.commandTimeoutMs ?? 120_000;
    if (interpreter !== 'sh') {
      const answer = await this.use(async (conn) => {
        const helper = await this.helperOf(conn);
        return helper && helper.request(encodeHelperRequest(op, request, paths), timeout, signal);
      }, signal);
      if (answer !== null) return answer;
      if (interpreter === 'python3') throw withCode(new Error(`python3 is not installed on ${this.label}`), 'ENOENT');
    }
    const command = inspectCommand(op, { interpreter: 'sh', ...request });
    return (await this.runScript(command, encodePaths(paths), op, signal)).stdout;
  }

  private helperOf(conn: Connection): Promise<InspectHelper | null> {
    if (!conn.helper) {
      const started: Promise<InspectHelper | null> = this.startHelper(conn, () => {
        if (conn.helper === started) conn.helper = null;
      });
      conn.helper = started;
      started.catch(() => {
        if (conn.helper === started) conn.helper = null;
      });
    }
    return conn.helper;
  }

  /** Starts the helper; null when the host has no python3. `onEnd` runs when a helper that did start ends. */
  private async startHelper(conn: Connection, onEnd: () => void): Promise<InspectHelper | null> {
    const timeout = this.options.commandTimeoutMs ?? 120_000;
    const { stream, closed } = await this.startCommand(conn, quoteCommand(helperCommand()), timeout, undefined, 'helper');
    const what = `the inspect helper on ${this.label}`;
    const helper = new InspectHelper(stream, stream, what, () => killChannel(stream));
    let stderr = '';
    let status: ExitStatus | null = null;
    let started = false;
    stream.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < 4096) stderr += chunk.toString('utf8');
    });
    void closed.then((exit) => {
      status = exit;
      helper.fail(
        conn.lost
          ? new SshConnectionError(`connection to ${this.label} lost: ${conn.lost.message}`, 'ECONNRESET', false)
          : withCode(new Error(`${what} exited (${exit?.code ?? exit?.signal ?? 'no exit status'})${stderr.trim() ? `: ${stderr.trim()}` : ''}`), 'EIO'),
      );
      if (started) onEnd();
    });
    const timer = setTimeout(() => {
      helper.fail(new Error(`${what} did not start within ${timeout} ms`));
      killChannel(stream);
    }, timeout);
    try {
      await helper.ready;
    } catch (err) {
      if ((status as ExitStatus | null)?.code === 127) return null;
      throw err;
    } finally {
      clearTimeout(timer);
    }
    started = true;
    return helper;
  }

  /** Runs one of the inspect scripts; a non-zero exit or a timeout is an error. */
  private async runScript(argv: string[], input: Buffer, what: string, signal?: AbortSignal): Promise<RawResult> {
    const timeout = this.options.commandTimeoutMs ?? 120_000;
    const result = await this.use((conn) => this.runOn(conn, quoteCommand(argv), input, timeout, signal), signal);
    if (result.timedOut) throw withCode(new Error(`${what} on ${this.label} took longer than ${timeout} ms`), 'ETIMEDOUT');
    if (result.exitCode !== 0) {
      const stderr = result.stderr.toString('utf8').trim();
      throw withCode(
        new Error(`${what} on ${this.label} failed (exit ${result.exitCode ?? result.signal}): ${stderr || 'no message'}`),
        'EIO',
      );
    }
    return result;
  }

  /**
   * One command on one channel: feeds `input`, collects both outputs, enforces the
   * timeout. A command that times out (or is cancelled) is killed and answered for
   * at once; its session stays counted until the server closes the channel.
   *
   * A channel that closes without an exit status is an error, never retried: the
   * command may have run, whole or in part.
   */
  private runOn(conn: Connection, command: string, input: Buffer | undefined, timeoutMs: number, signal?: AbortSignal): Promise<RawResult> {
    signal?.throwIfAborted();
    return new Promise<RawResult>((resolve, reject) => {
      void this.sessions.run(async () => {
        let started: RemoteCommand;
        try {
          started = await this.startCommand(conn, command, timeoutMs, signal);
        } catch (err) {
          reject(err as Error);
          return;
        }
        const { stream, closed } = started;
        const out: Buffer[] = [];
        const errOut: Buffer[] = [];
        let answered = false;
        const answer = (result: RawResult | Error) => {
          if (answered) return;
          answered = true;
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          if (result instanceof Error) reject(result);
          else resolve(result);
        };
        const timer = setTimeout(() => {
          killChannel(stream);
          answer({ exitCode: null, signal: 'SIGKILL', timedOut: true, stdout: Buffer.concat(out), stderr: Buffer.concat(errOut) });
        }, timeoutMs);
        const onAbort = () => {
          killChannel(stream);
          answer(signal?.reason instanceof Error ? signal.reason : new Error('cancelled'));
        };
        // Cancelled while the channel was opening: the command has started, so it is killed.
        if (signal?.aborted) onAbort();
        else signal?.addEventListener('abort', onAbort, { once: true });
        stream.on('data', (chunk: Buffer) => out.push(chunk));
        stream.stderr.on('data', (chunk: Buffer) => errOut.push(chunk));
        stream.end(input);
        const status = await closed;
        if (status === null) {
          answer(
            conn.lost
              ? new SshConnectionError(`connection to ${this.label} lost while a command ran: ${conn.lost.message}`, 'ECONNRESET', false)
              : withCode(new Error(`${this.label} closed the channel of a running command without an exit status: it may or may not have finished`), 'EIO'),
          );
          return;
        }
        answer({ exitCode: status.code, signal: status.signal, timedOut: false, stdout: Buffer.concat(out), stderr: Buffer.concat(errOut) });
      });
    });
  }

  /**
   * Opens a session channel and starts `command` on it.
   *
   * sshd refuses a session beyond its MaxSessions, and it frees the session of a
   * closed channel only on its next pass after reading our CHANNEL_CLOSE, while
   * the next command's CHANNEL_OPEN may be in the same read: so a refusal happens
   * even below the limit, when several channels close at once. A refused open ran
   * nothing, so it is tried again, for as long as our other channels may be what
   * holds the server's sessions (up to `timeoutMs`); a refusal with none of ours
   * open or just closed gives up after a few attempts.
   */
  private async startCommand(conn: Connection, command: string, timeoutMs: number, signal?: AbortSignal, kind: 'command' | 'helper' = 'command'): Promise<RemoteCommand> {
    const deadline = Date.now() + timeoutMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await new Promise<RemoteCommand>((resolve, reject) => {
          conn.client.exec(command, (err, stream) => (err ? reject(err) : resolve(watchCommand(stream, kind === 'command' ? conn : null))));
        });
      } catch (err) {
        if (conn.lost) throw new SshConnectionError(`connection to ${this.label} lost: ${conn.lost.message}`, 'ECONNRESET', false, { cause: err });
        const message = (err as Error).message;
        const refused = /Channel open failure/i.test(message);
        const othersHoldSessions = conn.channels > 0 || Date.now() - conn.lastChannelClose < SESSION_RELEASE_GRACE_MS;
        if (!refused || (attempt >= 5 && !othersHoldSessions) || Date.now() >= deadline) {
          const tries = refused && attempt > 1 ? ` (refused ${attempt} times)` : '';
          throw new Error(`cannot start a command on ${this.label}: ${message}${tries}`, { cause: err });
        }
        await sleep(Math.min(500, 10 * 2 ** attempt), signal);
      }
    }
  }

  /** rename(2) through posix-rename@openssh.com, with the reason looked up when SFTP only says "Failure". */
  private async renameWith(sftp: SFTPWrapper, from: string, to: string): Promise<void> {
    const rename = hasExtension(sftp, 'posix-rename@openssh.com')
      ? (cb: (err?: Error | null) => void) => sftp.ext_openssh_rename(from, to, cb)
      : (cb: (err?: Error | null) => void) => sftp.rename(from, to, cb);
    try {
      await sftpCall(sftp, 'rename', from, rename);
    } catch (err) {
      if (errnoOf(err) !== 'EIO') throw err;
      throw withCode(err, await this.renameFailure(sftp, from, to), undefined);
    }
  }

  private async renameFailure(sftp: SFTPWrapper, from: string, to: string): Promise<string> {
    if (to === from || to.startsWith(`${from}/`)) return 'EINVAL';
    const target = await sftpStat(sftp, to, 'lstat');
    if (target?.isDirectory()) {
      const entries = await sftpCall<unknown[]>(sftp, 'readdir', to, (cb) => sftp.readdir(to, cb)).catch(() => []);
      if (entries.length > 0) return 'ENOTEMPTY';
    }
    // Different filesystems: SFTP cannot tell, `stat` can.
    const r = await this.exec(['stat', '-c', '%d', '--', posix.dirname(from), posix.dirname(to)], { timeoutMs: 30_000 }).catch(() => null);
    const [a, b] = r?.stdout.trim().split('\n') ?? [];
    if (r?.exitCode === 0 && a !== undefined && b !== undefined && a !== b) return 'EXDEV';
    return 'EIO';
  }

  private async mkdirParents(sftp: SFTPWrapper, dir: string): Promise<void> {
    const st = await sftpStat(sftp, dir, 'stat');
    if (st?.isDirectory()) return;
    if (st !== null) throw withCode(new Error(`cannot create ${dir} on ${this.label}: it exists and is not a directory`), 'ENOTDIR');
    if (dir !== '/') await this.mkdirParents(sftp, posix.dirname(dir));
    try {
      await sftpCall(sftp, 'mkdir', dir, (cb) => sftp.mkdir(dir, { mode: 0o755 }, cb));
    } catch (err) {
      // Made meanwhile by someone else: fine, as with mkdir -p.
      if (!(await sftpStat(sftp, dir, 'stat'))?.isDirectory()) throw err;
    }
  }

  private async chownNoFollow(sftp: SFTPWrapper, path: string, ids: Ownership): Promise<void> {
    const attrs = { uid: ids.uid ?? NO_CHANGE_ID, gid: ids.gid ?? NO_CHANGE_ID };
    if (hasExtension(sftp, 'lsetstat@openssh.com')) {
      await sftpCall(sftp, 'chown', path, (cb) => sftp.ext_openssh_lsetstat(path, attrs, cb));
      return;
    }
    const owner = `${ids.uid ?? ''}:${ids.gid ?? ''}`.replace(/:$/, '');
    const r = await this.exec(['chown', '-h', '--', owner, path], { timeoutMs: 30_000 });
    if (r.exitCode !== 0) throw withCode(new Error(`chown ${path} on ${this.label}: ${r.stderr.trim()}`), 'EIO');
  }

  private shutdown(conn: Connection): void {
    conn.lost ??= new Error('closed');
    conn.closed.abort(conn.lost);
    conn.client.end();
    conn.jumpClient?.end();
  }
}

const NOT_FOUND = 'capstan-exec: program not found';

/**
 * Watches a channel from the tick it opened in: ssh2 emits 'exit' as soon as it
 * parses the exit status, which may arrive in the same read as the reply that
 * started the command, before any later listener exists. `counted` is the
 * connection whose command channels it counts, if any.
 */
function watchCommand(stream: ClientChannel, counted: Connection | null): RemoteCommand {
  if (counted) counted.channels++;
  keepOpenUntilServerCloses(stream);
  let status: ExitStatus | null = null;
  let ended = false;
  // With the status in hand and the output read to its end, nothing more can come: close, for a
  // server that waits for the client to close first.
  const closeWhenDone = () => {
    if (ended && status !== null) stream.close();
  };
  stream.once('exit', (code: number | null, sig?: string) => {
    status ??= { code: code ?? null, signal: code === null || code === undefined ? (sig ?? null) : null };
    closeWhenDone();
  });
  stream.once('end', () => {
    ended = true;
    closeWhenDone();
  });
  // A write after the server closed the channel; the close answers for the command.
  stream.on('error', () => undefined);
  const closed = new Promise<ExitStatus | null>((resolve) => {
    // ssh2 repeats the exit status (or signal) as the arguments of 'close'; undefined when none came.
    stream.once('close', (code?: number | null, sig?: string) => {
      if (counted) {
        counted.channels--;
        counted.lastChannelClose = Date.now();
      }
      if (code !== undefined) status ??= { code, signal: code === null ? (sig ?? null) : null };
      resolve(status);
    });
  });
  return { stream, closed };
}

/**
 * Stops Node from destroying the channel by itself once its stdout has ended and
 * its stdin is finished: ssh2's destroy() sends CHANNEL_CLOSE, and a server
 * that reads our CHANNEL_CLOSE before it has reaped the command may close
 * without sending the exit status (RFC 4254 lets it). The channel then closes
 * once the status has come (watchCommand), or when killChannel closes it.
 */
function keepOpenUntilServerCloses(stream: ClientChannel): void {
  const states = stream as unknown as { _readableState?: { autoDestroy: boolean }; _writableState?: { autoDestroy: boolean } };
  if (states._readableState) states._readableState.autoDestroy = false;
  if (states._writableState) states._writableState.autoDestroy = false;
}

/** Kills a running command and closes its channel. */
function killChannel(stream: ClientChannel): void {
  // ssh2's Channel.signal() does nothing once stdin is closed (it checks `writable`),
  // though the request is still valid then: send it through the protocol directly.
  const channel = stream as unknown as {
    outgoing?: { id: number; state: string };
    _client?: { _protocol?: { signal(id: number, name: string): void } };
  };
  try {
    if (channel.outgoing?.state === 'open') channel._client?._protocol?.signal(channel.outgoing.id, 'KILL');
  } catch {
    // The channel is closing anyway.
  }
  stream.close();
}

function hostKeyMessage(
  verdict: ReturnType<typeof verifyHostKey>,
  where: string,
  name: string,
  key: Buffer,
  files: readonly string[],
): string {
  const presented = `${keyTypeOf(key) ?? 'unknown type'} ${fingerprint(key)}`;
  const fileList = files.join(' or ');
  switch (verdict.status) {
    case 'changed': {
      const known = verdict.known.map((e) => `${e.keyType} ${fingerprint(e.key)} (${e.origin})`).join(', ');
      return (
        `host key for ${where} changed: known_hosts holds ${known}, but the server presented ${presented}. ` +
        `Someone may be intercepting the connection, or the host was reinstalled; refusing to connect. ` +
        `If the change is expected, replace the entry for "${name}" in ${fileList}.`
      );
    }
    case 'revoked':
      return `host key for ${where} is revoked (${verdict.entry.origin}): the server presented ${presented}; refusing to connect.`;
    default:
      return (
        `host key for ${where} is not known: ${fileList} has no entry for "${name}", and the server presented ${presented}. ` +
        `Check that fingerprint out of band, then add the key (ssh-keyscan${name.startsWith('[') ? ` -p ${name.slice(name.lastIndexOf(':') + 1)}` : ''} ${name.replace(/^\[(.*)\]:\d+$/, '$1')}).`
      );
  }
}

function connectError(err: Error, where: string, user: string, withKey: boolean): SshConnectionError {
  const code = typeof (err as NodeJS.ErrnoException).code === 'string' ? (err as NodeJS.ErrnoException).code! : '';
  const level = (err as { level?: string }).level;
  if (level === 'client-authentication') {
    return new SshConnectionError(
      `authentication to ${where} as ${user} failed: the server refused ${withKey ? 'the identityFile key' : 'every key the SSH agent offered'}`,
      'EAUTH',
      false,
      { cause: err },
    );
  }
  if (/Timed out while waiting for handshake/.test(err.message)) {
    return new SshConnectionError(`cannot connect to ${where}: no answer within the connect timeout`, 'ETIMEDOUT', true, { cause: err });
  }
  if (RETRYABLE_CODES.has(code)) {
    const reason = code === 'ECONNREFUSED' ? 'connection refused (is sshd running?)' : err.message;
    return new SshConnectionError(`cannot connect to ${where}: ${reason}`, code, true, { cause: err });
  }
  return new SshConnectionError(`cannot connect to ${where}: ${err.message}`, code || 'EIO', level === 'client-socket' || level === 'client-timeout', {
    cause: err,
  });
}

/** Aborted when the connection an SFTP channel belongs to is lost or closed. */
const sftpClosed = new WeakMap<SFTPWrapper, AbortSignal>();

/**
 * One SFTP request. ssh2 silently drops a request made on a channel that has
 * closed (its callback never comes), so a request fails at once when the
 * connection is gone, and a waiting one fails when it goes.
 */
function sftpCall<T = void>(
  sftp: SFTPWrapper,
  op: string,
  path: string,
  call: (cb: (err: Error | null | undefined, value?: T) => void) => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const closed = sftpClosed.get(sftp);
    const onClosed = () => reject(Object.assign(new Error(`${op} ${path}: the connection closed`), { code: 'ECONNRESET', path }));
    if (closed?.aborted || (sftp as unknown as { outgoing?: { state?: string } }).outgoing?.state !== 'open') {
      onClosed();
      return;
    }
    closed?.addEventListener('abort', onClosed, { once: true });
    try {
      call((err, value) => {
        closed?.removeEventListener('abort', onClosed);
        if (err) reject(sftpError(err, op, path));
        else resolve(value as T);
      });
    } catch (err) {
      closed?.removeEventListener('abort', onClosed);
      reject(sftpError(err as Error, op, path));
    }
  });
}

/** `stat`/`lstat` that answers null for a missing path. */
async function sftpStat(sftp: SFTPWrapper, path: string, which: 'stat' | 'lstat'): Promise<SftpStats | null> {
  try {
    return await sftpCall<SftpStats>(sftp, which, path, (cb) => (which === 'stat' ? sftp.stat(path, cb) : sftp.lstat(path, cb)));
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return null;
    throw err;
  }
}

function sftpError(err: Error, op: string, path: string): Error {
  const status = (err as { code?: unknown }).code;
  const code = typeof status === 'number' ? (SFTP_STATUS[status] ?? 'EIO') : typeof status === 'string' ? status : 'EIO';
  return Object.assign(new Error(`${op} ${path}: ${err.message}`, { cause: err }), { code, path });
}

async function readOptional(sftp: SFTPWrapper, path: string): Promise<string> {
  try {
    return (await sftpCall<Buffer>(sftp, 'read', path, (cb) => sftp.readFile(path, cb))).toString('utf8');
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return '';
    throw err;
  }
}

function hasExtension(sftp: SFTPWrapper, name: string): boolean {
  const extensions = (sftp as unknown as { _extensions?: Record<string, string> })._extensions;
  return extensions !== undefined && name in extensions;
}

function typeName(st: SftpStats): Exclude<PathType, 'absent'> {
  return pathTypeOfMode(st.mode);
}

function temporarySibling(path: string): string {
  // Keep the name under NAME_MAX (255) however long the destination's name is.
  const base = posix.basename(path).slice(0, 200);
  return posix.join(posix.dirname(path), `.${base}.capstan-${randomBytes(6).toString('hex')}.tmp`);
}

function assertAbsolute(path: string): void {
  if (!path.startsWith('/') || path.includes('\0')) throw new Error(`not an absolute path: ${JSON.stringify(path)}`);
}

function errnoOf(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

function withCode(err: unknown, code: string, message?: string): Error {
  const e = err instanceof Error ? err : new Error(String(err));
  if (message !== undefined) e.message = message;
  return Object.assign(e, { code });
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason ?? new Error('cancelled'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
