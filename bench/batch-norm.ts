// `npm run bench:batch-norm` (also in `npm run bench`): what model.batchNorm
// costs on wasm, against the same model without it, in this process: a
// training step of one worker's slice (batch 32), evaluating 1,000 examples,
// and estimating the statistics from train.statisticsExamples' default 512
// (core/model/batch-norm.ts), which every worker does before each evaluation.
// Writes bench/results/batch-norm.json and .md.
import { initBackend } from '../core/backend/backends';
import { estimateStatistics } from '../core/model/batch-norm';
import { buildModel } from '../core/model/zoo';
import { computeGradients, evaluate } from '../core/train/gradients';
import { jobSchema } from '../core/job/config';
import { MODELS, syntheticBatch } from './compute';
import { markdownTable, medianMs, writeBenchResult } from './report';

export interface BatchNormRow {
  model: string;
  stepMs: number;
  stepMsWithBatchNorm: number;
  evalMs: number;
  evalMsWithBatchNorm: number;
  /** Estimating the statistics from 512 examples in batches of 64. */
  estimateMs: number;
}

const STATISTICS_EXAMPLES = jobSchema.parse({}).train.statisticsExamples;

async function timings(name: string, shape: [number, number, number], batchNorm: boolean) {
  const model = buildModel(name, shape, 10, 1, 'same', batchNorm);
  const trainable = model.weights.filter((w) => w.trainable).map((w) => w.originalName);
  const slice = syntheticBatch(32, shape);
  const stepMs = await medianMs(() => computeGradients(model, trainable, slice), 7, 2);
  const val = syntheticBatch(500, shape);
  const evalMs = await medianMs(() => evaluate(model, 1000, 500, () => val), 3, 1);
  const batches = Array.from({ length: STATISTICS_EXAMPLES / 64 }, () => syntheticBatch(64, shape));
  const estimateMs = batchNorm ? await medianMs(() => estimateStatistics(model, batches, []), 3, 1) : 0;
  model.dispose();
  return { stepMs, evalMs, estimateMs };
}

export async function benchBatchNorm(): Promise<BatchNormRow[]> {
  await initBackend('wasm');
  const rows: BatchNormRow[] = [];
  for (const [name, shape] of MODELS.slice(0, 2)) {
    const plain = await timings(name, shape, false);
    const bn = await timings(name, shape, true);
    rows.push({ model: name, stepMs: plain.stepMs, stepMsWithBatchNorm: bn.stepMs, evalMs: plain.evalMs, evalMsWithBatchNorm: bn.evalMs, estimateMs: bn.estimateMs });
  }
  return rows;
}

export function batchNormTable(rows: BatchNormRow[]): string {
  return markdownTable(
    ['model', 'step, batch 32: ms (with BatchNorm)', '× without', 'evaluate 1,000: ms (with)', '× without', `estimate from ${STATISTICS_EXAMPLES}: ms`, 'in steps with BatchNorm'],
    rows.map((r) => [
      r.model, `${r.stepMs.toFixed(1)} (${r.stepMsWithBatchNorm.toFixed(1)})`, `${(r.stepMsWithBatchNorm / r.stepMs).toFixed(2)}×`,
      `${r.evalMs.toFixed(0)} (${r.evalMsWithBatchNorm.toFixed(0)})`, `${(r.evalMsWithBatchNorm / r.evalMs).toFixed(2)}×`,
      r.estimateMs.toFixed(0), (r.estimateMs / r.stepMsWithBatchNorm).toFixed(1),
    ]),
  );
}

if (require.main === module) {
  benchBatchNorm().then((rows) => writeBenchResult('batch-norm', { rows }, batchNormTable(rows))).catch((err) => { console.error(err); process.exit(1); });
}
