/**
 * The provider contract: the public extension point of Capstan.
 *
 * A provider owns one resource kind (`File`, `Package`, `AlertRules`, ...). The
 * engine never branches on who a provider is; it only calls the methods below:
 *
 *   resolve   (optional) turn the user's spec into a self-contained one, e.g. read
 *             a `source:` file from the repository into `content`. Runs once per
 *             document at load time.
 *   templates (optional) the Liquid templates one instance needs rendered, with
 *             their variables. The engine renders them off the main thread (the
 *             render pool, src/spec/render-pool.ts), within per-render and
 *             stack-wide budgets, and hands the outputs to `instantiate`.
 *   instantiate (optional) turn the resolved spec into the spec of one instance
 *             (`Kind/name@host`) with that target's variables and its rendered
 *             templates, e.g. put the output into `content`. Runs at load time for
 *             every instance; its result is what the plan shows and the spec hash
 *             covers.
 *   validate  (optional) semantic checks the schema cannot express.
 *   read      batch-read the live state of many resources on one target. One call
 *             per target and provider per plan: a provider that talks to a remote
 *             host should make one round trip for the whole batch. When only some
 *             resources of the batch cannot be read (one path is refused), reject
 *             with `PartialReadError`: the others keep their live state and each
 *             failed one gets its own message.
 *   claims    (optional) keys of the objects a resource manages on its machine
 *             (a file's real path): with the target's `machineOf`, the engine
 *             refuses two resources that manage the same object through two
 *             aliases (two Hosts for one machine and root), from the spec at
 *             validate time, and from the live machine at plan time (`read`
 *             reports what it resolved through `ReadContext.located`).
 *   provides, references (optional) the names by which resources on one target
 *             refer to each other (`user:alice`, `path:/srv/app/current`): the
 *             graph orders a resource after those on its target that provide
 *             what it references, and the planner reports a reference that the
 *             live target lacks (`ReadContext.unresolved`) as an error, or as a
 *             warning when a resource of the stack provides it.
 *   diff      pure: compare desired with live (and the last applied spec) and say
 *             which action is needed and which fields change, or that apply
 *             would refuse the change (`refusal`).
 *   apply     carry out one planned action and return the live state after it.
 *   refresh   (optional) react to a change of another resource that names this
 *             one in `notify:` (restart a service, run a command): Ansible's
 *             handlers, Puppet's refresh. Only resources of kinds with `refresh`
 *             may be notified.
 *
 * Errors: `read` and `apply` throw on failure (a transport error, a refused
 * write); the engine records the failure against the resource address, skips its
 * dependents and goes on with the rest. Throw `ProviderError` for an expected
 * failure whose message is already user-facing; anything else is reported with
 * its message and the provider's kind. A provider must never leave a half-written
 * object behind: write to a temporary name and rename, or use the backend's
 * transaction.
 *
 * Live values must be plain JSON (the plan stores them and hashes them to detect
 * that the live state moved between plan and apply), deterministic for the same
 * live object, and must not hold secrets in clear, nor their unkeyed hashes: a
 * live secret is kept as its digest (`ctx.digester`).
 *
 * Secrets: a field whose schema is `secretString()` takes a literal or a
 * `Sensitive` (a `{ secret: PATH }` decrypted by the loader). Reveal it
 * (`revealString`) only to hand it to the backend in `apply` or `connect`;
 * compare it by `digest`; put the Sensitive itself (never its value) in a
 * `FieldChange` with `sensitive: true`. A spec read back from the state store or a
 * saved plan holds `SensitiveDigest` objects in its place: revealing one throws.
 */
import type { z } from 'zod';
import type { Diagnostic } from '../diag/diagnostic.js';
import type { Sensitive } from '../secrets/sensitive.js';
import type { SecretDigester } from '../secrets/digest.js';
import type { Address, Resource } from '../spec/resource.js';

