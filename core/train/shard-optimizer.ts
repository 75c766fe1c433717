// What a parameter shard computes for its pieces (partition.ts), with the
// very functions the coordinator uses on whole variables: the example-
// weighted mean (aggregator.ts, float64 sums) and the SGD update
// (optimizer.ts's sgdUpdate), elementwise with the piece's variable's
// lr_mult and decay_mult. Both are elementwise, so the result for every
// element is the same however the model is cut: a run with shards ends
// bit-identical to one without (test/shard-optimizer.test.ts).
import { GradientAverager } from './aggregator';
import { isFrozen, Multipliers } from './lr-rules';
import { sgdUpdate, SgdOptions } from './optimizer';
import { Tensors } from '../util/tensors';
import { sumOfSquares } from './spike-guard';
import { Piece, pieceName } from './partition';
import { ParamSpec } from '../model/params';

export class ShardOptimizer {
  /** Every piece's values, by piece name: this shard's part of the master copy. */
  readonly params: Tensors = new Map();
  /** Momentum buffers of the trainable pieces. */
  readonly velocity: Tensors = new Map();
  /** The trainable pieces, for gradient uploads (by piece name). */
  readonly trainable: ParamSpec[] = [];
  private readonly averager: GradientAverager;
  private readonly rates = new Map<string, Multipliers>();
  private mean: Tensors | null = null;

  constructor(pieces: Piece[], variables: ParamSpec[], multipliers: Map<string, Multipliers>, private readonly sgd: SgdOptions) {
    pieces.forEach((piece, i) => {
      const name = pieceName(i);
      const m = multipliers.get(variables[piece.variable].name) ?? { lrMult: 1, decayMult: 1 };
      this.params.set(name, new Float32Array(piece.count));
      if (isFrozen(m)) return;
      this.rates.set(name, m);
      this.velocity.set(name, new Float32Array(piece.count));
      this.trainable.push({ name, shape: [piece.count] });
    });
    this.averager = new GradientAverager(this.trainable);
  }

  /** One worker's gradients for the trainable pieces, over `examples` examples. */
  fold(grads: Tensors, examples: number): void {
    this.averager.add(grads, examples, 0);
  }

  /** Close the step's mean; returns its Σ g² (the coordinator adds the shards' up for the step's gradient norm). */
  average(): number {
    this.mean = this.averager.take().grads;
    let squares = 0;
    for (const g of this.mean.values()) squares += sumOfSquares(g);
    return squares;
  }

  /** Apply the SGD step with the mean average() closed and base rate `lr` (the schedule's, as the coordinator's Sgd.step gets it). */
  apply(lr: number): void {
    if (!this.mean) throw new Error('apply() without a mean: average() first');
    for (const [name, g] of this.mean) {
      const m = this.rates.get(name)!;
      sgdUpdate(this.params.get(name)!, g, this.velocity.get(name)!, lr * m.lrMult, this.sgd.weightDecay * m.decayMult, this.sgd);
    }
    this.mean = null;
  }
}
