/**
 * Multi-window, multi-burn-rate alerts (Google SRE workbook, "Alerting on SLOs",
 * recommendation 6).
 *
 * A tier alerts when the error ratio over both its long and its short window is
 * above `burn factor × error budget`, where the burn factor is the rate at which
 * the tier's share of the budget would be spent within its long window:
 *
 *     factor = budget fraction consumed × SLO window / long window
 *
 * For a 30-day window the default tiers give the workbook's numbers: 2% in 1h →
 * 14.4, 5% in 6h → 6, 10% in 1d → 3, 10% in 3d → 1. Other windows keep the
 * fractions and the alert windows and scale the factor (28d: 13.44, 5.6, 2.8,
 * 0.933333333). All arithmetic is exact (see decimal.ts).
 */
import { z } from 'zod';
import { NAME_PATTERN } from '../../spec/resource.js';
import { compare, div, formatDecimal, mul, parseDecimal, ratio, sub, type Ratio } from './decimal.js';
import { durationSchema, formatDuration, parseDuration } from './duration.js';

export type Severity = 'page' | 'ticket';

export interface TierConfig {
  readonly severity: Severity;
  readonly longWindow: string;
  readonly shortWindow: string;
  /** Percent of the error budget this tier lets burn within its long window before alerting. */
  readonly budgetConsumed: number | string;
  /** Optional `for:` of the generated alert. */
  readonly for?: string | undefined;
}

export const DEFAULT_TIERS: Readonly<Record<string, TierConfig>> = {
  'page-fast': { severity: 'page', longWindow: '1h', shortWindow: '5m', budgetConsumed: 2 },
  'page-slow': { severity: 'page', longWindow: '6h', shortWindow: '30m', budgetConsumed: 5 },
  'ticket-fast': { severity: 'ticket', longWindow: '1d', shortWindow: '2h', budgetConsumed: 10 },
  'ticket-slow': { severity: 'ticket', longWindow: '3d', shortWindow: '6h', budgetConsumed: 10 },
};

const percentSchema = z.union([z.number(), z.string()]).refine(
  (v) => {
    try {
      const r = parseDecimal(v);
      return compare(r, ratio(0n)) > 0 && compare(r, ratio(100n)) <= 0;
    } catch {
      return false;
    }
  },
  { message: 'expected a percentage above 0 and at most 100' },
);

/** One tier override in `spec.burnRateAlerts`: a default tier may be partly overridden or disabled; a new tier must say everything. */
export const tierOverrideSchema = z
  .object({
    enabled: z.boolean().optional().meta({ description: 'false turns the tier off.', examples: [false] }),
    severity: z.enum(['page', 'ticket']).optional().meta({ description: 'The severity label of the alert: page wakes someone, ticket waits for working hours.', examples: ['ticket'] }),
    longWindow: durationSchema.optional().meta({ description: 'The long window the burn rate is measured over.', examples: ['6h'] }),
    shortWindow: durationSchema.optional().meta({ description: 'The short window that must burn too, so the alert resets quickly once the burn stops.', examples: ['30m'] }),
    budgetConsumed: percentSchema.optional().meta({ description: 'Percent of the error budget of the whole SLO window consumed over longWindow that fires the alert (sets the burn-rate threshold).', examples: [5] }),
    for: durationSchema.optional().meta({ description: 'How long the condition must hold before the alert fires.', examples: ['2m'] }),
  })
  .strict();

export type TierOverride = z.infer<typeof tierOverrideSchema>;

export const tierOverridesSchema = z
  .record(z.string().regex(NAME_PATTERN, 'tier names are lowercase names such as page-fast'), tierOverrideSchema)
  .optional()
  .meta({ description: 'Multi-window burn-rate tiers by name: override or disable the defaults (page-fast, page-slow, ticket-fast, ticket-slow) or add new ones (a new tier says everything).' });

export interface BurnRateAlert {
  readonly tier: string;
  readonly severity: Severity;
  readonly longWindow: string;
  readonly shortWindow: string;
  readonly longWindowMs: number;
  readonly shortWindowMs: number;
  readonly budgetConsumed: Ratio;
  readonly factor: Ratio;
  /** factor × error budget: the error ratio above which the tier fires. */
  readonly threshold: Ratio;
  readonly for: string | undefined;
}

