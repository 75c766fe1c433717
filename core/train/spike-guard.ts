// A guard against a poisoned or spiking gradient (train.spikeGuard). One
// finite but absurd gradient (all values 3e38, from a broken GPU or a hostile
// worker that has the token) can wreck a model in a single SGD step, and no
// wire check catches it: it is well-formed. Large-scale training guards
// against this by comparing a gradient's L2 norm with its recent history:
//
// - the step: an averaged gradient whose norm is over `factor` × the median of
//   the last `window` applied steps is skipped (not applied; counted, and the
//   event step.skipped says so). Its examples still count as used.
// - a contribution (distributed, with three or more live workers): one
//   worker's gradient whose norm is over `factor` × the median of recent
//   contributions is rejected like a bad message (reason `outlier`) and its
//   slice computed by another worker, so one bad worker cannot move the mean.
//
// Spikes do not enter the history (a run of them must not raise the bar), and
// the guard only judges after `warmup` norms, while early training settles.
// The history starts afresh after a resume.
import { median } from '../util/numbers';

export interface SpikeGuardConfig {
  factor: number | null; // null: off
  window: number;
  warmup: number;
}

export class NormHistory {
  private readonly recent: number[] = [];

  constructor(private readonly cfg: SpikeGuardConfig) {}

  get on(): boolean {
    return this.cfg.factor !== null;
  }

  /** Whether `norm` is a spike against the recent ones (NaN is); a norm that is not joins the history. */
  judge(norm: number): { spike: boolean; median: number } {
    const typical = median(this.recent);
    const { factor, window, warmup } = this.cfg;
    const spike = factor !== null && this.recent.length >= warmup && !(norm <= factor * typical);
    if (!spike) {
      this.recent.push(norm);
      if (this.recent.length > window) this.recent.shift();
    }
    return { spike, median: typical };
  }
}

/** Σ v², in float64; NaN or Inf when any value is not finite. */
export function sumOfSquares(values: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i] * values[i];
  return sum;
}

/** The L2 norm of a set of gradients, as one vector. */
export function l2Norm(grads: Iterable<Float32Array>): number {
  let sum = 0;
  for (const g of grads) sum += sumOfSquares(g);
  return Math.sqrt(sum);
}
