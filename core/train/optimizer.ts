// SGD with momentum, optional Nesterov, L2 weight decay and per-variable
// multipliers — pure functions over Float32Arrays, no tfjs, so the
// coordinator applies exactly the update the single-process trainer does.
//
// The update (PyTorch's form), for a variable w with gradient g, base rate lr,
// multipliers lr_mult and decay_mult, momentum μ and weight decay λ:
//
//     d = g + λ·decay_mult·w
//     v ← μ·v + d
//     w ← w − lr·lr_mult·v                 (plain)
//     w ← w − lr·lr_mult·(d + μ·v)         (Nesterov)
//
// Caffe's form puts the rate inside the buffer (v ← μ·v + lr·d; w ← w − v).
// The two agree while lr is constant; they differ when a schedule changes lr:
// Caffe's buffer still carries steps taken at the old rate. We use PyTorch's
// form because the reference numbers we reproduce (Fashion-MNIST 87.6%, the
// fine-tuning speed-ups) were measured in PyTorch with this update.
// lr_mult 0 (frozen) variables are never touched, and get no buffer.
import { isFrozen, Multipliers } from './lr-rules';
import { Tensors } from '../util/tensors';

export interface SgdOptions {
  momentum: number;
  nesterov: boolean;
  weightDecay: number;
}

/** One in-place update of `w` and its momentum buffer `v`; `lr` already includes lr_mult. */
export function sgdUpdate(w: Float32Array, g: Float32Array, v: Float32Array, lr: number, decay: number, o: SgdOptions): void {
  const mu = o.momentum;
  for (let i = 0; i < w.length; i++) {
    const d = g[i] + decay * w[i];
    const vi = mu * v[i] + d;
    v[i] = vi;
    w[i] -= lr * (o.nesterov ? d + mu * vi : vi);
  }
}

export class Sgd {
  /** Momentum buffers by variable name; created on first use. */
  readonly velocity: Tensors = new Map();

  constructor(readonly options: SgdOptions, readonly multipliers: Map<string, Multipliers>) {}

  /** Apply one step to `params` in place, given averaged `grads` and this step's base learning rate. */
  step(params: Tensors, grads: Tensors, lr: number): void {
    for (const [name, g] of grads) {
      const m = this.multipliers.get(name) ?? { lrMult: 1, decayMult: 1 };
      if (isFrozen(m)) continue;
      const w = params.get(name);
      if (!w || w.length !== g.length) throw new Error(`gradient for ${name} does not match a parameter of ${g.length} values`);
      let v = this.velocity.get(name);
      if (!v) this.velocity.set(name, (v = new Float32Array(w.length)));
      sgdUpdate(w, g, v, lr * m.lrMult, this.options.weightDecay * m.decayMult, this.options);
    }
  }
}
