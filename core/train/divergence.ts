// A job that trains at chance: the steps are so large that the model sits in
// a saturated corner (every example gets the same class) and stays there —
// no gradient is non-finite, so the spike guard and the non-finite checks see
// nothing, and the run would otherwise end with exit 0 and a useless model.
// The rule: the last `evaluations` evaluations after the start all have a
// validation accuracy within CHANCE_MARGIN of chance (the share of the most
// common class among the validation labels) and a validation loss over
// SATURATED × ln(classes) — confidently wrong, where a model that learned
// nothing yet predicts near-uniformly and scores about ln(classes) — and the
// loss at the last of them is no lower than at the first. The loss bound is
// what tells too-large steps from a task that is merely hard or slow to
// start (test: random labels never trip it). Pure: no tfjs, no clock.
import { LayerRule } from './lr-rules';

/** How far above chance still counts as chance (an absolute accuracy). */
export const CHANCE_MARGIN = 0.02;
/** A loss over this × ln(classes) (uniform predictions' loss) is a saturated, confidently wrong model. */
export const SATURATED = 2;

export interface DivergenceOptions {
  /** How many evaluations in a row (iteration > 0) at chance with no loss progress make a divergence. */
  evaluations: number;
  action: 'fail' | 'warn' | 'off';
}

export interface Evaluation {
  iteration: number;
  valAccuracy: number;
  valLoss: number;
}

/** Chance accuracy for these labels: the share of the most common one (a model that predicts it for every example scores that). */
export function chanceAccuracy(labels: ArrayLike<number>): number {
  const counts = new Map<number, number>();
  for (let i = 0; i < labels.length; i++) counts.set(labels[i], (counts.get(labels[i]) ?? 0) + 1);
  return labels.length ? Math.max(...counts.values()) / labels.length : 0;
}

export class ChanceWatch {
  private readonly recent: Evaluation[] = [];

  constructor(private readonly opts: DivergenceOptions, readonly chance: number, private readonly classes: number) {}

  /** Take one evaluation; a description of the divergence when the rule holds now (then the window starts over), else null. */
  judge(e: Evaluation): string | null {
    if (this.opts.action === 'off' || e.iteration === 0) return null;
    this.recent.push(e);
    if (this.recent.length > this.opts.evaluations) this.recent.shift();
    if (this.recent.length < this.opts.evaluations) return null;
    const first = this.recent[0];
    const saturated = SATURATED * Math.log(this.classes);
    const atChance = this.recent.every((r) => r.valAccuracy <= this.chance + CHANCE_MARGIN && !(r.valLoss <= saturated));
    const noProgress = !(e.valLoss < first.valLoss); // NaN loss is no progress either
    if (!atChance || !noProgress) return null;
    const found = `validation accuracy stayed at chance (${fmt(e.valAccuracy)}; chance ${fmt(this.chance)}) for ${this.recent.length} evaluations, iterations ${first.iteration}–${e.iteration}, with a validation loss that did not fall (${fmt(first.valLoss)} → ${fmt(e.valLoss)}; a model that learned nothing yet scores ${fmt(Math.log(this.classes))})`;
    this.recent.length = 0; // a warning (action warn) comes once per window, not at every evaluation after it
    return found;
  }
}

/** What to lower: the base rate, and the largest multiplier when it is above 1. */
export function divergenceAdvice(lr: number, layers: LayerRule[]): string {
  const top = layers.reduce<LayerRule | null>((a, r) => (r.lrMult > (a?.lrMult ?? 1) ? r : a), null);
  const mult = top ? ` or the largest multiplier (lrMult ${top.lrMult} on "${top.match}")` : '';
  return `the steps are too large: lower optimizer.lr (now ${lr})${mult}; train.divergence.action: warn lets such a run go on`;
}

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toFixed(3) : String(x);
}