export interface TierProblem {
  readonly tier: string;
  readonly message: string;
}

/** The error budget as a fraction: (100 − objective%) / 100. */
export function errorBudget(objectivePercent: number | string): Ratio {
  return div(sub(ratio(100n), parseDecimal(objectivePercent)), ratio(100n));
}

/** Merges the user's overrides into the default tiers; disabled tiers are dropped. Incomplete new tiers are reported, not guessed. */
export function resolveTiers(overrides: Readonly<Record<string, TierOverride>> | undefined): { tiers: Record<string, TierConfig>; problems: TierProblem[] } {
  const tiers: Record<string, TierConfig> = {};
  const problems: TierProblem[] = [];
  const names = new Set([...Object.keys(DEFAULT_TIERS), ...Object.keys(overrides ?? {})]);
  for (const name of names) {
    const base = DEFAULT_TIERS[name];
    const o = overrides?.[name] ?? {};
    if (o.enabled === false) continue;
    const severity = o.severity ?? base?.severity;
    const longWindow = o.longWindow ?? base?.longWindow;
    const shortWindow = o.shortWindow ?? base?.shortWindow;
    const budgetConsumed = o.budgetConsumed ?? base?.budgetConsumed;
    if (!severity || !longWindow || !shortWindow || budgetConsumed === undefined) {
      problems.push({ tier: name, message: `tier ${name} is not a default tier: it needs severity, longWindow, shortWindow and budgetConsumed` });
      continue;
    }
    tiers[name] = { severity, longWindow, shortWindow, budgetConsumed, for: o.for ?? base?.for };
  }
  return { tiers, problems };
}

/** The alerts of every enabled tier for an SLO of `objectivePercent` over `window`, in the order page-fast … ticket-slow, then by name. */
export function burnRateAlerts(
  objectivePercent: number | string,
  window: string,
  tiers: Readonly<Record<string, TierConfig>>,
): { alerts: BurnRateAlert[]; problems: TierProblem[] } {
  const windowMs = parseDuration(window);
  if (windowMs === undefined) throw new RangeError(`not a duration: ${window}`);
  const budget = errorBudget(objectivePercent);
  const alerts: BurnRateAlert[] = [];
  const problems: TierProblem[] = [];
  for (const [name, t] of Object.entries(tiers)) {
    const longMs = parseDuration(t.longWindow);
    const shortMs = parseDuration(t.shortWindow);
    if (longMs === undefined || shortMs === undefined) {
      problems.push({ tier: name, message: `tier ${name}: windows must be Prometheus durations` });
      continue;
    }
    if (shortMs >= longMs) problems.push({ tier: name, message: `tier ${name}: shortWindow ${t.shortWindow} must be shorter than longWindow ${t.longWindow}` });
    if (longMs > windowMs) problems.push({ tier: name, message: `tier ${name}: longWindow ${t.longWindow} is longer than the SLO window ${window}` });
    const consumed = div(parseDecimal(t.budgetConsumed), ratio(100n));
    const factor = mul(consumed, ratio(BigInt(windowMs), BigInt(longMs)));
    const threshold = mul(factor, budget);
    if (compare(threshold, ratio(1n)) >= 0) {
      problems.push({
        tier: name,
        message: `tier ${name} can never fire: its threshold ${formatDecimal(threshold)} (${formatDecimal(factor)} × ${formatDecimal(budget)}) is not below an error ratio of 1`,
      });
    }
    alerts.push({
      tier: name,
      severity: t.severity,
      longWindow: formatDuration(longMs),
      shortWindow: formatDuration(shortMs),
      longWindowMs: longMs,
      shortWindowMs: shortMs,
      budgetConsumed: consumed,
      factor,
      threshold,
      for: t.for,
    });
  }
  const order = Object.keys(DEFAULT_TIERS);
  const rank = (n: string): number => (order.includes(n) ? order.indexOf(n) : order.length);
  alerts.sort((a, b) => rank(a.tier) - rank(b.tier) || (a.tier < b.tier ? -1 : a.tier > b.tier ? 1 : 0));
  return { alerts, problems };
}
