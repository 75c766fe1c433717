// The single-process trainer, `tunefleet train`: the shared training loop
// with gradients and evaluations computed in this process — by the very
// functions a worker calls, so distributed runs can be checked against it.
import { JobConfig } from '../job/config';
import { count } from '../data/dataset';
import { computeGradients, evaluateRange, makeBatch } from './gradients';
import { EventBus } from '../observe/events';
import { setupJob } from '../job/setup';
import { writeParams } from '../model/params';
import { Tensors } from '../util/tensors';
import { Compute, runTraining, StageOptions, throughReleases, TrainResult } from './loop';

export async function train(cfg: JobConfig, opts: { resume?: boolean; events?: EventBus } = {}): Promise<TrainResult> {
  const events = opts.events ?? new EventBus();
  return throughReleases((resume, carried) => trainStage(cfg, resume, events, carried), opts.resume ?? false);
}

/** One stage of the job (all of it, without optimizer.unfreeze). */
async function trainStage(cfg: JobConfig, resume: boolean, events: EventBus, carried: StageOptions): Promise<TrainResult> {
  const job = await setupJob(cfg, resume, events);
  const { model, trainable, data } = job;
  const allVal = Uint32Array.from({ length: count(data.val) }, (_, i) => i);
  const local: Compute = {
    gradients: async (_step, indices) => {
      const start = performance.now();
      const result = await computeGradients(model, trainable, makeBatch(data.train, indices, data.norm));
      return { ...result, phases: { compute: (performance.now() - start) / 1000 } };
    },
    evaluate: async () => {
      await job.estimateStatistics(); // as a worker does before its evaluation slices
      return evaluateRange(model, data.val, allVal, data.norm);
    },
    paramsChanged: (params: Tensors) => writeParams(model, new Map(trainable.map((n) => [n, params.get(n)!]))),
  };
  try {
    return await runTraining(job, local, carried);
  } finally {
    await job.close();
  }
}
