// Section 5: float16 gradients on the default fine-tuning preset
// (examples/fashion-transfer.yaml, its fine-tune arm, 2 local workers): the
// same runs with float32 and with float16 gradients, per seed — gradient
// bytes per step and final validation accuracy.
import { join } from 'node:path';
import { JobConfig } from '../core/job/config';
import { armJob, loadExperiment } from '../core/job/experiment';
import { median } from '../core/util/numbers';
import { ensurePretrained } from '../core/job/stages';
import { runLocal } from '../cli/local';
import { quiet, tempDirBench } from './report';

const PRESET = join(__dirname, '..', '..', 'examples', 'fashion-transfer.yaml');

export interface Fp16Row { dtype: 'float32' | 'float16'; seed: number; gradientBytesPerStep: number; finalAccuracy: number }

export async function benchFp16(workers = 2): Promise<{ rows: Fp16Row[]; bytesRatio: number; accuracyDiffPoints: number }> {
  const { job, compare } = loadExperiment(PRESET);
  const run = (cfg: JobConfig) => runLocal(quiet(cfg), workers);
  // The same folder as `npm start`, so a pretrained model from it is reused.
  const pretrained = (await ensurePretrained(job, run, { outDir: join('runs', job.name, 'pretrain') })).model;
  const arm = compare.arms.find((a) => a.name === 'fine-tune')!;
  const out = tempDirBench();
  const rows: Fp16Row[] = [];
  for (const dtype of ['float32', 'float16'] as const) {
    for (const seed of compare.seeds) {
      const cfg = armJob(job, arm, seed, pretrained, out);
      const result = await run({ ...cfg, name: `${cfg.name}-${dtype}`, cluster: { ...cfg.cluster, gradientDtype: dtype }, train: { ...cfg.train, outDir: join(out, dtype, String(seed)) } });
      rows.push({ dtype, seed, gradientBytesPerStep: result.cluster.traffic.gradientBytes / cfg.train.iterations, finalAccuracy: result.curve[result.curve.length - 1].valAccuracy });
    }
  }
  const med = (dtype: string, f: (r: Fp16Row) => number) => median(rows.filter((r) => r.dtype === dtype).map(f));
  return {
    rows,
    bytesRatio: med('float16', (r) => r.gradientBytesPerStep) / med('float32', (r) => r.gradientBytesPerStep),
    accuracyDiffPoints: 100 * (med('float16', (r) => r.finalAccuracy) - med('float32', (r) => r.finalAccuracy)),
  };
}
