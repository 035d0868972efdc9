/**
 * Expansion: documents become resource instances. `target: group:NAME` yields one
 * instance per member target (`Kind/name@host`); a single target keeps `Kind/name`.
 * `dependsOn: [Kind/name]` (and `notify:`) from a resource on host H resolves to `Kind/name@H` when
 * that instance exists, else to the single resource `Kind/name`, else to every
 * instance of it.
 *
 * Expansion trusts validation: a reference it cannot resolve is skipped here and
 * reported by `validate.ts`, which uses the same lookups.
 */
import type { AnyResourceProvider, AnyTargetProvider } from '../providers/provider.js';
import type { ProviderRegistry } from '../providers/registry.js';
import { GROUP_PREFIX, type LoadedDocument } from './envelope.js';
import { baseAddress, instanceAddress, type Address, type Resource } from './resource.js';

/**
 * A resource document of a known kind, after its checks. Documents with errors are
 * kept (and still checked against the others, so that one pass reports every
 * problem) but only valid ones become resources of the stack.
 */
export interface CheckedResourceDocument {
  readonly doc: LoadedDocument;
  readonly provider: AnyResourceProvider;
  /** The spec as parsed by the provider's schema (and resolved); meaningful only when `specOk`. */
  readonly spec: unknown;
  readonly specOk: boolean;
  /** No error found in this document so far. */
  readonly valid: boolean;
}

/** A target document of a known kind, after its checks; see `CheckedResourceDocument`. */
export interface CheckedTargetDocument {
  readonly doc: LoadedDocument;
  readonly provider: AnyTargetProvider;
  readonly spec: unknown;
  readonly specOk: boolean;
  readonly valid: boolean;
}

export function targetResource(checked: CheckedTargetDocument): Resource {
  const { doc } = checked;
  return {
    address: baseAddress(doc.kind, doc.name),
    kind: doc.kind,
    name: doc.name,
    target: undefined,
    dependsOn: [],
    spec: checked.spec,
    source: doc.source,
    positionOf: doc.positionOf,
  };
}

/** Targets by name and by group, built once so that each lookup is O(1). */
export class TargetIndex {
  private readonly byName = new Map<string, Resource[]>();
  private readonly byGroup = new Map<string, Resource[]>();

  constructor(targets: readonly Resource[], registry: ProviderRegistry) {
    for (const t of targets) {
      push(this.byName, t.name, t);
      const provider = registry.target(t.kind);
      if (!provider) continue;
      for (const group of new Set(provider.groupsOf(t.spec))) push(this.byGroup, group, t);
    }
    for (const list of this.byGroup.values()) list.sort((a, b) => compare(a.name, b.name));
  }

  /** Every target with this name, whatever its kind. */
  named(name: string): readonly Resource[] {
    return this.byName.get(name) ?? [];
  }

  /** Every target in this group, whatever its kind, by name. */
  group(group: string): readonly Resource[] {
    return this.byGroup.get(group) ?? [];
  }

  /** The targets a `target:` value names, restricted to one kind; empty when none match. */
  select(target: string, kind: string): readonly Resource[] {
    const matches = target.startsWith(GROUP_PREFIX) ? this.group(target.slice(GROUP_PREFIX.length)) : this.named(target);
    return matches.filter((t) => t.kind === kind);
  }

  /** All target names, for "did you mean". */
  names(): string[] {
    return [...this.byName.keys()];
  }

  groups(): string[] {
    return [...this.byGroup.keys()];
  }
}

/** Instances of the documents whose spec is usable, in document order; those of one document by target name. */
export function expandResources(documents: readonly CheckedResourceDocument[], targets: TargetIndex): Resource[] {
  interface Pending {
    readonly checked: CheckedResourceDocument;
    readonly address: Address;
    /** undefined for a declaration: a kind whose provider allows no target. */
    readonly target: Resource | undefined;
    readonly expanded: boolean;
  }
  const pending: Pending[] = [];
  const addresses = new Set<Address>();
  /** base address -> instance addresses, for expanded documents */
  const instancesOf = new Map<Address, Address[]>();

  for (const checked of documents) {
    const { doc } = checked;
    if (!checked.specOk) continue;
    if (doc.target === undefined) {
      if (checked.provider.targetOptional) {
        const address = baseAddress(doc.kind, doc.name);
        pending.push({ checked, address, target: undefined, expanded: false });
        addresses.add(address);
      }
      continue;
    }
    const expanded = doc.target.startsWith(GROUP_PREFIX);
    const base = baseAddress(doc.kind, doc.name);
    for (const target of targets.select(doc.target, checked.provider.targetKind)) {
      const address = expanded ? instanceAddress(doc.kind, doc.name, target.name) : base;
      pending.push({ checked, address, target, expanded });
      addresses.add(address);
      if (expanded) push(instancesOf, base, address);
    }
  }

  return pending.map(({ checked, address, target }) => {
    const { doc } = checked;
    const self = baseAddress(doc.kind, doc.name);
    const resolveAll = (entries: readonly Address[]): Address[] => {
      const resolved = new Set<Address>();
      for (const entry of entries) {
        if (entry === self) continue;
        for (const r of resolveDependency(entry, target?.name ?? '', addresses, instancesOf)) resolved.add(r);
      }
      return [...resolved];
    };
    const notify = resolveAll(doc.notify);
    return {
      address,
      kind: doc.kind,
      name: doc.name,
      target: target?.address,
      dependsOn: resolveAll(doc.dependsOn),
      ...(notify.length > 0 ? { notify } : {}),
      spec: checked.spec,
      source: doc.source,
      positionOf: doc.positionOf,
    };
  });
}

/** The instances a `dependsOn` entry means for a resource on target `targetName`; empty when it names nothing. */
export function resolveDependency(
  dep: Address,
  targetName: string,
  addresses: ReadonlySet<Address>,
  instancesOf: ReadonlyMap<Address, readonly Address[]>,
): Address[] {
  const sameTarget = `${dep}@${targetName}`;
  if (addresses.has(sameTarget)) return [sameTarget];
  if (addresses.has(dep)) return [dep];
  return [...(instancesOf.get(dep) ?? [])];
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
