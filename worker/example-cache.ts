// The worker's copy of the examples it has been sent, per split, laid out
// exactly like a Dataset (slot i holds example i), so batches are built by
// the same code the single-process trainer uses.
import { Dataset } from '../core/data/dataset';
import { WireInvalid } from '../core/errors';
import { Examples } from '../proto/gen/tunefleet/v1/tunefleet';

export class ExampleCache {
  readonly ds: Dataset;
  private readonly have: Uint8Array;
  private readonly size: number;

  constructor(n: number, shape: [number, number, number]) {
    this.size = shape[0] * shape[1] * shape[2];
    this.ds = { images: new Uint8Array(n * this.size), labels: new Int32Array(n), shape, numClasses: 0 };
    this.have = new Uint8Array(n);
  }

  add(msg: Examples): void {
    if (msg.images.length !== msg.indices.length * this.size || msg.labels.length !== msg.indices.length) {
      throw new WireInvalid(`Examples: ${msg.indices.length} indices, ${msg.labels.length} labels and ${msg.images.length} image bytes do not agree`, 'examples');
    }
    msg.indices.forEach((idx, k) => {
      if (idx >= this.have.length) throw new WireInvalid(`Examples: index ${idx} is outside the split (${this.have.length})`, 'examples');
      this.ds.images.set(msg.images.subarray(k * this.size, (k + 1) * this.size), idx * this.size);
      this.ds.labels[idx] = msg.labels[k];
      this.have[idx] = 1;
    });
  }

  /** Every example at `indices` has arrived. */
  holds(indices: ArrayLike<number>): boolean {
    for (let i = 0; i < indices.length; i++) if (!this.have[indices[i]]) return false;
    return true;
  }

  static full(ds: Dataset): ExampleCache {
    const c = new ExampleCache(ds.labels.length, ds.shape);
    c.ds.images.set(ds.images);
    c.ds.labels.set(ds.labels);
    c.have.fill(1);
    return c;
  }
}
