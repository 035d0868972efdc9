/**
 * The suite every resource provider passes against its real backend (a temp
 * directory, a throwaway database, a local Prometheus...). A provider's
 * conformance test is one call:
 *
 *   runProviderConformance({ provider: fileProvider, connect, create, update, invalidSpecs, makeDrift, driftedField });
 *
 * It walks one resource through the life the engine gives it — bad input,
 * create, a no-op second plan, update, drift and healing, delete, delete again —
 * calling the provider exactly as the engine does (`read` in a batch, pure
 * `diff`, `apply` with an ApplyRequest) and checking the promises of the
 * provider contract (src/providers/provider.ts) along the way.
 *
 * The steps share one resource and run in order: when one fails, the ones after
 * it usually fail too; read the first failure.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApplyRequest, ChangeAction, ProviderContext, ResourceProvider, TargetHandle } from '../provider.js';

export interface ConformanceOptions<Spec, Live, H extends TargetHandle> {
  /** Title of the describe block (default: `<Kind> provider conformance`). */
  readonly name?: string;
  readonly provider: ResourceProvider<Spec, Live, H>;
  /** Opens the real backend, empty of the resource under test; `cleanup` closes the handle and removes what the test made. */
  connect(): Promise<{ handle: H; cleanup(): Promise<void> }>;
  /** A spec as a user writes it (it goes through the provider's schema first). */
  readonly create: Spec;
  /** Another spec for the same resource that differs from `create`. */
  readonly update: Spec;
  /** Specs the schema must refuse, each with a pattern its error message must match. */
  readonly invalidSpecs: readonly { readonly spec: unknown; readonly message: RegExp }[];
  /** Changes the live object behind the provider's back so it no longer matches `spec`. */
  makeDrift(handle: H, spec: Spec): Promise<void>;
  /** The field (`FieldChange.path`) the diff must name after `makeDrift`. */
  readonly driftedField: string;
  /** For a provider whose `read` describes a missing object by a value rather than null. */
  isAbsent?(live: Live | null): boolean;
  /** The address used in apply requests (default `<Kind>/conformance`). */
  readonly address?: string;
}

