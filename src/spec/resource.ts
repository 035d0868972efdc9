import type { SourcePosition } from '../diag/diagnostic.js';

/** `Kind/name`, or `Kind/name@target` for an instance expanded over a group. */
export type Address = string;

export const NAME_PATTERN = /^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$/;
export const KIND_PATTERN = /^[A-Z][A-Za-z0-9]*$/;

/** Finds the source position of a node inside one document, by its path from the document root. */
export type PositionLookup = (path: readonly (string | number)[]) => SourcePosition;

/** One YAML document as written by the user, before expansion over targets. */
export interface ResourceDocument {
  readonly kind: string;
  readonly name: string;
  /** A target name, or `group:NAME`; absent for targets themselves. */
  readonly target: string | undefined;
  readonly dependsOn: readonly string[];
  /** Addresses `Kind/name` to refresh after this resource changes (handlers). */
  readonly notify: readonly string[];
  readonly spec: unknown;
  readonly source: SourcePosition;
  readonly positionOf: PositionLookup;
}

/**
 * One resource instance after validation and expansion: what providers plan and
 * apply. `spec` has been parsed by the provider's schema.
 */
export interface Resource<Spec = unknown> {
  readonly address: Address;
  readonly kind: string;
  readonly name: string;
  /** Address of the target resource (e.g. `Host/web-1`), or undefined for targets. */
  readonly target: Address | undefined;
  /** Resolved addresses of the instances this one depends on (explicit only). */
  readonly dependsOn: readonly Address[];
  /**
   * Resolved addresses of the instances to refresh after this one changes
   * (`notify:`); each is also a dependency edge, so a handler runs after the
   * resources that notify it. Absent means none.
   */
  readonly notify?: readonly Address[];
  readonly spec: Spec;
  readonly source: SourcePosition;
  readonly positionOf: PositionLookup;
}

export function baseAddress(kind: string, name: string): Address {
  return `${kind}/${name}`;
}

export function instanceAddress(kind: string, name: string, targetName: string): Address {
  return `${kind}/${name}@${targetName}`;
}

export function parseAddress(address: string): { kind: string; name: string; instance: string | undefined } | undefined {
  const m = /^([A-Z][A-Za-z0-9]*)\/([a-z0-9](?:[a-z0-9._-]*[a-z0-9])?)(?:@([a-z0-9](?:[a-z0-9._-]*[a-z0-9])?))?$/.exec(address);
  if (!m) return undefined;
  return { kind: m[1]!, name: m[2]!, instance: m[3] };
}
