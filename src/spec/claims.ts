/**
 * One object managed twice through aliases: two resources on the same machine
 * (their targets' `machineOf`) that claim the same object (`claims`), e.g. two
 * local Hosts with the same root each managing /etc/motd, would overwrite each
 * other on every apply. The engine only compares keys; what a key means is the
 * providers' business.
 */
import { error, type Diagnostic, type SourcePosition } from '../diag/diagnostic.js';
import type { Claim } from '../providers/provider.js';
import type { ProviderRegistry } from '../providers/registry.js';
import type { Resource } from './resource.js';

/** A resource's claims on one machine, from its spec or as the live machine resolved them. */
export interface ClaimedResource {
  readonly resource: Resource;
  /** `TargetKind machineOf(target)`; resources whose target has no machine key are not compared. */
  readonly machine: string;
  readonly claims: readonly Claim[];
}

/** The machine key of a resource's target, or undefined when its target provider does not say. */
export function machineOfTarget(target: Resource, registry: ProviderRegistry): string | undefined {
  const machine = registry.target(target.kind)?.machineOf?.(target.spec);
  return machine === undefined ? undefined : `${target.kind} ${machine}`;
}

/** The spec claims of every resource with a target, on the machine of that target. */
export function specClaims(targets: readonly Resource[], resources: readonly Resource[], registry: ProviderRegistry): ClaimedResource[] {
  const byAddress = new Map(targets.map((t) => [t.address, t]));
  const out: ClaimedResource[] = [];
  for (const r of resources) {
    const provider = registry.resource(r.kind);
    const target = r.target === undefined ? undefined : byAddress.get(r.target);
    if (!provider?.claims || !target) continue;
    const machine = machineOfTarget(target, registry);
    if (machine === undefined) continue;
    out.push({ resource: r, machine, claims: provider.claims(r.spec, target) });
  }
  return out;
}

/**
 * An error on each resource that claims what another one on the same machine
 * claims (on the same target or through another target for that machine),
 * naming the other resources and their positions.
 */
export function claimCollisions(claimed: readonly ClaimedResource[], options: { readonly when: string }): Diagnostic[] {
  const holders = new Map<string, { resource: Resource; claim: Claim }[]>();
  for (const { resource, machine, claims } of claimed) {
    for (const claim of claims) {
      const key = `${machine}\u0000${claim.key}`;
      const list = holders.get(key);
      if (list) {
        if (!list.some((h) => h.resource.address === resource.address)) list.push({ resource, claim });
      } else holders.set(key, [{ resource, claim }]);
    }
  }
  const diagnostics: Diagnostic[] = [];
  for (const [key, list] of holders) {
    if (list.length < 2) continue;
    const machine = key.slice(0, key.indexOf('\u0000'));
    for (const mine of list) {
      const others = list.filter((h) => h.resource.address !== mine.resource.address);
      const named = others.map((h) => `${h.resource.address} (${at(positionOf(h))})`).join(', ');
      diagnostics.push(
        error(`${mine.resource.address} and ${named} manage the same object, ${mine.claim.key}, on one machine (${machine})`, {
          address: mine.resource.address,
          source: positionOf(mine),
          detail: `${options.when}: ${[mine, ...others].map((h) => `${h.resource.address} on ${h.resource.target ?? '?'}`).join(' and ')} would overwrite each other on every apply; manage it once`,
        }),
      );
    }
  }
  return diagnostics;
}

function positionOf(holder: { resource: Resource; claim: Claim }): SourcePosition {
  return holder.claim.field ? holder.resource.positionOf(['spec', ...holder.claim.field]) : holder.resource.source;
}

function at(p: SourcePosition): string {
  return `${p.file}:${p.line}:${p.col}`;
}
