// The aggregator averages gradients: each contribution is a worker's mean
// gradient over its slice, weighted by the slice's example count, so the
// result is the mean over the whole global batch however it was split:
//
//     ḡ = Σᵢ nᵢ·gᵢ / Σᵢ nᵢ
//
// Sums are kept in float64 so the order in which workers report does not
// change the result beyond float32 rounding of the final mean.
import { Tensors } from '../util/tensors';
import { ParamSpec } from '../model/params';
import { product } from '../util/numbers';

export class GradientAverager {
  private readonly sums = new Map<string, Float64Array>();
  private examples = 0;
  private lossSum = 0;

  constructor(specs: ParamSpec[]) {
    for (const s of specs) this.sums.set(s.name, new Float64Array(product(s.shape)));
  }

  /** Add one worker's mean gradients (and mean loss) over `examples` examples. */
  add(grads: Tensors, examples: number, loss: number): void {
    for (const [name, sum] of this.sums) {
      const g = grads.get(name);
      if (!g || g.length !== sum.length) throw new Error(`contribution lacks ${name} or has the wrong size`);
      for (let i = 0; i < g.length; i++) sum[i] += examples * g[i];
    }
    this.examples += examples;
    this.lossSum += examples * loss;
  }

  get count(): number {
    return this.examples;
  }

  /** The weighted means; the averager is then empty again. */
  take(): { loss: number; grads: Tensors } {
    if (this.examples === 0) throw new Error('no gradients to average');
    const grads: Tensors = new Map();
    for (const [name, sum] of this.sums) {
      // A plain loop: TypedArray.from(iterable, fn) first collects every value
      // into a JS array, which runs out of heap at ~100M parameters.
      const mean = new Float32Array(sum.length);
      for (let i = 0; i < sum.length; i++) mean[i] = sum[i] / this.examples;
      grads.set(name, mean);
      sum.fill(0);
    }
    const loss = this.lossSum / this.examples;
    this.examples = 0;
    this.lossSum = 0;
    return { loss, grads };
  }
}
