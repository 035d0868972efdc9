/**
 * An in-memory target and resource kind for unit tests of the engine (plan,
 * apply, drift): no I/O, failures on demand. Providers themselves are tested
 * against their real backends.
 */
import { z } from 'zod';
import { ProviderError, type ResourceProvider, type TargetHandle, type TargetProvider } from '../../providers/provider.js';
import { ProviderRegistry } from '../../providers/registry.js';
import type { Resource } from '../../spec/resource.js';

export const itemSpec = z.strictObject({
  key: z.string(),
  value: z.string(),
  /** Another key that must be in the bucket before this one is written (a reference: see `ResourceProvider.references`). */
  needs: z.string().optional(),
});
export type ItemSpec = z.infer<typeof itemSpec>;

export interface MemoryWorld {
  readonly data: Map<string, Map<string, string>>;
  /** Keys whose apply throws. */
  readonly failing: Set<string>;
  /** Keys whose apply leaves this note (`ProviderContext.note`). */
  readonly notes: Map<string, string>;
  /** Absent keys whose read reports what their create will give (`ReadContext.creates`), e.g. a version apt resolves. */
  readonly creates: Map<string, string>;
  readonly applied: string[];
  readCalls: number;
  /** Every key read, one entry per resource per read. */
  readonly readKeys: string[];
}

export interface MemoryHandle extends TargetHandle {
  readonly bucket: Map<string, string>;
}

export function memoryWorld(): MemoryWorld {
  return { data: new Map(), failing: new Set(), notes: new Map(), creates: new Map(), applied: [], readCalls: 0, readKeys: [] };
}

export function memoryRegistry(world: MemoryWorld): ProviderRegistry {
  const target: TargetProvider<{ groups: string[] }, MemoryHandle> = {
    role: 'target',
    kind: 'Bucket',
    description: 'an in-memory key-value bucket',
    schema: z.strictObject({ groups: z.array(z.string()).default([]) }),
    groupsOf: (spec) => spec.groups,
    async connect(resource) {
      let bucket = world.data.get(resource.address);
      if (!bucket) world.data.set(resource.address, (bucket = new Map()));
      return { address: resource.address, bucket, close: async () => undefined };
    },
  };
  const itemProvider: ResourceProvider<ItemSpec, { value: string }, MemoryHandle> = {
    role: 'resource',
    kind: 'Item',
    description: 'one key in a bucket',
    schema: itemSpec,
    targetKind: 'Bucket',
    provides: (spec) => [`key:${spec.key}`],
    references: (spec) => (spec.needs === undefined ? [] : [{ key: `key:${spec.needs}`, field: ['needs'], label: `key ${spec.needs}` }]),
    async read(handle, specs, ctx) {
      world.readCalls += 1;
      world.readKeys.push(...specs.map((s) => s.key));
      specs.forEach((s, i) => {
        if (s.needs !== undefined && !handle.bucket.has(s.needs)) ctx.unresolved?.(i, itemProvider.references!(s));
        const created = world.creates.get(s.key);
        if (created !== undefined && !handle.bucket.has(s.key)) ctx.creates?.(i, [{ path: 'value', before: null, after: created }]);
      });
      return specs.map((s) => (handle.bucket.has(s.key) ? { value: handle.bucket.get(s.key)! } : null));
    },
    diff(desired, live, prior) {
      // A live value "frozen" can never be changed: apply would refuse, so the plan says so.
      if (live?.value === 'frozen' && desired.value !== 'frozen') {
        return { action: 'update', fields: [{ path: 'value', before: live.value, after: desired.value }], refusal: { message: `${desired.key} is frozen`, field: ['value'] } };
      }
      if (prior && prior.key !== desired.key) return { action: 'replace', fields: [{ path: 'key', before: prior.key, after: desired.key }], reason: 'key changed' };
      if (!live) return { action: 'create', fields: [{ path: 'value', before: null, after: desired.value }] };
      if (live.value !== desired.value) return { action: 'update', fields: [{ path: 'value', before: live.value, after: desired.value }] };
      return { action: 'noop', fields: [] };
    },
    // A frozen item may go only with the items it names in `needs` that go too (a group with its last users).
    refuseDelete(prior, live, deletedAlongside) {
      if (live?.value !== 'frozen') return undefined;
      const holders = deletedAlongside.filter((r) => (r.spec as { needs?: string }).needs === prior.key);
      return holders.length > 0 ? undefined : `${prior.key} is frozen`;
    },
    async apply(handle, request, ctx) {
      const key = (request.desired ?? request.prior)!.key;
      world.applied.push(`${request.action} ${request.address}`);
      if (world.failing.has(key)) throw new ProviderError(`cannot write ${key}`);
      const needs = request.desired?.needs;
      if (needs !== undefined && !handle.bucket.has(needs)) throw new ProviderError(`cannot write ${key}: ${needs} is not in the bucket`);
      const note = world.notes.get(key);
      if (note !== undefined) ctx.note?.(note);
      if (request.action === 'delete') {
        handle.bucket.delete(key);
        return null;
      }
      if (request.action === 'replace' && request.prior) handle.bucket.delete(request.prior.key);
      handle.bucket.set(key, request.desired!.value);
      return { value: request.desired!.value };
    },
    async refresh(handle, request) {
      world.applied.push(`refresh ${request.address} <- ${request.notifiedBy.join(', ')}`);
      if (world.failing.has(request.desired.key)) throw new ProviderError(`cannot refresh ${request.desired.key}`);
      return handle.bucket.has(request.desired.key) ? { value: handle.bucket.get(request.desired.key)! } : null;
    },
  };
  return new ProviderRegistry([target, itemProvider]);
}

let line = 0;
function resource(kind: string, name: string, spec: unknown, target: string | undefined, dependsOn: string[], notify: string[] = []): Resource {
  const source = { file: 'test.yaml', line: ++line, col: 1 };
  return { address: `${kind}/${name}`, kind, name, target, dependsOn, ...(notify.length ? { notify } : {}), spec, source, positionOf: () => source };
}

export function bucket(name: string): Resource {
  return resource('Bucket', name, { groups: [] }, undefined, []);
}

export function item(
  name: string,
  value: string,
  options: { bucket?: string; dependsOn?: string[]; notify?: string[]; key?: string; needs?: string } = {},
): Resource {
  const spec = { key: options.key ?? name, value, ...(options.needs === undefined ? {} : { needs: options.needs }) };
  return resource('Item', name, spec, `Bucket/${options.bucket ?? 'b'}`, options.dependsOn ?? [], options.notify ?? []);
}
