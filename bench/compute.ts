// Section 1 of `npm run bench`: training examples/s of each zoo model on each
// backend that loads here, batch 64 (8 on the slow pure-JS cpu backend), measured in this process.
import * as tf from '@tensorflow/tfjs';
import { BACKENDS, initBackend } from '../core/backend/backends';
import { Batch, computeGradients } from '../core/train/gradients';
import { paramSpecs } from '../core/model/params';
import { buildModel } from '../core/model/zoo';
import { rng } from '../core/util/rng';
import { medianMs } from './report';

/** The zoo models the benches time, with their input shapes. */
export const MODELS: [string, [number, number, number]][] = [['seed-cnn', [28, 28, 1]], ['cifar-cnn', [32, 32, 3]], ['mobilenet-small', [32, 32, 3]]];

/** A deterministic batch of `n` examples of `shape` (compute is what is timed, not data). */
export function syntheticBatch(n: number, shape: [number, number, number]): Batch {
  const size = shape[0] * shape[1] * shape[2];
  return { x: Float32Array.from({ length: n * size }, (_, i) => Math.sin(i)), y: Int32Array.from({ length: n }, (_, i) => i % 10), shape };
}

/**
 * Uniform random inputs in [-1, 1): no two inputs of a pooling window tie, so
 * MaxPoolGrad (first maximum on cpu and wasm, last on webgpu) routes the same
 * way on every backend and their gradients can be compared.
 */
export function tieFreeBatch(n: number, shape: [number, number, number], seed: number): Batch {
  const random = rng(seed);
  return { x: Float32Array.from({ length: n * shape[0] * shape[1] * shape[2] }, () => random() * 2 - 1), y: Int32Array.from({ length: n }, () => Math.floor(random() * 10)), shape };
}

export interface ComputeRow { backend: string; model: string; examplesPerSec: number | null; note: string }

export async function benchCompute(batch = 64): Promise<ComputeRow[]> {
  const rows: ComputeRow[] = [];
  for (const backend of BACKENDS) {
    try {
      await initBackend(backend);
    } catch (err) {
      for (const [model] of MODELS) rows.push({ backend, model, examplesPerSec: null, note: `not available: ${(err as Error).message.slice(0, 60)}` });
      continue;
    }
    // The pure-JS cpu backend is ~100x slower: one short batch, no warm-up.
    const slow = backend === 'cpu';
    const n = slow ? 8 : batch;
    for (const [name, shape] of MODELS) {
      const model = buildModel(name, shape, 10, 1);
      const names = paramSpecs(model).map((s) => s.name);
      const b = syntheticBatch(n, shape);
      const ms = await medianMs(() => computeGradients(model, names, b), slow ? 1 : 5, slow ? 0 : 1);
      rows.push({ backend, model: name, examplesPerSec: (n * 1000) / ms, note: slow ? 'batch 8, one step' : '' });
      model.dispose();
    }
  }
  await tf.setBackend('wasm');
  return rows;
}