export interface ProviderContext {
  /** Aborted when the user interrupts: finish or stop the current operation promptly. */
  readonly signal: AbortSignal;
  /**
   * Absolute path of the repository (spec) directory of this run, when there is
   * one: targets resolve files the spec names relative to it (a Host's
   * `identityFile`, `knownHostsFile`).
   */
  readonly repoDir?: string | undefined;
  /**
   * Digests secret values with this run's key (see src/secrets/digest.ts): a
   * provider that reads a live secret (a sensitive file) keeps only its digest.
   * Absent in runs that handle no secrets.
   */
  readonly digester?: SecretDigester | undefined;
  /**
   * (given by the apply engine to `apply`) Reports a line about what this change
   * did that the user must be able to find later, e.g. where a backup of a
   * replaced file was kept. Once the change succeeded, the engine shows each
   * line in the apply output and records it in the run's events (type
   * `resource.note`, with the resource's address), which `capstan history` and
   * the API show. Never a secret.
   */
  readonly note?: ((message: string) => void) | undefined;
}

/** What `read` is given: the run's context, and where to report what the read found out about each resource's identity. */
export interface ReadContext extends ProviderContext {
  /**
   * (given by the planner; absent in other callers) Reports the claims (see
   * `ResourceProvider.claims`) of the resource at `index` of the batch as the live
   * machine resolves them, e.g. a path whose parent directory is a symbolic link
   * inside the root, resolved to the directory it names. Call it at most once per
   * index, during `read`.
   */
  readonly located?: ((index: number, claims: readonly Claim[]) => void) | undefined;
  /**
   * (given by the planner; absent in other callers) Reports the references (see
   * `ResourceProvider.references`) of the resource at `index` that name nothing
   * on the live target, e.g. an owner the host has no user for. A provider that
   * checks references only when this is given costs other callers nothing. Call
   * it at most once per index, during `read`.
   */
  readonly unresolved?: ((index: number, references: readonly Reference[]) => void) | undefined;
  /**
   * (given by the planner; absent in other callers) Reports, for a resource at
   * `index` that `read` finds absent (null), what its create will give that the
   * spec alone does not say, e.g. the version `state: latest` installs. The plan
   * shows these fields in place of the create diff's fields of the same path.
   * Call it at most once per index, during `read`.
   */
  readonly creates?: ((index: number, fields: readonly FieldChange[]) => void) | undefined;
}

/** One name by which a resource's spec refers to an object on its target (see `ResourceProvider.references`). */
export interface Reference {
  /** What another resource on the same target `provides`: `user:alice`, `group:www-data`, `path:/srv/app/current`. */
  readonly key: string;
  /** The spec field that makes the reference, for the diagnostic's position, e.g. `['owner']`. */
  readonly field: readonly (string | number)[];
  /** The object as messages name it: `user "alice"`. */
  readonly label: string;
}

/** One object a resource manages on its machine (see `ResourceProvider.claims`). */
export interface Claim {
  /** Unique per object on one machine, readable in messages: `path:/srv/web-1/etc/motd`. */
  readonly key: string;
  /** The spec field that names the object, for the diagnostic's position, e.g. `['path']`. */
  readonly field?: readonly (string | number)[] | undefined;
}

/** What `resolve` may read: files of the user's repository, confined to it. */
export interface ResolveContext {
  /** Absolute path of the repository directory the spec was loaded from. */
  readonly repoDir: string;
  /** Reads a file by a path relative to the document that names it; refuses paths outside the repository. */
  readFile(relativePath: string, fromFile: string): Promise<Buffer>;
  /**
   * The regular files below a directory of the repository (relative to the
   * document that names it), as sorted POSIX paths relative to that directory;
   * refuses a directory outside the repository and a symbolic link inside it.
   * Absent in contexts that cannot list.
   */
  readonly listFiles?: ((relativeDir: string, fromFile: string) => Promise<string[]>) | undefined;
  /** Marks a value the spec declares secret (e.g. `sensitive: true` content) as a `Sensitive` with this run's digest. */
  readonly seal?: ((value: string) => Sensitive<string>) | undefined;
}

/**
 * What `instantiate` knows about one instance: its address, its target, and the
 * target's variables (groups' vars, then the target's own, then its builtins such
 * as `host.name`; see src/spec/variables.ts).
 */
