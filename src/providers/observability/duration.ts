/** Prometheus durations (`5m`, `1h30m`, `30d`): parsing, validation and a canonical short form. */
import { z } from 'zod';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000, y: 31_536_000_000 };
const DURATION = /^((\d+)y)?((\d+)w)?((\d+)d)?((\d+)h)?((\d+)m)?((\d+)s)?((\d+)ms)?$/;

/** Milliseconds in a Prometheus duration, or undefined when the text is not one (or is zero). */
export function parseDuration(text: string): number | undefined {
  if (text === '' || !DURATION.test(text)) return undefined;
  let ms = 0;
  for (const m of text.matchAll(/(\d+)(ms|y|w|d|h|m|s)/g)) ms += Number(m[1]) * UNIT_MS[m[2]!]!;
  return ms > 0 && Number.isSafeInteger(ms) ? ms : undefined;
}

/** Shortest single-unit form used in recording-rule names: 5m, 1h, 1d, 30d (weeks and years are spelt in days). */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    const size = UNIT_MS[unit]!;
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

export const durationSchema = z
  .string()
  .refine((s) => parseDuration(s) !== undefined, { message: 'expected a Prometheus duration such as 30s, 5m, 1h, 30d' });
