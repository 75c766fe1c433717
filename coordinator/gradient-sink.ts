// Where a step's accepted gradients go, and how the step's mean is closed —
// the one thing that differs between a job with parameter shards and one
// without, so the step (step.ts) runs one way for both:
//
//   - LocalMean (cluster.shards = 0): the tensors come to the coordinator,
//     into each session's uploads (core/wire/uploads.ts), and accepted ones are
//     added to the example-weighted mean (core/train/aggregator.ts); the
//     training loop then applies the SGD update to the master copy.
//   - ShardedMean (cluster.shards = k): the tensors go to the shards; a claim
//     is each shard's Σ g² for the upload, checked against the worker's own
//     count (shard-set.ts), accepting one tells every shard to fold it, and
//     closing the mean asks the shards, which then apply the update.
import { StepDone } from '../proto/gen/tunefleet/v1/tunefleet';
import { GradientAverager } from '../core/train/aggregator';
import { Tensors } from '../core/util/tensors';
import { WorkerSession } from './session';
import { ShardSet } from './shard-set';

/** An upload a StepDone claimed: its Σ g² (NaN/Inf: a non-finite gradient), its tensors (none with shards), and what to do once it is taken. */
export interface Claim {
  squares: number;
  grads: Tensors;
  /** The claim has been folded or refused: its buffers may be reused. */
  release(): void;
}

export interface GradientSink {
  /** Complete uploads of worker `w` not yet claimed by a StepDone. */
  ready(w: string): number;
  /** Claim `w`'s oldest complete upload for `done`; null when the claim failed on the sink's side (a shard was dropped for it: nobody here is to blame). */
  claim(w: string, done: StepDone): Claim | null;
  /** Fold an accepted slice of `examples` examples into the step's mean. */
  fold(w: string, examples: number, done: StepDone, grads: Tensors): void;
  /** Close the step's mean: its loss, its gradients (none with shards), and with shards their Σ g². */
  close(step: number): Promise<{ loss: number; grads: Tensors; squares?: number }>;
}

export class LocalMean implements GradientSink {
  constructor(private readonly averager: GradientAverager, private readonly session: (w: string) => WorkerSession) {}

  ready(w: string): number {
    return this.session(w).uploads.ready;
  }

  claim(w: string): Claim {
    const uploads = this.session(w).uploads;
    const upload = uploads.take()!;
    return { squares: upload.squares, grads: upload.assembler.tensors, release: () => uploads.recycle(upload) };
  }

  fold(_w: string, examples: number, done: StepDone, grads: Tensors): void {
    this.averager.add(grads, examples, done.loss);
  }

  async close(): Promise<{ loss: number; grads: Tensors }> {
    return this.averager.take();
  }
}

export class ShardedMean implements GradientSink {
  constructor(private readonly shards: ShardSet) {}

  ready(w: string): number {
    return this.shards.uploadsReady(w);
  }

  claim(w: string, done: StepDone): Claim | null {
    const squares = this.shards.takeUpload(w, done.shardSquares);
    return squares === null ? null : { squares, grads: new Map(), release: () => {} };
  }

  fold(w: string, examples: number, done: StepDone): void {
    this.shards.fold(w, examples, done.shardSquares, done.loss);
  }

  async close(step: number): Promise<{ loss: number; grads: Tensors; squares: number }> {
    return { ...(await this.shards.average(step)), grads: new Map() };
  }
}
