// What a checkpoint must share with the job that resumes it. Resuming is
// exact (every example once per epoch, bit-identical parameters) only if the
// epoch permutation, the batches and the parameters mean the same thing as
// when it was written: the same seed, global batch, training set and model,
// the same unfreezing schedule and the same frozen BatchNorm statistics.
// A checkpoint records these; resuming with any of them changed is refused,
// naming what differs, instead of silently breaking exactly-once (or failing
// later with a RangeError on a smaller dataset).
import { createHash } from 'node:crypto';
import { JobConfig } from './config';

export type Fingerprint = Record<string, string | number>;

export function fingerprint(cfg: JobConfig, trainExamples: number): Fingerprint {
  const { dataset, cifar100Labels, classes, limitPerClass, limitTotal, validation } = cfg.data;
  return {
    'seed': cfg.seed,
    'train.batchSize': cfg.train.batchSize,
    'train.batchPolicy': cfg.train.batchPolicy,
    'data (dataset and selection)': JSON.stringify({ dataset, cifar100Labels, classes, limitPerClass, limitTotal, validation }),
    'training examples': trainExamples,
    'model': shortHash(JSON.stringify(cfg.model)),
    // Which variables train at which iteration: a resume must continue the same schedule.
    'optimizer.unfreeze and headWarmup': JSON.stringify({ unfreeze: cfg.optimizer.unfreeze, headWarmup: cfg.optimizer.headWarmup }),
    // A frozen BatchNorm normalises with its statistics in training too: which are frozen changes what every step computes.
    'BatchNorm statistics frozen (freezeStats rules)': JSON.stringify(cfg.optimizer.layers.filter((r) => r.freezeStats).map((r) => r.match)),
  };
}

/** What differs between the fingerprint a checkpoint was written with and this job's, one phrase each; [] = resumable. */
export function differences(saved: Fingerprint | undefined, now: Fingerprint): string[] {
  // Checkpoints from before fingerprints carry only the seed.
  const recorded = saved ?? { seed: now.seed };
  return Object.keys(recorded).filter((k) => recorded[k] !== now[k]).map((k) => `${k}: ${recorded[k]} in the checkpoint, ${now[k]} now`);
}

function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 12);
}
