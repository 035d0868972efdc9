/**
 * Cross-document validation, in three passes that each report every problem they
 * find:
 *
 *   checkDocuments   kinds, duplicate names, target present/absent, spec schemas
 *                    (HostGroup documents, inventory the spec layer reads itself, included)
 *   checkReferences  targets and groups exist and are of the right kind, dependsOn
 *   checkGraph       dependency cycles, then each provider's own `validate`, then
 *                    objects claimed twice on one machine (claims.ts)
 *
 * A document that fails a pass is left out of the next ones, but its address
 * stays "declared", so that references to it do not cascade into more errors.
 */
import { error, type Diagnostic, type SourcePosition } from '../diag/diagnostic.js';
import { buildResourceGraph, groupByTarget } from '../graph/resource-graph.js';
import type { AnyProvider } from '../providers/provider.js';
import type { ProviderRegistry } from '../providers/registry.js';
import { didYouMean, GROUP_PREFIX, parseSpec, type EnvelopeKey, type LoadedDocument } from './envelope.js';
import type { CheckedResourceDocument, CheckedTargetDocument, TargetIndex } from './expand.js';
import { claimCollisions, specClaims } from './claims.js';
import { checkHostGroupDocument, HOST_GROUP_KIND, type CheckedHostGroup } from './host-group.js';
import { checkPolicyDocument, POLICY_KIND, POLICY_TEST_KIND, type Policy } from '../policy/policy.js';
import { baseAddress, parseAddress, type Address, type Resource } from './resource.js';

/** A document as far as it could be read: its identity, and the document when its envelope could be read. */
export interface DeclaredDocument {
  readonly kind: string;
  readonly name: string;
  readonly source: SourcePosition;
  readonly doc: LoadedDocument | undefined;
  /** The envelope had no error. */
  readonly valid: boolean;
  /** Envelope keys whose value was invalid (already reported). */
  readonly invalidKeys: ReadonlySet<EnvelopeKey>;
}

export interface DocumentChecks {
  /** Target documents whose spec passed the schema (valid or not: they still serve lookups). */
  readonly targets: CheckedTargetDocument[];
  /** Resource documents of a known kind, in document order. */
  readonly resources: CheckedResourceDocument[];
  /** HostGroup documents whose spec parsed, in document order. */
  readonly hostGroups: CheckedHostGroup[];
  /** Policy documents whose rule compiled, in document order. */
  readonly policies: Policy[];
  /** Base addresses of every document with a valid kind and name, valid or not (HostGroups aside: nothing refers to them by address). */
  readonly declared: ReadonlySet<Address>;
  /** Target kinds with a document whose spec is unknown: its groups are unknown, so an empty group is not reported. */
  readonly invalidTargetKinds: ReadonlySet<string>;
  readonly diagnostics: Diagnostic[];
}

/** Kinds the spec layer reads itself: never planned, and nothing refers to them by address. */
const INVENTORY_KINDS: readonly string[] = [HOST_GROUP_KIND, POLICY_KIND, POLICY_TEST_KIND];

