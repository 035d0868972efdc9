/**
 * Test support for the system providers: a local Host rooted in a fresh temp
 * directory, optionally running its commands inside a network namespace, with
 * every transport call recorded so tests can check that reads are batched.
 */
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalTransport } from '../../../transport/local.js';
import type { ExecOptions, ExecResult, HostTransport, InspectOptions, PathInfo } from '../../../transport/transport.js';
import type { HostHandle } from '../../host/host.js';
import type { ApplyRequest, ChangeAction, ProviderContext, ResourceProvider } from '../../provider.js';
import { createNamespace, NetnsTransport, TransportDecorator, type Namespace } from './netns.js';

export const ctx: ProviderContext = { signal: new AbortController().signal };

/** Passes every call through, counting `exec` and `inspect` calls and keeping the argv of each exec. */
export class RecordingTransport extends TransportDecorator {
  readonly execs: string[][] = [];
  inspects = 0;

  override exec(argv: readonly string[], options: ExecOptions): Promise<ExecResult> {
    this.execs.push([...argv]);
    return this.inner.exec(argv, options);
  }

  override inspect(paths: readonly string[], options: InspectOptions): Promise<PathInfo[]> {
    this.inspects += 1;
    return this.inner.inspect(paths, options);
  }

  reset(): void {
    this.execs.length = 0;
    this.inspects = 0;
  }
}

export interface TestHost {
  /** The temp directory that holds the root (and room for files outside it). */
  readonly dir: string;
  /** The Host's root: a real directory. */
  readonly root: string;
  readonly handle: HostHandle;
  readonly recorder: RecordingTransport;
  /** Present when the host runs its commands in a namespace of its own. */
  readonly namespace: Namespace | undefined;
  /** Real path of a spec path. */
  real(specPath: string): string;
  cleanup(): Promise<void>;
}

export interface TestHostOptions {
  /** Run commands inside a new network namespace with this name prefix. */
  readonly netns?: string | undefined;
  /** The Host's root: a temp directory (default), or "/" for the machine itself. */
  readonly machineRoot?: boolean | undefined;
  /** Pretend the host is reached over SSH on this port (what the Firewall provider protects). */
  readonly sshPort?: number | undefined;
  /** Make a namespace-bound transport look like an SSH one in messages. */
  readonly description?: string | undefined;
}

export async function openTestHost(options: TestHostOptions = {}): Promise<TestHost> {
  const dir = await fs.realpath(await fs.mkdtemp(join(tmpdir(), 'capstan-system-')));
  const root = options.machineRoot ? '/' : join(dir, 'root');
  if (!options.machineRoot) await fs.mkdir(root);
  let namespace: Namespace | undefined;
  try {
    namespace = options.netns ? createNamespace(options.netns) : undefined;
  } catch (err) {
    await fs.rm(dir, { recursive: true, force: true });
    throw err;
  }
  const local = new LocalTransport();
  const base: HostTransport = namespace ? new NetnsTransport(local, namespace.name, options.description) : local;
  const recorder = new RecordingTransport(base);
  const handle: HostHandle & { sshPort?: number } = {
    address: 'Host/test',
    hostName: 'test',
    transport: recorder,
    root,
    realRoot: root,
    close: () => recorder.close(),
    ...(options.sshPort !== undefined ? { sshPort: options.sshPort } : {}),
  };
  return {
    dir,
    root,
    handle,
    recorder,
    namespace,
    real: (specPath) => (root === '/' ? specPath : root + specPath),
    async cleanup() {
      try {
        await handle.close();
        namespace?.remove();
      } finally {
        await fs.rm(dir, { recursive: true, force: true });
      }
    },
  };
}

/** Plans and applies one resource the way the engine does; returns the plan's diff and the live state after apply. */
export async function converge<Spec, Live>(
  provider: ResourceProvider<Spec, Live, HostHandle>,
  handle: HostHandle,
  desired: Spec,
  prior: Spec | null = null,
) {
  const [live] = await provider.read(handle, [desired], ctx);
  const diff = provider.diff(desired, live ?? null, prior);
  if (diff.action === 'noop') return { diff, live: live ?? null };
  const request: ApplyRequest<Spec, Live> = {
    action: diff.action as ChangeAction,
    address: `${provider.kind}/test`,
    desired,
    prior,
    live: live ?? null,
  };
  return { diff, live: await provider.apply(handle, request, ctx) };
}

/** Deletes one resource the way the engine does. */
export async function remove<Spec, Live>(provider: ResourceProvider<Spec, Live, HostHandle>, handle: HostHandle, prior: Spec) {
  const [live] = await provider.read(handle, [prior], ctx);
  return provider.apply(handle, { action: 'delete', address: `${provider.kind}/test`, desired: null, prior, live: live ?? null }, ctx);
}

/** The messages of a schema's refusal, one per line. */
export function schemaErrors(schema: { safeParse(input: unknown): { error?: { issues: { message: string }[] } | undefined } }, input: unknown): string {
  return schema.safeParse(input).error?.issues.map((i) => i.message).join('\n') ?? '';
}

/** Answers `exec` from a script instead of running anything; every other call goes to the machine. */
export class ScriptedTransport extends TransportDecorator {
  readonly execs: { argv: string[]; options: ExecOptions }[] = [];

  constructor(private readonly respond: (argv: readonly string[]) => Partial<ExecResult>) {
    super(new LocalTransport(), 'scripted');
  }

  override async exec(argv: readonly string[], options: ExecOptions): Promise<ExecResult> {
    this.execs.push({ argv: [...argv], options });
    return { exitCode: 0, signal: null, timedOut: false, stdout: '', stderr: '', ...this.respond(argv) };
  }
}

/** A Host with root `/` whose commands are answered by `respond`: for code paths that would change the machine itself (apt-get). */
export function scriptedHost(respond: (argv: readonly string[]) => Partial<ExecResult>): { handle: HostHandle; transport: ScriptedTransport } {
  const transport = new ScriptedTransport(respond);
  return {
    transport,
    handle: { address: 'Host/fake', hostName: 'fake', transport, root: '/', realRoot: '/', close: () => transport.close() },
  };
}
