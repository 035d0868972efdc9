/** What every command shares: where the spec comes from, where state lives, who is running. */
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { formatDiagnostic, hasErrors, sortDiagnostics, type Diagnostic } from '../diag/diagnostic.js';
import type { PlanSource } from '../plan/plan.js';
import type { ProviderRegistry } from '../providers/registry.js';
import type { Keyring } from '../secrets/keyring.js';
import type { LoadedStack } from '../spec/load.js';
import { defaultStateUrl, openStore, type OpenStoreOptions } from '../state/open.js';
import type { Actor, Store } from '../state/store.js';

// The spec layers load on first use, not when a command module is imported, and
// the state store's drivers load with the store they serve (see state/open.ts):
// `capstan --version` and `capstan validate` pay for neither, and providers load
// per kind (see ProviderRegistry).

export interface SourceOptions {
  repo?: string;
  ref?: string;
  path?: string;
  state?: string;
  stack: string;
  identity?: string;
}

export function addSourceOptions(cmd: Command): Command {
  return cmd
    .option('--repo <url>', 'a git repository (path or URL) to read the spec from, instead of DIR')
    .option('--ref <ref>', 'branch, tag or commit of --repo', 'HEAD')
    .option('--path <dir>', 'directory inside --repo that holds the spec', '.')
    .option('--state <url>', 'state store: sqlite:PATH (default DIR/.capstan/state.db)')
    .option('--stack <name>', 'stack name in the state store', 'default')
    .option('--identity <file>', 'age identity file that decrypts { secret: PATH } (default: $CAPSTAN_AGE_IDENTITY_FILE, then $CAPSTAN_AGE_IDENTITY)');
}

/** The age identities of this run: `--identity`, else the environment; a bad identity is a UsageError. */
export async function loadKeyring(options: { identity?: string | undefined }): Promise<Keyring> {
  const [{ Keyring }, { IdentityError }] = await Promise.all([import('../secrets/keyring.js'), import('../secrets/identity.js')]);
  try {
    return await Keyring.load({ file: options.identity });
  } catch (err) {
    if (err instanceof IdentityError) throw new UsageError(err.message);
    throw err;
  }
}

export function addStateOptions(cmd: Command): Command {
  return cmd
    .option('--state <url>', 'state store: sqlite:PATH (default DIR/.capstan/state.db)')
    .option('--stack <name>', 'stack name in the state store', 'default');
}

export interface LoadedSpec {
  readonly source: PlanSource;
  readonly stack: LoadedStack;
  readonly registry: ProviderRegistry;
  /** Decrypted the spec's secrets; give its digester to the TargetPool. */
  readonly keyring: Keyring;
}

/** `workTree: false`: a local directory's git commit is not read (validate needs none). */
/** `unreadSecrets`: without an age identity, leave secrets encrypted instead of failing (`plan --offline`). */
export async function loadSpec(dir: string | undefined, options: SourceOptions, how: { workTree?: boolean; unreadSecrets?: boolean } = {}): Promise<LoadedSpec> {
  const [{ resolveSource }, { loadStack }, { defaultRegistry }] = await Promise.all([
    import('../source/source.js'),
    import('../spec/load.js'),
    import('../providers/index.js'),
  ]);
  const info = options.repo
    ? await resolveSource({ repo: options.repo, ref: options.ref ?? 'HEAD', path: options.path ?? '.' })
    : await resolveSource({ dir: path.resolve(dir ?? '.'), workTree: how.workTree });
  const registry = defaultRegistry();
  let keyring = await loadKeyring(options);
  if (how.unreadSecrets && keyring.identities === undefined) keyring = (await import('../secrets/keyring.js')).Keyring.unread();
  const stack = await loadStack(info.dir, registry, { keyring });
  return { source: info, stack, registry, keyring };
}

export function stateUrl(dir: string | undefined, options: { state?: string; repo?: string }): string {
  if (options.state) return options.state;
  if (options.repo) return `sqlite:${path.resolve('.capstan/state.db')}`;
  return defaultStateUrl(path.resolve(dir ?? '.'));
}

/**
 * Commands that only read (plan, drift, history) create no store: `readOnly`
 * (history, drift) works on a read-only database and refuses a missing one with
 * a NoStateStoreError; plan passes `ifMissing: 'empty'` (see OpenStoreOptions).
 */
export async function openStateStore(dir: string | undefined, options: { state?: string; repo?: string }, mode: OpenStoreOptions = {}): Promise<Store> {
  return openStore(stateUrl(dir, options), mode);
}

export function currentActor(): Actor {
  let user = process.env.CAPSTAN_ACTOR ?? '';
  if (!user) {
    try {
      user = os.userInfo().username;
    } catch {
      user = String(process.getuid?.() ?? 'unknown');
    }
  }
  return { user, host: os.hostname(), pid: process.pid };
}

/** Prints diagnostics to stderr; returns true when any is an error. */
export function reportDiagnostics(diagnostics: readonly Diagnostic[]): boolean {
  for (const d of sortDiagnostics(diagnostics)) process.stderr.write(formatDiagnostic(d) + '\n');
  return hasErrors(diagnostics);
}

export function useColor(stream: NodeJS.WriteStream): boolean {
  return stream.isTTY === true && !process.env.NO_COLOR;
}

/** An error the user caused and can fix: printed without a stack trace, exit 1. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export function parsePositiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`expected a positive whole number, got "${value}"`);
  return n;
}