export function checkDocuments(documents: readonly DeclaredDocument[], registry: ProviderRegistry): DocumentChecks {
  const diagnostics: Diagnostic[] = [];
  const firstAt = new Map<Address, DeclaredDocument>();
  const targets: CheckedTargetDocument[] = [];
  const resources: CheckedResourceDocument[] = [];
  const hostGroups: CheckedHostGroup[] = [];
  const policies: Policy[] = [];
  const invalidTargetKinds = new Set<string>();
  const knownKinds = [...registry.kinds(), ...INVENTORY_KINDS].sort();

  for (const declared of documents) {
    const address = baseAddress(declared.kind, declared.name);
    const firstDeclared = firstAt.get(address);
    if (firstDeclared) {
      const first = nameSource(firstDeclared);
      diagnostics.push(
        error(`duplicate ${address}: already declared at ${first.file}:${first.line}:${first.col}`, {
          address,
          source: nameSource(declared),
          detail: 'names are unique per kind in a stack',
        }),
      );
      continue;
    }
    firstAt.set(address, declared);
    const doc = declared.doc;
    if (declared.kind === HOST_GROUP_KIND) {
      if (!doc) continue;
      const checked = checkHostGroupDocument(doc, declared.valid, declared.invalidKeys.has('target'));
      diagnostics.push(...checked.diagnostics);
      if (checked.group) hostGroups.push(checked.group);
      continue;
    }
    if (declared.kind === POLICY_KIND) {
      if (!doc) continue;
      const checked = checkPolicyDocument(doc, declared.invalidKeys.has('target'));
      diagnostics.push(...checked.diagnostics);
      if (checked.policy && declared.valid) policies.push(checked.policy);
      continue;
    }
    // Fixtures of `capstan policy test`: read by that command only.
    if (declared.kind === POLICY_TEST_KIND) continue;
    const provider = registry.get(declared.kind);
    if (!provider) {
      if (doc) {
        const hint = didYouMean(declared.kind, knownKinds);
        diagnostics.push(
          error(`unknown kind ${JSON.stringify(declared.kind)}${hint ? ` (did you mean "${hint}"?)` : ''}`, {
            address,
            source: doc.positionOf(['kind']),
            detail: `known kinds: ${knownKinds.join(', ')}`,
          }),
        );
      }
      continue;
    }
    if (!doc) {
      if (provider.role === 'target') invalidTargetKinds.add(provider.kind);
      continue;
    }

    let valid = declared.valid;
    const problem = (d: Diagnostic) => {
      diagnostics.push(d);
      valid = false;
    };
    if (provider.role === 'target') {
      if (doc.target !== undefined || declared.invalidKeys.has('target')) {
        problem(error(`${doc.kind} is a target kind: it cannot have a target`, { address, source: doc.positionOf(['target']), detail: 'remove target:' }));
      }
      for (const key of ['dependsOn', 'notify'] as const) {
        if (doc[key].length === 0) continue;
        problem(
          error(`${doc.kind} is a target kind: it cannot have ${key}`, {
            address,
            source: doc.positionOf([key]),
            detail: 'targets are not nodes of the dependency graph',
          }),
        );
      }
    } else if (doc.target === undefined && !provider.targetOptional && !declared.invalidKeys.has('target')) {
      problem(
        error(`${doc.kind} needs a target: the ${provider.targetKind} it lives on`, {
          address,
          source: doc.source,
          detail: `add target: NAME, or target: ${GROUP_PREFIX}GROUP for every ${provider.targetKind} of a group`,
        }),
      );
    }
    let spec: unknown;
    let specOk = false;
    if (!declared.invalidKeys.has('spec')) {
      const parsed = parseSpec(provider.schema, doc);
      if (parsed.ok) {
        spec = parsed.spec;
        specOk = true;
      } else {
        for (const d of parsed.diagnostics) problem(d);
      }
    }
    valid &&= specOk;
    if (provider.role === 'target') {
      if (specOk) targets.push({ doc, provider, spec, specOk, valid });
      else invalidTargetKinds.add(provider.kind);
    } else {
      resources.push({ doc, provider, spec, specOk, valid });
    }
  }
  const addresses = [...firstAt.keys()].filter((a) => !INVENTORY_KINDS.includes(parseAddress(a)?.kind ?? ''));
  return { targets, resources, hostGroups, policies, declared: new Set(addresses), invalidTargetKinds, diagnostics };
}

function nameSource(declared: DeclaredDocument): SourcePosition {
  return declared.doc?.positionOf(['name']) ?? declared.source;
}

export interface ReferenceChecks {
  /** Documents whose target resolves to at least one target of the right kind. */
  readonly targetResolved: ReadonlySet<CheckedResourceDocument>;
  /** Documents with a reference error. */
  readonly invalid: ReadonlySet<CheckedResourceDocument>;
  readonly diagnostics: Diagnostic[];
}

