import { z } from 'zod';
import { NAME_PATTERN, type Resource } from '../../spec/resource.js';
import { variablesSchema } from '../../spec/variables.js';
import { revealString, secretString } from '../../secrets/sensitive.js';
import os from 'node:os';
import path from 'node:path';
import { LocalTransport } from '../../transport/local.js';
import type { SshTransport } from '../../transport/ssh.js';
import type { HostTransport } from '../../transport/transport.js';
import { ProviderError, type ProviderContext, type TargetHandle, type TargetProvider, type TargetVariables } from '../provider.js';
import { rootPathSchema } from './paths.js';

/** An open Host: every Directory, File and Symlink on it goes through `transport`, below `root`. */
export interface HostHandle extends TargetHandle {
  readonly transport: HostTransport;
  /** The Host's `root` as written (normalised): spec paths map to `root + path`. */
  readonly root: string;
  /** `root` with its symbolic links resolved (the missing tail appended): what paths must stay inside. */
  readonly realRoot: string;
  readonly hostName: string;
  /** The port of the host's sshd that Capstan's SSH connection reaches (the Host's `port`); absent for a local Host. */
  readonly sshPort?: number | undefined;
}

// A hostname, an IPv4 address or a bare IPv6 address; never an ssh option (`-oProxyCommand=...`).
const ADDRESS_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.:-]*$/;
const USER_PATTERN = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

const address = z
  .string({ error: 'address must be a host name or an IP address' })
  .regex(ADDRESS_PATTERN, { error: 'address must be a host name or an IP address (letters, digits, ".", ":", "-"; not starting with "-")' });
const port = z
  .number({ error: 'port must be a number' })
  .int({ error: 'port must be a whole number' })
  .min(1, { error: 'port must be from 1 to 65535' })
  .max(65535, { error: 'port must be from 1 to 65535' });
const user = z.string({ error: 'user must be a string' }).regex(USER_PATTERN, { error: 'user must be a login name such as "root" or "deploy"' });
const repoFile = (what: string) =>
  z
    .string({ error: `${what} must be a path` })
    .min(1, { error: `${what} must not be empty` })
    .refine((p) => !p.includes('\0'), { error: `${what} must not contain a NUL character` });

const common = {
  root: rootPathSchema.default('/').meta({
    description: 'Every managed path of this host lives under this directory (no `..`, no escape through a symlink): a sandbox, or / for the whole machine.',
    examples: ['/srv/sandbox/web-1'],
  }),
  groups: z
    .array(z.string().regex(NAME_PATTERN, { error: 'group names are lowercase: [a-z0-9]([a-z0-9._-]*[a-z0-9])?' }))
    .default([])
    .meta({ description: 'The HostGroups this host belongs to: `target: group:NAME` reaches it, and the groups\' vars apply (later groups win).', examples: [['web', 'eu-west']] }),
  /** Template variables; they win over the vars of the host's groups (see docs/fleet.md). */
  vars: variablesSchema.default({}).meta({ description: "Template variables of this host; they win over its groups' vars (docs/fleet.md).", examples: [{ listen_port: 8080 }] }),
};

const localHost = z.strictObject({ transport: z.literal('local').meta({ description: 'How Capstan reaches the host: `local` (this machine) or `ssh`.', examples: ['local'] }), ...common });

const sshHost = z.strictObject({
  transport: z.literal('ssh').meta({ description: 'How Capstan reaches the host: `local` (this machine) or `ssh`.', examples: ['ssh'] }),
  address: address.meta({ description: 'Host name or IP address of the SSH server.', examples: ['10.20.0.2'] }),
  port: port.default(22).meta({ description: 'SSH port.', examples: [2222] }),
  user: user.default('root').meta({ description: 'Login user; commands run as this user.', examples: ['deploy'] }),
  /** A private key in the repository (relative to it) or on the controller; the SSH agent when absent. */
  identityFile: repoFile('identityFile')
    .optional()
    .meta({ description: 'A private key file, relative to the repository (or absolute on the controller); the SSH agent when neither this nor privateKey is given.', examples: ['keys/deploy'] }),
  /** The private key itself, usually `{ secret: keys/deploy.age }`; instead of identityFile. */
  privateKey: secretString('privateKey must be a string or { secret: PATH }')
    .optional()
    .meta({ description: 'The private key itself, usually `{ secret: keys/deploy.age }`; instead of identityFile.', examples: [{ secret: 'keys/deploy.age' }] }),
  /** The passphrase of an encrypted private key (identityFile or privateKey), usually `{ secret: PATH }`. */
  passphrase: secretString('passphrase must be a string or { secret: PATH }')
    .optional()
    .meta({ description: 'The passphrase of an encrypted private key (identityFile or privateKey).', examples: [{ secret: 'keys/deploy-passphrase.age' }] }),
  /** Strict: an unknown or changed host key refuses the host. */
  knownHostsFile: repoFile('knownHostsFile')
    .optional()
    .meta({ description: 'known_hosts file, relative to the repository; strict: an unknown or changed host key refuses the host.', examples: ['known_hosts'] }),
  jump: z
    .strictObject({
      address: address.meta({ description: 'Host name or IP address of the jump host.', examples: ['bastion.example.com'] }),
      port: port.default(22).meta({ description: 'SSH port of the jump host.', examples: [22] }),
      user: user.default('root').meta({ description: 'Login user on the jump host.', examples: ['jump'] }),
    })
    .optional()
    .meta({ description: 'A bastion to reach the host through (like ssh -J), with the same key and known_hosts.' }),
  ...common,
});