export function runProviderConformance<Spec, Live, H extends TargetHandle>(options: ConformanceOptions<Spec, Live, H>): void {
  const { provider } = options;
  const address = options.address ?? `${provider.kind}/conformance`;
  const isAbsent = options.isAbsent ?? ((live: Live | null) => live === null);
  const ctx: ProviderContext = { signal: new AbortController().signal };

  describe(options.name ?? `${provider.kind} provider conformance`, () => {
    let handle: H;
    let cleanup: (() => Promise<void>) | undefined;
    let create: Spec;
    let update: Spec;
    /** The last applied spec, as the engine's inventory would hold it. */
    let prior: Spec | null = null;

    const readOne = async (spec: Spec): Promise<Live | null> => {
      const lives = await provider.read(handle, [spec], ctx);
      expect(lives, 'read returns one live state per spec').toHaveLength(1);
      return lives[0] ?? null;
    };
    const apply = async (action: ChangeAction, desired: Spec | null, live: Live | null): Promise<Live | null> => {
      const request: ApplyRequest<Spec, Live> = { action, address, desired, prior, live };
      const result = await provider.apply(handle, request, ctx);
      // The engine keeps the last applied spec in its inventory, and still has it while a delete is retried.
      if (desired !== null) prior = desired;
      return result;
    };
    /** Plans as the engine does: read, then diff against the last applied spec. */
    const plan = async (desired: Spec) => {
      const live = await readOne(desired);
      const diff = provider.diff(desired, live, prior);
      expect(provider.diff(desired, live, prior), 'diff is pure: the same inputs give the same answer').toEqual(diff);
      return { live, diff };
    };
    const fieldsOf = (diff: { fields: readonly { path: string }[] }) => diff.fields.map((f) => f.path);

    beforeAll(async () => {
      const opened = await options.connect();
      handle = opened.handle;
      cleanup = opened.cleanup;
    });
    afterAll(async () => {
      await cleanup?.();
    });

    it('declares itself as a resource provider with a schema and a target kind', () => {
      expect(provider.role).toBe('resource');
      expect(provider.kind).toMatch(/^[A-Z][A-Za-z0-9]*$/);
      expect(provider.targetKind).toMatch(/^[A-Z][A-Za-z0-9]*$/);
      expect(provider.description.length).toBeGreaterThan(0);
    });

    it('schema accepts the create and update specs, and parsing is idempotent', () => {
      create = provider.schema.parse(options.create);
      update = provider.schema.parse(options.update);
      expect(provider.schema.parse(create)).toEqual(create);
      expect(provider.schema.parse(update)).toEqual(update);
      expect(update, 'the update spec must differ from the create spec').not.toEqual(create);
    });

    it.each(options.invalidSpecs.map((c) => [JSON.stringify(c.spec)?.slice(0, 80) ?? String(c.spec), c] as const))(
      'schema rejects %s',
      (_title, { spec, message }) => {
        const result = provider.schema.safeParse(spec);
        expect(result.success, 'the schema must refuse this spec').toBe(false);
        const messages = result.error?.issues.map((i) => i.message).join('\n') ?? '';
        expect(messages).toMatch(message);
      },
    );

    it('reads a resource that does not exist as absent, and plans to create it', async () => {
      const { live, diff } = await plan(create);
      expect(isAbsent(live), 'live state of a missing object').toBe(true);
      expect(diff.action).toBe('create');
    });

    it('reads a batch in order, one answer per spec', async () => {
      const lives = await provider.read(handle, [create, update, create], ctx);
      expect(lives).toHaveLength(3);
      expect(lives[0]).toEqual(lives[2]);
    });

    it('creates the resource, and apply returns what a read then sees', async () => {
      const result = await apply('create', create, null);
      expect(isAbsent(result), 'apply returns the live state after a create').toBe(false);
      expect(await readOne(create)).toEqual(result);
    });

    it('plans a no-op on the second run', async () => {
      const { diff } = await plan(create);
      expect(diff.action, `fields: ${JSON.stringify(diff.fields)}`).toBe('noop');
      expect(diff.fields).toEqual([]);
    });

    it('gives live state as plain, deterministic JSON', async () => {
      const first = await readOne(create);
      const second = await readOne(create);
      expect(second).toEqual(first);
      expect(JSON.parse(JSON.stringify(first))).toEqual(first);
    });

    it('plans an update with the changed fields, applies it, then plans a no-op', async () => {
      const { live, diff } = await plan(update);
      expect(['update', 'replace']).toContain(diff.action);
      expect(diff.fields.length, 'an update names the fields that change').toBeGreaterThan(0);
      const result = await apply(diff.action as ChangeAction, update, live);
      expect(await readOne(update)).toEqual(result);
      const again = await plan(update);
      expect(again.diff.action, `fields: ${JSON.stringify(again.diff.fields)}`).toBe('noop');
    });

    it('detects drift, names the drifted field, and heals it', async () => {
      await options.makeDrift(handle, update);
      const { live, diff } = await plan(update);
      expect(diff.action).not.toBe('noop');
      expect(fieldsOf(diff)).toContain(options.driftedField);
      await apply(diff.action as ChangeAction, update, live);
      const healed = await plan(update);
      expect(healed.diff.action, `fields: ${JSON.stringify(healed.diff.fields)}`).toBe('noop');
    });

    it('deletes the resource: a read then finds it absent', async () => {
      const live = await readOne(update);
      const result = await apply('delete', null, live);
      expect(isAbsent(result), 'apply returns an absent live state after a delete').toBe(true);
      expect(isAbsent(await readOne(update))).toBe(true);
    });

    it('deletes again harmlessly when the resource is already gone', async () => {
      const result = await apply('delete', null, null);
      expect(isAbsent(result)).toBe(true);
      prior = null;
      const { diff } = await plan(create);
      expect(diff.action).toBe('create');
    });
  });
}
