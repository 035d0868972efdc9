import { createHash } from 'node:crypto';

/** JSON with object keys sorted at every level: the same value always gives the same text. */
/** `map` sees every value (after toJSON) before its keys are sorted. */
export function canonicalJson(value: unknown, map?: (v: unknown) => unknown): string {
  return JSON.stringify(value, (_key, raw: unknown) => {
    const v = map ? map(raw) : raw;
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const sorted: Record<string, unknown> = {};
      for (const k of Object.keys(v as Record<string, unknown>).sort()) sorted[k] = (v as Record<string, unknown>)[k];
      return sorted;
    }
    return v;
  });
}

export function sha256(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex');
}

export function fingerprint(value: unknown): string | null {
  return value === null || value === undefined ? null : sha256(canonicalJson(value));
}
