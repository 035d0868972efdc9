/** `--prune adopted` on plan and apply. */
import { UsageError } from './context.js';

/** Resources removed from the spec are deleted even when Capstan adopted rather than created them. */
export function parsePrune(value: string): 'adopted' {
  if (value !== 'adopted') throw new UsageError(`--prune takes "adopted" (delete adopted resources removed from the spec too), got "${value}"`);
  return value;
}

export const PRUNE_HELP =
  'with "adopted": also delete resources removed from the spec that Capstan adopted (found already there); by default they are forgotten and left in place';
