// The device check for a machine with a GPU (bench/gpu-check.sh packs it into
// one folder and runs it there): in one process, on webgpu and on wasm, the
// training examples/s of the seed CNN and the CIFAR CNN at each batch size;
// every gradient of both models against the cpu backend's; tensors and GPU
// bytes over 50 webgpu steps. A markdown table, then one JSON line, on
// stdout; the JSON also to --out FILE.
//   node dist/bench/gpu-check.js [--batches 64,512] [--steps 3] [--out FILE]
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../core/backend/backends';
import { webgpuAdapter } from '../core/backend/webgpu';
import { maxRelativeDiff, paramSpecs } from '../core/model/params';
import { buildModel } from '../core/model/zoo';
import { computeGradients } from '../core/train/gradients';
import { MODELS as ZOO, tieFreeBatch } from './compute';
import { markdownTable, medianMs } from './report';

const MODELS = ZOO.filter(([name]) => name !== 'mobilenet-small'); // 18k parameters: too small to tell a GPU's speed
const TOLERANCE = 1e-4; // doctor's: a backend whose gradients differ more is broken
const MEMORY_STEPS = 50;

async function onBackend<T>(backend: string, name: string, shape: [number, number, number], run: (model: tf.LayersModel, names: string[]) => Promise<T>): Promise<T> {
  await tf.setBackend(backend);
  const model = buildModel(name, shape, 10, 7);
  try {
    return await run(model, paramSpecs(model).map((s) => s.name));
  } finally {
    model.dispose();
  }
}

/** Training examples/s: the median of `steps` steps after one warm-up (shader compiles, pool growth). */
function examplesPerSec(backend: string, name: string, shape: [number, number, number], batch: number, steps: number): Promise<number> {
  const b = tieFreeBatch(batch, shape, 1);
  return onBackend(backend, name, shape, async (model, names) => (batch * 1000) / (await medianMs(() => computeGradients(model, names, b), steps, 1)));
}

async function gradientDiff(name: string, shape: [number, number, number]): Promise<{ model: string; maxRelativeDiff: number; lossDiff: number; ok: boolean }> {
  const b = tieFreeBatch(name === 'cifar-cnn' ? 2 : 4, shape, 3); // the pure-JS cpu backend is slow on cifar-cnn
  const cpu = await onBackend('cpu', name, shape, (m, n) => computeGradients(m, n, b));
  const gpu = await onBackend('webgpu', name, shape, (m, n) => computeGradients(m, n, b));
  const diff = maxRelativeDiff(gpu.grads, cpu.grads);
  const lossDiff = Math.abs(gpu.loss - cpu.loss) / cpu.loss;
  return { model: name, maxRelativeDiff: diff, lossDiff, ok: diff <= TOLERANCE && lossDiff <= TOLERANCE };
}

/** Tensor count and GPU bytes after one step and after 50 more: a leak shows as growth. */
function memory(batch: number) {
  const b = tieFreeBatch(batch, [28, 28, 1], 4);
  return onBackend('webgpu', 'seed-cnn', [28, 28, 1], async (model, names) => {
    const read = () => tf.memory() as tf.MemoryInfo & { numBytesInGPU: number };
    await computeGradients(model, names, b);
    const before = read();
    for (let i = 0; i < MEMORY_STEPS; i++) await computeGradients(model, names, b);
    const after = read();
    return { steps: MEMORY_STEPS, batch, tensors: [before.numTensors, after.numTensors], gpuBytes: [before.numBytesInGPU, after.numBytesInGPU], flat: after.numTensors === before.numTensors && after.numBytesInGPU === before.numBytesInGPU };
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { batches: { type: 'string', default: '64,512' }, steps: { type: 'string', default: '3' }, out: { type: 'string' } } });
  const batches = values.batches.split(',').map(Number);
  const steps = Number(values.steps);
  const started = performance.now();
  await initBackend('webgpu'); // named: a software adapter is taken too, and the table says which it was
  const adapter = webgpuAdapter()!;
  await initBackend('wasm');
  await initBackend('cpu');
  const speed = [];
  for (const [name, shape] of MODELS) {
    for (const batch of batches) {
      const webgpu = await examplesPerSec('webgpu', name, shape, batch, steps);
      const wasm = await examplesPerSec('wasm', name, shape, batch, steps);
      speed.push({ model: name, batch, webgpu, wasm, ratio: webgpu / wasm });
    }
  }
  const gradients = [];
  for (const [name, shape] of MODELS) gradients.push(await gradientDiff(name, shape));
  const mem = await memory(batches[0]);
  const result = { adapter, node: process.version, speed, gradients, memory: mem, seconds: (performance.now() - started) / 1000 };
  const round = (v: number) => Math.round(v * 10) / 10;
  process.stdout.write(`webgpu adapter: ${adapter.description} (${adapter.vendor}${adapter.software ? ', software' : ''})\n\n`);
  process.stdout.write(markdownTable(['model', 'batch', 'webgpu examples/s', 'wasm examples/s', 'webgpu / wasm'], speed.map((r) => [r.model, r.batch, round(r.webgpu), round(r.wasm), `${r.ratio.toPrecision(2)}×`])) + '\n\n');
  process.stdout.write(markdownTable(['model', 'gradients: max relative difference from cpu', 'loss', `within ${TOLERANCE}`], gradients.map((g) => [g.model, g.maxRelativeDiff.toExponential(1), g.lossDiff.toExponential(1), g.ok ? 'yes' : 'NO'])) + '\n\n');
  process.stdout.write(`memory over ${mem.steps} steps (seed-cnn, batch ${mem.batch}): tensors ${mem.tensors.join(' → ')}, GPU bytes ${mem.gpuBytes.join(' → ')}: ${mem.flat ? 'flat' : 'GROWS'}\n`);
  const json = JSON.stringify(result);
  if (values.out) writeFileSync(values.out, json + '\n');
  process.stdout.write(json + '\n');
  if (!gradients.every((g) => g.ok) || !mem.flat) process.exitCode = 1;
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).name}: ${(err as Error).message}\n`);
  process.exit(1);
});