/** Targets, groups and dependsOn of every resource document, valid or not. */
export function checkReferences(
  resources: readonly CheckedResourceDocument[],
  targets: TargetIndex,
  declared: DocumentChecks['declared'],
  invalidTargetKinds: DocumentChecks['invalidTargetKinds'],
  registry: ProviderRegistry,
): ReferenceChecks {
  const diagnostics: Diagnostic[] = [];
  const targetResolved = new Set<CheckedResourceDocument>();
  const invalid = new Set<CheckedResourceDocument>();
  let dependencyCandidates: string[] | undefined;

  for (const checked of resources) {
    const { doc, provider } = checked;
    const address = baseAddress(doc.kind, doc.name);
    const targetKind = provider.targetKind;
    const problem = (d: Diagnostic) => {
      diagnostics.push(d);
      invalid.add(checked);
    };
    const target = doc.target;
    if (target !== undefined && targets.select(target, targetKind).length > 0) {
      targetResolved.add(checked);
    } else if (target !== undefined && target.startsWith(GROUP_PREFIX)) {
      const group = target.slice(GROUP_PREFIX.length);
      const members = targets.group(group);
      if (members.length > 0) {
        problem(
          error(`group ${JSON.stringify(group)} has no ${targetKind} members: ${doc.kind} lives on a ${targetKind}`, {
            address,
            source: doc.positionOf(['target']),
            detail: `its members are ${members.map((m) => m.address).join(', ')}`,
          }),
        );
      } else if (!invalidTargetKinds.has(targetKind)) {
        // (When a target of this kind is invalid it may have been a member: its error is reported already.)
        const hint = didYouMean(group, targets.groups());
        problem(
          error(`group ${JSON.stringify(group)} has no members${hint ? ` (did you mean "${hint}"?)` : ''}`, {
            address,
            source: doc.positionOf(['target']),
            detail: `no ${targetKind} belongs to group ${group}`,
          }),
        );
      } else {
        invalid.add(checked);
      }
    } else if (target !== undefined) {
      const sameName = targets.named(target);
      if (sameName.length > 0) {
        problem(
          error(`target ${JSON.stringify(target)} is a ${sameName.map((t) => t.kind).join(' and a ')}, but ${doc.kind} lives on a ${targetKind}`, {
            address,
            source: doc.positionOf(['target']),
          }),
        );
      } else if (!declared.has(baseAddress(targetKind, target))) {
        const hint = didYouMean(target, targets.names());
        problem(
          error(`unknown target ${JSON.stringify(target)}${hint ? ` (did you mean "${hint}"?)` : ''}`, {
            address,
            source: doc.positionOf(['target']),
            detail: `no ${targetKind} named ${target}`,
          }),
        );
      } else {
        invalid.add(checked); // the target's own error is reported already
      }
    }

    for (const key of ['dependsOn', 'notify'] as const) {
      const positions = key === 'dependsOn' ? doc.dependsOnAt : doc.notifyAt;
      doc[key].forEach((ref, i) => {
        const at = () => doc.positionOf([key, positions[i] ?? i]);
        if (ref === address) {
          problem(error(key === 'dependsOn' ? `${address} depends on itself` : `${address} notifies itself`, { address, source: at() }));
          return;
        }
        const refKind = parseAddress(ref)?.kind;
        if (declared.has(ref)) {
          if (refKind !== undefined && registry.target(refKind)) {
            problem(
              error(`${key} ${JSON.stringify(ref)} names a target`, {
                address,
                source: at(),
                detail: `${key === 'dependsOn' ? 'depend on' : 'notify'} resources; the target a resource lives on is set by target:`,
              }),
            );
          } else if (key === 'notify' && refKind !== undefined && !registry.resource(refKind)?.refresh) {
            const refreshable = registry.loaded().filter((p) => p.role === 'resource' && p.refresh !== undefined).map((p) => p.kind).sort();
            problem(
              error(`notify ${JSON.stringify(ref)}: a ${refKind} cannot be notified`, {
                address,
                source: at(),
                detail: `only kinds that can react to a change can be notified: ${refreshable.join(', ') || 'none are loaded'}; use dependsOn for ordering`,
              }),
            );
          }
          return;
        }
        dependencyCandidates ??= [...declared].filter((a) => {
          const k = parseAddress(a)?.kind;
          return k !== undefined && !registry.target(k);
        });
        const hint = didYouMean(ref, dependencyCandidates);
        problem(error(`${key} ${JSON.stringify(ref)}: no such resource${hint ? ` (did you mean "${hint}"?)` : ''}`, { address, source: at() }));
      });
    }
  }
  return { targetResolved, invalid, diagnostics };
}