export interface InstanceFacts {
  /** `Kind/name`, or `Kind/name@host` for an instance expanded over a group. */
  readonly address: Address;
  /** The target it lives on; undefined for a declaration (a kind with `targetOptional`, written without target). */
  readonly target: { readonly address: Address; readonly name: string } | undefined;
  /** The target's variables; empty for a declaration. Never mutate. */
  readonly vars: Readonly<Record<string, unknown>>;
}

/**
 * A template's text and its name in errors (a repository path). Return the same
 * object for every instance of one document: the render workers parse it once.
 */
export interface TemplateSource {
  readonly name: string;
  readonly text: string;
}

/** One template to render for one instance (see `ResourceProvider.templates`). */
export interface TemplateRequest {
  readonly source: TemplateSource;
  /** The variables it renders with (usually the instance's vars and the resource's own). */
  readonly vars: Readonly<Record<string, unknown>>;
  /** The spec field the template comes from, e.g. `['template']`: a failure is reported there. */
  readonly specPath: readonly (string | number)[];
}

/** What a target defines for templates. */
export interface TargetVariables {
  /** Facts about the target itself, e.g. `{ host: { name, address, groups } }`. Their names are reserved. */
  readonly builtins: Readonly<Record<string, unknown>>;
  /** The target's own `vars:`; they win over its groups' vars. */
  readonly vars: Readonly<Record<string, unknown>>;
}

/** A live connection to a target (a host, a database server, an HTTP endpoint), shared by all its resources in one run. */
export interface TargetHandle {
  readonly address: Address;
  close(): Promise<void>;
}

/** Providers for kinds that other resources live on (`Host`, later `PostgresServer`, `Prometheus`...). */
export interface TargetProvider<Spec = unknown, Handle extends TargetHandle = TargetHandle> {
  readonly role: 'target';
  /**
   * Top-level spec fields that hold secrets even when written as a plain string
   * (a password typed inline): the loader seals them like `{ secret: PATH }`, so
   * they print as `(sensitive)` and are stored as a keyed digest only.
   */
  readonly sensitiveFields?: readonly string[];
  readonly kind: string;
  readonly description: string;
  readonly schema: z.ZodType<Spec>;
  /** Group names this target belongs to, for `target: group:NAME`, in the order written (later groups' vars win). */
  groupsOf(spec: Spec): readonly string[];
  /** (optional) Builtins and own vars for templates of resources on this target. Pure. */
  variables?(resource: Resource<Spec>): TargetVariables;
  validate?(resource: Resource<Spec>): Diagnostic[];
  /**
   * (optional) Which machine or backend this target reaches, as a key: two
   * targets with the same key reach the same one (two local Hosts; two ssh Hosts
   * with the same address and port), so what resources on them claim
   * (`ResourceProvider.claims`) is compared across them. Pure. Undefined: the
   * target is never compared with another.
   */
  machineOf?(spec: Spec): string | undefined;
  /** Opens the connection. Throw with a message naming the target when it cannot be reached. */
  connect(resource: Resource<Spec>, ctx: ProviderContext): Promise<Handle>;
}

export type ChangeAction = 'create' | 'update' | 'replace' | 'delete';
export type DiffAction = Exclude<ChangeAction, 'delete'> | 'noop';

/** One field that differs between live and desired. `format: 'text'` asks renderers for a line diff. */
export interface FieldChange {
  readonly path: string;
  readonly before: unknown;
  readonly after: unknown;
  readonly format?: 'text' | undefined;
  /** Values are secrets: renderers show `(sensitive)` instead. */
  readonly sensitive?: boolean | undefined;
}

export interface ResourceDiff {
  readonly action: DiffAction;
  readonly fields: readonly FieldChange[];
  /** Why, in a few words, when the action is not obvious from the fields (e.g. "path changed: replace"). */
  readonly reason?: string | undefined;
  /**
   * Apply would refuse this change whatever happens first (a FIFO where the file
   * must go): the planner reports it as an error at `field` of the spec (the
   * resource when absent), so the plan cannot be applied.
   */
  readonly refusal?: { readonly message: string; readonly field?: readonly (string | number)[] | undefined } | undefined;
}

