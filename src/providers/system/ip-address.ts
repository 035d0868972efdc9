/** IPv4 and IPv6 addresses and prefixes in the canonical forms `ip -j route` prints. */
import { isIPv4, isIPv6 } from 'node:net';

export type IpFamily = 'ipv4' | 'ipv6';

export interface Prefix {
  readonly family: IpFamily;
  readonly address: string;
  readonly length: number;
}

function ipv4ToBits(address: string): bigint {
  return address.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function ipv6ToBits(address: string): bigint {
  let text = address;
  // An embedded IPv4 tail (`::ffff:198.18.0.1`) becomes two groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const bits = ipv4ToBits(v4[1]!);
    text = `${text.slice(0, -v4[1]!.length)}${(bits >> 16n).toString(16)}:${(bits & 0xffffn).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(Number.parseInt(g, 16)), 0n);
}

function bitsToIpv4(bits: bigint): string {
  return [24n, 16n, 8n, 0n].map((shift) => String((bits >> shift) & 0xffn)).join('.');
}

/** RFC 5952: lowercase, leading zeros dropped, the longest run of two or more zero groups as `::`. */
function bitsToIpv6(bits: bigint): string {
  const groups = Array.from({ length: 8 }, (_, i) => Number((bits >> BigInt((7 - i) * 16)) & 0xffffn));
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i += 1;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j += 1;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/** The canonical text of an address, or null when it is not one. */
export function canonicalAddress(text: string): { family: IpFamily; address: string } | null {
  if (isIPv4(text)) return { family: 'ipv4', address: bitsToIpv4(ipv4ToBits(text)) };
  if (isIPv6(text) && !text.includes('%')) return { family: 'ipv6', address: bitsToIpv6(ipv6ToBits(text)) };
  return null;
}

/**
 * Parses `198.18.5.0/24`, `198.18.6.7` (a host), `2001:db8::/64`. Refuses a
 * prefix with host bits set, as the kernel does ("Invalid prefix for given
 * prefix length").
 */
export function parsePrefix(text: string): Prefix | { error: string } {
  const [addr, len, ...rest] = text.split('/');
  const canonical = canonicalAddress(addr ?? '');
  if (canonical === null || rest.length > 0) return { error: `"${text}" is not an IPv4 or IPv6 address or prefix` };
  const max = canonical.family === 'ipv4' ? 32 : 128;
  const length = len === undefined ? max : /^\d{1,3}$/.test(len) ? Number(len) : Number.NaN;
  if (!Number.isInteger(length) || length < 0 || length > max) return { error: `"${text}" has a prefix length outside 0-${max}` };
  const bits = canonical.family === 'ipv4' ? ipv4ToBits(canonical.address) : ipv6ToBits(canonical.address);
  const hostBits = BigInt(max - length);
  if ((bits & ((1n << hostBits) - 1n)) !== 0n) {
    const network = (bits >> hostBits) << hostBits;
    const shown = canonical.family === 'ipv4' ? bitsToIpv4(network) : bitsToIpv6(network);
    return { error: `"${text}" has host bits set: the network is ${shown}/${length}` };
  }
  return { family: canonical.family, address: canonical.address, length };
}

/** How `ip` prints a prefix: a host route without its length. */
export function formatPrefix(prefix: Prefix): string {
  const max = prefix.family === 'ipv4' ? 32 : 128;
  return prefix.length === max ? prefix.address : `${prefix.address}/${prefix.length}`;
}
