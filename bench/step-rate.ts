// One training rate, measured in a fresh process, for the PyTorch anchors
// (bench/anchors.ts). `node dist/bench/step-rate.js MODEL [WORKERS]` prints one
// JSON line {"model", "workers", "examples_per_sec"}:
// - WORKERS 0 (default): PyTorch's loop (bench/pytorch_anchor.py) done by
//   tunefleet on wasm in this process: gradients of a batch of 64 synthetic
//   examples, the SGD update, parameters written back; after warm-up steps.
// - WORKERS n: a real `tunefleet local` job with n worker processes (seed CNN,
//   Fashion-MNIST, global batch 64), in steady state as in bench/distribution.ts.
import { initBackend } from '../core/backend/backends';
import { computeGradients } from '../core/train/gradients';
import { Sgd } from '../core/train/optimizer';
import { readParams, writeParams } from '../core/model/params';
import { buildModel } from '../core/model/zoo';
import { runLocal } from '../cli/local';
import { MODELS, syntheticBatch } from './compute';
import { job, steadyRate } from './distribution';

const ANCHORED = ['seed-cnn', 'cifar-cnn']; // the models bench/pytorch_anchor.py builds
const WARMUP = 10;

async function oneProcess(model: string): Promise<number> {
  await initBackend('wasm');
  const shape = new Map(MODELS).get(model)!;
  const steps = model === 'seed-cnn' ? 300 : 30;
  const net = buildModel(model, shape, 10, 1);
  const params = await readParams(net);
  const names = [...params.keys()];
  const sgd = new Sgd({ momentum: 0.9, nesterov: false, weightDecay: 0 }, new Map());
  const batch = syntheticBatch(64, shape);
  let start = 0n;
  for (let i = 0; i < WARMUP + steps; i++) {
    if (i === WARMUP) start = process.hrtime.bigint();
    sgd.step(params, (await computeGradients(net, names, batch)).grads, 0.01);
    writeParams(net, params);
  }
  return (64 * steps) / (Number(process.hrtime.bigint() - start) / 1e9);
}

async function main(model: string, workers: number) {
  if (!ANCHORED.includes(model) || (workers > 0 && model !== 'seed-cnn')) throw new Error(`usage: step-rate.js seed-cnn|cifar-cnn [WORKERS] (WORKERS > 0: seed-cnn only)`);
  const rate = workers > 0 ? (await steadyRate((events) => runLocal(job(300), workers, { events }))).rate : await oneProcess(model);
  console.log(JSON.stringify({ model, workers, examples_per_sec: rate }));
}

if (require.main === module) {
  const [model = 'seed-cnn', workers = '0'] = process.argv.slice(2);
  main(model, Number(workers)).then(() => process.exit(0), (err) => { console.error(err); process.exit(1); });
}