export interface ApplyRequest<Spec, Live> {
  readonly action: ChangeAction;
  readonly address: Address;
  /** The spec to converge to; null for delete. */
  readonly desired: Spec | null;
  /** The last applied spec (from the inventory); null when Capstan never applied this resource. */
  readonly prior: Spec | null;
  /** The live state read at plan time. */
  readonly live: Live | null;
}

export interface ResourceProvider<Spec = unknown, Live = unknown, Handle extends TargetHandle = TargetHandle> {
  readonly role: 'resource';
  /**
   * Top-level spec fields that hold secrets even when written as a plain string
   * (a password typed inline): the loader seals them like `{ secret: PATH }`, so
   * they print as `(sensitive)` and are stored as a keyed digest only.
   */
  readonly sensitiveFields?: readonly string[];
  readonly kind: string;
  readonly description: string;
  readonly schema: z.ZodType<Spec>;
  /** The kind of target this resource lives on, e.g. `Host`. */
  readonly targetKind: string;
  /**
   * Without a `target:` the resource is a declaration: validated, rendered and
   * tested (e.g. an SLO whose rules `capstan render` writes out), but planned
   * and applied only where a target is given.
   */
  readonly targetOptional?: boolean;
  /**
   * Deleting (or replacing) this kind loses data a re-create cannot bring back,
   * e.g. a database: the planner then refuses any such change unless the plan is
   * made with the mass-delete flag (`--allow-mass-delete`), whatever the count.
   */
  readonly destructiveDelete?: boolean;
  /**
   * (optional) True when deleting a resource with this last applied spec would
   * change nothing live (an Exec without `undo`): the plan then shows it as
   * forgotten, not deleted, and the apply only drops it from the inventory.
   */
  forgetsOnDelete?(prior: Spec): boolean;
  /** A short human label for plans and logs, e.g. the file's path; secrets never. */
  describe?(spec: Spec): string;
  resolve?(spec: Spec, from: { file: string }, ctx: ResolveContext): Promise<Spec>;
  /**
   * (optional) The templates `instantiate` needs for one instance. Pure and cheap:
   * it must not render anything itself. The engine renders each request in a
   * worker process with the request's vars, bounded per render (time, output size,
   * memory) and for the whole stack (total render time, total rendered bytes).
   * A template that fails (syntax, undefined variable, a bound) is a diagnostic at
   * `spec.<specPath>` with the instance address (a syntax error once, for the
   * document), `instantiate` is not called, and the instance is left out.
   */
  templates?(spec: Spec, instance: InstanceFacts): readonly TemplateRequest[];
  /**
   * The spec of one instance, from the resolved spec, the instance's facts and
   * the outputs of its `templates` (in the same order; empty without them). Pure
   * and deterministic (the same inputs give the same spec on every run), and
   * synchronous: it runs for every instance of a large fleet, on the main thread,
   * so anything CPU-heavy belongs in `templates`. Return `spec` itself when there
   * is nothing to do. Throw `SpecFieldError` naming the spec field at fault (its
   * message becomes a diagnostic at that field, with the instance address); the
   * instance is then left out and the stack has an error.
   *
   * `readSecret[i]` is true when `rendered[i]` read a secret variable (a
   * `{ secret: PATH }` in vars): that output is a secret, and must be sealed
   * (`ResolveContext.seal`, kept from `resolve`) before it goes into the spec.
   */
  instantiate?(spec: Spec, instance: InstanceFacts, rendered: readonly string[], readSecret: readonly boolean[]): Spec;
  /**
   * (optional) Keys of the objects this resource manages on its target's machine
   * (the target provider's `machineOf`), e.g. `path:/srv/web-1/etc/motd` for a
   * file's real path. Two resources on the same machine with a common key manage
   * one object twice and the stack is invalid. Pure; from the spec alone (what
   * the live machine shows on top goes through `ReadContext.located`).
   */
  claims?(spec: Spec, target: Resource): readonly Claim[];
  /** Checks one resource against the others on the same target (conflicting paths, ...). */
  validate?(resource: Resource<Spec>, sameTarget: readonly Resource[]): Diagnostic[];
  /** Edges the user need not write, e.g. a File under a managed Directory on the same host. */
  implicitDependencies?(resource: Resource<Spec>, sameTarget: readonly Resource[]): Address[];
  /**
   * (optional) The keys by which other resources on the same target refer to the
   * object this one manages, e.g. `user:alice` for a User, `path:/etc/motd` for a
   * File (see `references`). Pure; from the spec alone.
   */
  provides?(spec: Spec): readonly string[];
  /**
   * (optional) The objects on its target this resource's spec names and needs
   * first: a File's owner (`user:alice`), a Symlink's target path. The graph
   * orders this resource after every resource on the same target that
   * `provides` one of the keys; nothing is added for a key no resource of the
   * stack provides. Pure; from the spec alone.
   */
  references?(spec: Spec): readonly Reference[];
  read(target: Handle, specs: readonly Spec[], ctx: ReadContext): Promise<(Live | null)[]>;
  diff(desired: Spec, live: Live | null, prior: Spec | null): ResourceDiff;
  /**
   * (optional) Why a planned delete must not happen, or undefined. The plan gets
   * an error at the resource's address and cannot be applied. Pure. `prior` is
   * its last applied spec, `live` what `read` found for it, and
   * `deletedAlongside` the last applied specs of the other resources the same
   * plan deletes on the same target (a refusal their deletion lifts, e.g. a
   * group whose only users go too).
   */
  refuseDelete?(prior: Spec, live: Live | null, deletedAlongside: readonly { readonly kind: string; readonly spec: unknown }[]): string | undefined;
  apply(target: Handle, request: ApplyRequest<Spec, Live>, ctx: ProviderContext): Promise<Live | null>;
  /**
   * Runs once per apply after one or more resources that `notify:` this one
   * changed successfully, and returns the live state after it. Not called when
   * this resource's own change already ran in the same apply.
   */
  refresh?(target: Handle, request: RefreshRequest<Spec, Live>, ctx: ProviderContext): Promise<Live | null>;
}

