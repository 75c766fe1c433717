// What a step looks like when the worker count changes mid-job
// (train.batchPolicy):
// - 'global' (default): the global batch stays train.batchSize, split over
//   whoever is live; the learning rate is untouched. Training is the same
//   computation at any worker count, only faster or slower.
// - 'per-worker': each live worker takes train.batchSize examples, so the
//   global batch is batchSize × live, and the learning rate follows the
//   linear scaling rule (Goyal et al., 2017): × live ÷ cluster.workers, the
//   planned count the base rate was set for. A change is ramped linearly over
//   train.scaleWarmup iterations rather than applied at once, so a jump in
//   batch size does not destabilise training.

export interface BatchPolicyConfig {
  policy: 'global' | 'per-worker';
  batchSize: number;
  plannedWorkers: number;
  warmup: number;
}

export class BatchScaler {
  private from = 1;
  private to = 1;
  private since = 0;

  constructor(private readonly cfg: BatchPolicyConfig) {}

  /** The global batch size and learning-rate factor for iteration `it` with `live` workers. */
  at(it: number, live: number): { batchSize: number; lrFactor: number } {
    const { policy, batchSize, plannedWorkers } = this.cfg;
    if (policy === 'global') return { batchSize, lrFactor: 1 };
    // With no worker live (every one lost between steps) the step waits for
    // the first to join, so it is sized for one.
    live = Math.max(1, live);
    const target = live / plannedWorkers;
    if (target !== this.to) {
      this.from = this.factor(it);
      this.to = target;
      this.since = it;
    }
    return { batchSize: batchSize * live, lrFactor: this.factor(it) };
  }

  private factor(it: number): number {
    const { warmup } = this.cfg;
    if (warmup === 0 || it - this.since >= warmup) return this.to;
    return this.from + ((this.to - this.from) * (it - this.since)) / warmup;
  }
}
