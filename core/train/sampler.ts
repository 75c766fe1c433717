// The sampler: which training examples each step uses.
//
// Each epoch is a seeded permutation of the training set (seed + epoch), so
// the order is the same on every run and machine. Steps take consecutive
// slices of it. Policy for the last, partial batch of an epoch: the batch is
// completed from the start of the next epoch's permutation (Caffe's data
// layer does the same). Every batch is full, every example is used exactly
// once per epoch, and no example is duplicated to pad an epoch out.
import { permutation } from '../util/rng';

export interface SamplerPosition {
  epoch: number;
  offset: number; // examples of this epoch already handed out
}

export class Sampler {
  private order: Uint32Array;

  constructor(readonly size: number, readonly seed: number, private pos: SamplerPosition = { epoch: 0, offset: 0 }) {
    this.order = permutation(size, seed + pos.epoch);
  }

  get position(): SamplerPosition {
    return { ...this.pos };
  }

  /** The next `n` example indices and the epoch each belongs to, crossing into the next epoch if needed. */
  next(n: number): { indices: Uint32Array; epochs: Uint32Array } {
    const indices = new Uint32Array(n);
    const epochs = new Uint32Array(n);
    for (let filled = 0; filled < n;) {
      if (this.pos.offset === this.size) {
        this.pos = { epoch: this.pos.epoch + 1, offset: 0 };
        this.order = permutation(this.size, this.seed + this.pos.epoch);
      }
      const take = Math.min(n - filled, this.size - this.pos.offset);
      indices.set(this.order.subarray(this.pos.offset, this.pos.offset + take), filled);
      epochs.fill(this.pos.epoch, filled, filled + take);
      filled += take;
      this.pos.offset += take;
    }
    return { indices, epochs };
  }
}

/** Split a global batch into `n` contiguous slices whose sizes differ by at most one. */
export function shard(indices: Uint32Array, n: number): Uint32Array[] {
  const base = Math.floor(indices.length / n), extra = indices.length % n;
  const slices: Uint32Array[] = [];
  for (let i = 0, at = 0; i < n; i++) {
    const size = base + (i < extra ? 1 : 0);
    slices.push(indices.subarray(at, at + size));
    at += size;
  }
  return slices;
}