/** What the engine passes when a notified resource must react. */
export interface RefreshRequest<Spec, Live> {
  readonly address: Address;
  readonly desired: Spec;
  /** The live state read at plan time. */
  readonly live: Live | null;
  /** The addresses whose successful change triggered this refresh, for messages. */
  readonly notifiedBy: readonly Address[];
}

export type AnyResourceProvider = ResourceProvider<any, any, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
export type AnyTargetProvider = TargetProvider<any, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
export type AnyProvider = AnyResourceProvider | AnyTargetProvider;

/** An expected failure with a user-facing message (e.g. "directory not empty"). */
export class ProviderError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ProviderError';
  }
}

/**
 * `read` rejects with this when some resources of the batch could not be read
 * and the others could: `results` has one entry per spec, in order, with the
 * live state or the error of that one resource. Its message is the first
 * failure's, for callers that treat it as a failure of the whole batch.
 */
export class PartialReadError<Live = unknown> extends ProviderError {
  constructor(readonly results: readonly ({ readonly live: Live | null } | { readonly error: Error })[]) {
    const failures = results.flatMap((r) => ('error' in r ? [r.error] : []));
    const more = failures.length > 1 ? ` (and ${failures.length - 1} more)` : '';
    super(`${failures[0]?.message ?? 'read failed'}${more}`, { cause: failures[0] });
    this.name = 'PartialReadError';
  }
}

/** A `resolve` or `instantiate` failure caused by one field of the spec: the diagnostic points at that field. */
export class SpecFieldError extends ProviderError {
  constructor(
    message: string,
    /** Path of the field inside `spec`, e.g. `['template']`. */
    readonly specPath: readonly (string | number)[],
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'SpecFieldError';
  }
}
