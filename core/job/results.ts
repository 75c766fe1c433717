// The arithmetic of a fine-tune-vs-scratch comparison, as pure functions:
// when each run first reached each accuracy threshold, medians over seeds,
// and the speed-up of each arm over the from-scratch baseline.
import { CurvePoint } from '../train/loop';
import { median } from '../util/numbers';

export type Thresholds = Record<string, number | null>; // threshold (as text) → iteration, or null if never

/** The first trained iteration at which each threshold was reached (the iteration-0 point, before any step, is where a run starts, not a reach). */
export function firstReached(curve: CurvePoint[], thresholds: number[]): Thresholds {
  return Object.fromEntries(thresholds.map((t) => [String(t), curve.find((p) => p.iteration > 0 && p.valAccuracy >= t)?.iteration ?? null]));
}

/** Median where null means "never" (larger than any number); null when the median itself is never. */
export function medianOrNever(values: (number | null)[]): number | null {
  const m = median(values.map((v) => v ?? Infinity));
  return Number.isFinite(m) ? m : null;
}

/**
 * Speed-up per threshold: the baseline's median first-reach iteration divided
 * by the arm's. Null when the arm never got there (median); Infinity is never
 * reported — when only the baseline never got there, the speed-up is null too
 * and the report says "baseline never reached".
 */
export function speedups(arm: Thresholds, baseline: Thresholds): Thresholds {
  return Object.fromEntries(Object.keys(arm).map((t) => {
    const a = arm[t], b = baseline[t];
    return [t, a !== null && b !== null ? b / a : null];
  }));
}

export function medianThresholds(runs: Thresholds[], thresholds: number[]): Thresholds {
  return Object.fromEntries(thresholds.map((t) => [String(t), medianOrNever(runs.map((r) => r[String(t)]))]));
}