/** Cycles in the dependency graph, every provider's own checks, then objects claimed twice on one machine. */
export function checkGraph(targets: readonly Resource[], resources: readonly Resource[], registry: ProviderRegistry): Diagnostic[] {
  const diagnostics: Diagnostic[] = [];
  diagnostics.push(...checkCycles(resources, registry));

  for (const t of targets) {
    const provider = registry.target(t.kind);
    if (!provider?.validate) continue;
    diagnostics.push(...providerDiagnostics(provider, t, () => provider.validate!(t)));
  }
  // sameTarget: every resource on the target, this one included (see groupByTarget).
  for (const onTarget of groupByTarget(resources).values()) {
    for (const r of onTarget) {
      const provider = registry.resource(r.kind);
      if (!provider?.validate) continue;
      diagnostics.push(...providerDiagnostics(provider, r, () => provider.validate!(r, onTarget)));
    }
  }
  // One object managed twice: on one target, or through two targets for one machine (two Hosts with one root).
  diagnostics.push(...claimCollisions(specClaims(targets, resources, registry), { when: 'the spec names it twice' }));
  return diagnostics;
}

/** Enough to collapse the same cycle repeated over a large group, bounded on pathological graphs. */
const MAX_CYCLES = 1000;

function checkCycles(resources: readonly Resource[], registry: ProviderRegistry): Diagnostic[] {
  let cycles: string[][];
  try {
    cycles = buildResourceGraph(resources, registry).findCycles(MAX_CYCLES);
  } catch (e) {
    return [error(`could not build the dependency graph: ${e instanceof Error ? e.message : String(e)}`)];
  }
  const byAddress = new Map(resources.map((r) => [r.address, r]));
  // The same cycle on every host of a group is one mistake in one document: report it once.
  const seen = new Map<string, { cycle: string[]; others: number }>();
  for (const cycle of cycles) {
    const key = canonicalRotation(cycle.slice(0, -1).map(stripInstance)).join(' ');
    const entry = seen.get(key);
    if (entry) entry.others++;
    else seen.set(key, { cycle, others: 0 });
  }
  const out: Diagnostic[] = [];
  for (const { cycle, others } of seen.values()) {
    const members = cycle.slice(0, -1);
    let start = 0;
    members.forEach((m, i) => {
      if (comparePositions(byAddress.get(m)!.source, byAddress.get(members[start]!)!.source) < 0) start = i;
    });
    const rotated = [...members.slice(start), ...members.slice(0, start)];
    const first = byAddress.get(rotated[0]!)!;
    out.push(
      error(`dependency cycle: ${[...rotated, rotated[0]!].join(' -> ')}`, {
        address: first.address,
        source: first.source,
        detail: others > 0 ? `the same cycle repeats on ${others} other instance${others === 1 ? '' : 's'}` : undefined,
      }),
    );
  }
  return out;
}

function providerDiagnostics(provider: AnyProvider, r: Resource, run: () => Diagnostic[]): Diagnostic[] {
  try {
    return run().map((d) => ({ ...d, address: d.address ?? r.address, source: d.source ?? r.source }));
  } catch (e) {
    return [error(`${provider.kind} validation failed: ${e instanceof Error ? e.message : String(e)}`, { address: r.address, source: r.source })];
  }
}

function stripInstance(address: Address): Address {
  const at = address.indexOf('@');
  return at === -1 ? address : address.slice(0, at);
}

function canonicalRotation(keys: readonly string[]): string[] {
  let best = 0;
  for (let i = 1; i < keys.length; i++) {
    const a = [...keys.slice(i), ...keys.slice(0, i)].join('\0');
    const b = [...keys.slice(best), ...keys.slice(0, best)].join('\0');
    if (a < b) best = i;
  }
  return [...keys.slice(best), ...keys.slice(0, best)];
}

function comparePositions(a: SourcePosition, b: SourcePosition): number {
  if (a.file !== b.file) return a.file < b.file ? -1 : 1;
  return a.line - b.line || a.col - b.col;
}