// No default transport: a Host that forgot `transport: ssh` must not turn into the controller's own machine.
const sshHostChecked = sshHost.superRefine((spec, ctx) => {
  if (spec.identityFile !== undefined && spec.privateKey !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['privateKey'], message: 'a Host takes identityFile or privateKey, not both' });
  }
});

export const hostSchema = z
  .discriminatedUnion('transport', [localHost, sshHostChecked], {
    error: (issue) => (issue.code === 'invalid_union' ? 'transport must be "local" or "ssh"' : undefined),
  })
  .meta({ examples: [{ transport: 'ssh', address: '10.20.0.2', user: 'deploy', identityFile: 'keys/deploy', knownHostsFile: 'known_hosts', groups: ['web'], vars: { listen_port: 8080 } }] });

export type HostSpec = z.infer<typeof hostSchema>;
export type LocalHostSpec = z.infer<typeof localHost>;
export type SshHostSpec = z.infer<typeof sshHost>;

class OpenHost implements HostHandle {
  constructor(
    readonly address: string,
    readonly hostName: string,
    readonly transport: HostTransport,
    readonly root: string,
    readonly realRoot: string,
    readonly sshPort: number | undefined,
  ) {}

  close(): Promise<void> {
    return this.transport.close();
  }
}

/**
 * Opens a Host. Creates nothing: a root that does not exist yet reads as empty,
 * and the first write creates it.
 */
async function connect(resource: Resource<HostSpec>, ctx: ProviderContext): Promise<HostHandle> {
  const spec = resource.spec;
  let transport: HostTransport;
  if (spec.transport === 'ssh') {
    const ssh: SshTransport = new (await loadSsh()).SshTransport({
      label: resource.address,
      host: spec.address,
      port: spec.port,
      user: spec.user,
      identityFile: spec.identityFile === undefined ? undefined : controllerPath(resource.address, 'identityFile', spec.identityFile, ctx),
      // Secrets are revealed here only, on their way to the SSH client.
      privateKey: spec.privateKey === undefined ? undefined : Buffer.from(revealString(spec.privateKey), 'utf8'),
      passphrase: spec.passphrase === undefined ? undefined : revealString(spec.passphrase),
      knownHostsFile: spec.knownHostsFile === undefined ? undefined : controllerPath(resource.address, 'knownHostsFile', spec.knownHostsFile, ctx),
      jump: spec.jump && { host: spec.jump.address, port: spec.jump.port, user: spec.jump.user },
    });
    try {
      await ssh.connect(ctx.signal);
    } catch (err) {
      await ssh.close();
      // The transport's message names the host, its address and what failed (refused, host key, authentication).
      throw new ProviderError((err as Error).message, { cause: err });
    }
    transport = ssh;
  } else {
    transport = new LocalTransport();
  }
  let realRoot: string;
  try {
    realRoot = await transport.realpath(spec.root);
  } catch (err) {
    await transport.close();
    throw new ProviderError(`cannot open ${resource.address}: root ${spec.root}: ${(err as Error).message}`, { cause: err });
  }
  return new OpenHost(resource.address, resource.name, transport, spec.root, realRoot, spec.transport === 'ssh' ? spec.port : undefined);
}

// Loaded on first use: a run with local Hosts only does not pay for ssh2 at start-up.
let sshModule: Promise<typeof import('../../transport/ssh.js')> | undefined;
const loadSsh = () => (sshModule ??= import('../../transport/ssh.js'));

/**
 * A key or known_hosts file named by a Host: absolute, `~/...` in the home
 * directory of the user running Capstan, or relative to the repository.
 */
function controllerPath(address: string, field: string, value: string, ctx: ProviderContext): string {
  if (path.isAbsolute(value)) return value;
  if (value === '~' || value.startsWith('~/')) return path.join(os.homedir(), value.slice(1));
  if (ctx.repoDir === undefined) {
    throw new ProviderError(
      `cannot connect to ${address}: ${field} ${value} is relative to the repository, but this run has no repository directory; give an absolute path`,
    );
  }
  return path.resolve(ctx.repoDir, value);
}

/** The address templates see as `host.address`: the SSH address, or the loopback address for a local host. */
export function hostAddress(spec: HostSpec): string {
  return spec.transport === 'ssh' ? spec.address : '127.0.0.1';
}

/** `host.name`, `host.address`, `host.groups` and the Host's own vars. */
function hostVariables(resource: Resource<HostSpec>): TargetVariables {
  const spec = resource.spec;
  return {
    builtins: { host: Object.freeze({ name: resource.name, address: hostAddress(spec), groups: Object.freeze([...spec.groups]) }) },
    vars: spec.vars,
  };
}

export const hostTarget: TargetProvider<HostSpec, HostHandle> = {
  role: 'target',
  kind: 'Host',
  description: 'A machine reached locally or over SSH; Directory, File and Symlink resources live on it, below its root.',
  schema: hostSchema,
  groupsOf: (spec) => spec.groups,
  // Two local Hosts are this machine; two ssh Hosts with one address and port are one machine (a jump host does not change that).
  machineOf: (spec) => (spec.transport === 'ssh' ? `ssh:${spec.address.toLowerCase()}:${spec.port}` : 'local'),
  variables: hostVariables,
  connect: (resource, ctx) => connect(resource, ctx),
};
