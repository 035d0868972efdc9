/**
 * Test support: a network namespace per test file, and a transport decorator
 * that runs every command inside it, so sysctl, nft and ip providers change the
 * namespace and never the machine running the tests.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { ExecOptions, ExecResult, HostTransport, InspectOptions, PathInfo } from '../../../transport/transport.js';

/** Passes every call to `inner`; decorators override what they change. */
export class TransportDecorator implements HostTransport {
  readonly description: string;

  constructor(
    protected readonly inner: HostTransport,
    description?: string,
  ) {
    this.description = description ?? inner.description;
  }

  exec(argv: readonly string[], options: ExecOptions): Promise<ExecResult> {
    return this.inner.exec(argv, options);
  }

  inspect(paths: readonly string[], options: InspectOptions): Promise<PathInfo[]> {
    return this.inner.inspect(paths, options);
  }

  realpath: HostTransport['realpath'] = (path) => this.inner.realpath(path);
  writeFileAtomic: HostTransport['writeFileAtomic'] = (path, data, options) => this.inner.writeFileAtomic(path, data, options);
  mkdir: HostTransport['mkdir'] = (path, options) => this.inner.mkdir(path, options);
  chmod: HostTransport['chmod'] = (path, mode) => this.inner.chmod(path, mode);
  lchown: HostTransport['lchown'] = (path, ownership) => this.inner.lchown(path, ownership);
  symlink: HostTransport['symlink'] = (target, path) => this.inner.symlink(target, path);
  rename: HostTransport['rename'] = (from, to) => this.inner.rename(from, to);
  remove: HostTransport['remove'] = (path, options) => this.inner.remove(path, options);
  resolveAccounts: HostTransport['resolveAccounts'] = (query) => this.inner.resolveAccounts(query);
  close: HostTransport['close'] = () => this.inner.close();
}

/** Runs `exec` argv through `ip netns exec <ns>`; files are read and written on the machine as usual. */
export class NetnsTransport extends TransportDecorator {
  constructor(
    inner: HostTransport,
    readonly namespace: string,
    description?: string,
  ) {
    super(inner, description ?? `${inner.description} (netns ${namespace})`);
  }

  override exec(argv: readonly string[], options: ExecOptions): Promise<ExecResult> {
    return this.inner.exec(['ip', 'netns', 'exec', this.namespace, ...argv], options);
  }
}

export interface Namespace {
  readonly name: string;
  /** Runs a command inside the namespace (test set-up and drift), throwing on failure. */
  run(argv: readonly string[]): string;
  /** Deletes the namespace; safe to call twice. */
  remove(): void;
}

const live = new Set<string>();
let exitHookInstalled = false;

/**
 * Creates a fresh namespace with `lo` up. It is deleted by `remove()` and, as
 * a last resort, when the test process exits.
 */
export function createNamespace(prefix: string): Namespace {
  const name = `capstan-${prefix}-${process.pid}-${randomBytes(3).toString('hex')}`;
  execFileSync('ip', ['netns', 'add', name], { stdio: 'pipe' });
  live.add(name);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const ns of live) {
        try {
          execFileSync('ip', ['netns', 'del', ns], { stdio: 'pipe' });
        } catch {
          // already gone
        }
      }
    });
  }
  const run = (argv: readonly string[]) =>
    execFileSync('ip', ['netns', 'exec', name, ...argv], { stdio: 'pipe', encoding: 'utf8' });
  run(['ip', 'link', 'set', 'lo', 'up']);
  return {
    name,
    run,
    remove() {
      if (!live.delete(name)) return;
      execFileSync('ip', ['netns', 'del', name], { stdio: 'pipe' });
    },
  };
}

/** True when a namespace of this name exists on the machine. */
export function namespaceExists(name: string): boolean {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .some((line) => line.split(' ')[0] === name);
}
