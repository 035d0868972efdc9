/** Test support for the host providers: a local Host rooted in a fresh temp directory. */
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ApplyRequest, ChangeAction, ProviderContext, ResourceProvider } from '../../provider.js';
import type { Resource } from '../../../spec/resource.js';
import { hostSchema, hostTarget, type HostHandle } from '../host.js';

export const ctx: ProviderContext = { signal: new AbortController().signal };

export interface Sandbox {
  /** The temp directory holding everything: `root/` and room for siblings outside the root. */
  readonly dir: string;
  /** The Host's root (not created until something is written). */
  readonly root: string;
  readonly handle: HostHandle;
  /** Real path of a spec path. */
  real(specPath: string): string;
  cleanup(): Promise<void>;
}

export async function openSandbox(options: { createRoot?: boolean } = {}): Promise<Sandbox> {
  const dir = await fs.realpath(await fs.mkdtemp(join(tmpdir(), 'capstan-host-')));
  const root = join(dir, 'root');
  if (options.createRoot) await fs.mkdir(root);
  const handle = await hostTarget.connect(
    testResource('Host', 'sandbox', hostSchema.parse({ transport: 'local', root })),
    ctx,
  );
  return {
    dir,
    root,
    handle,
    real: (specPath) => root + specPath,
    async cleanup() {
      await handle.close();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

/** A Resource as the spec loader would build it; positions are fake but distinct per node path. */
export function testResource<Spec>(
  kind: string,
  name: string,
  spec: Spec,
  options: { target?: string; file?: string } = {},
): Resource<Spec> {
  const file = options.file ?? `${name}.yaml`;
  return {
    address: `${kind}/${name}`,
    kind,
    name,
    target: options.target,
    dependsOn: [],
    spec,
    source: { file, line: 1, col: 1 },
    positionOf: (path) => ({ file, line: 1 + path.length, col: 1 + path.join('.').length }),
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

export async function remove<Spec, Live>(provider: ResourceProvider<Spec, Live, HostHandle>, handle: HostHandle, prior: Spec) {
  const [live] = await provider.read(handle, [prior], ctx);
  return provider.apply(handle, { action: 'delete', address: `${provider.kind}/test`, desired: null, prior, live: live ?? null }, ctx);
}
