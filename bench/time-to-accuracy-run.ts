// One timed run for bench/time-to-accuracy.ts, in a process of its own: the
// fine-tune arm of examples/fashion-transfer.yaml (or the same with the
// cifar-cnn) from the pretrained model in runs/<preset>/pretrain (the parent
// makes sure it is there), in this
// process (`train`) or with N local worker processes (`local N`). Prints one
// JSON line: the curve, and the seconds from the spawn (BENCH_SPAWNED_AT) to
// the first step.
//
//     node dist/bench/time-to-accuracy-run.js train|local N ARCH SEED OUT
import { join } from 'node:path';
import { armJob, Experiment, loadExperiment } from '../core/job/experiment';
import { ModelName } from '../core/model/zoo';
import { JobConfig } from '../core/job/config';
import { EventBus } from '../core/observe/events';
import { train } from '../core/train/trainer';
import { runLocal } from '../cli/local';
import { quiet } from './report';

export const PRESET = join(__dirname, '..', '..', 'examples', 'fashion-transfer.yaml');
export const TARGET = 0.9;
/** Long enough for the fine-tune arm to reach TARGET (it does at 40–80 here); the fixed rate makes the curve up to then the same as with 300. */
export const ITERATIONS = 150;

/** The preset with its network swapped for `arch` (cifar-cnn: the compute-bound case), named apart so its pretrain stage is its own. */
export function presetFor(arch: ModelName): Experiment {
  const exp = loadExperiment(PRESET);
  if (arch === exp.job.model.arch) return exp;
  return { ...exp, job: { ...exp.job, name: `${exp.job.name}-${arch}`, model: { ...exp.job.model, arch } } };
}

export function timedJob(arch: ModelName, seed: number, out: string): JobConfig {
  const { job, compare } = presetFor(arch);
  const arm = compare.arms.find((a) => a.name === 'fine-tune')!;
  const cfg = armJob(job, arm, seed, join('runs', job.name, 'pretrain', 'model'), out);
  return {
    ...quiet(cfg),
    train: { ...cfg.train, iterations: ITERATIONS, evalAtStart: false, checkpointEvery: ITERATIONS, targetAccuracy: TARGET },
  };
}

async function main(): Promise<void> {
  const [mode, ...rest] = process.argv.slice(2);
  const workers = mode === 'local' ? Number(rest.shift()) : 0;
  const [arch, seed, out] = [rest[0] as ModelName, Number(rest[1]), rest[2]];
  const events = new EventBus();
  let firstStep = NaN;
  events.subscribe((e) => { if (e.type === 'job.started') firstStep = Date.now(); });
  const cfg = timedJob(arch, seed, out);
  const { curve } = mode === 'local' ? await runLocal(cfg, workers, { events }) : await train(cfg, { events });
  const spawned = Number(process.env.BENCH_SPAWNED_AT ?? performance.timeOrigin);
  process.stdout.write(`${JSON.stringify({ curve, startupSeconds: (firstStep - spawned) / 1000 })}\n`);
}

if (require.main === module) main().catch((err) => { console.error(err); process.exit(1); });
