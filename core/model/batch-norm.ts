// BatchNorm in data-parallel training. In training a BatchNorm layer
// normalises with its batch's statistics, so what it has learnt is only γ and
// β; its moving statistics matter at evaluation and in the saved model. tfjs
// updates them as a moving average on every training forward pass, but in a
// distributed job those passes happen on the workers, each on its own slice,
// and nobody averages what they did. So tunefleet never relies on them:
// - estimated statistics (the default) are computed afresh, before every
//   evaluation and checkpoint, from a fixed set of training examples at the
//   current weights (PreciseBN, Wu & Johnson 2021: "Rethinking BatchNorm"): the
//   coordinator for its checkpoints, each worker for its evaluation slices,
//   all from the same examples in the same batches, so every process gets the
//   same values (a run with k shards ends bit-identical to one with 0; with N
//   workers each normalises its own slice in training, as DDP without SyncBN);
// - frozen statistics (a layer rule's freezeStats) are kept as they are —
//   pretrained — and the layer normalises with them in training too, so the
//   step no longer depends on how the batch is split: the usual way to
//   fine-tune on small batches (Detectron's FrozenBatchNorm).
import * as tf from '@tensorflow/tfjs';
import { Dataset, Normalization } from '../data/dataset';
import { Batch, makeBatch } from '../train/gradients';
import { writeParams } from './params';
import { permutation } from '../util/rng';
import { Tensors } from '../util/tensors';

/** The training examples statistics are estimated from: `count` of `n`, one seeded choice for the whole job (the coordinator sends them with every evaluation). */
export function statisticsIndices(n: number, count: number, seed: number): Uint32Array {
  return permutation(n, seed + 0x5eed).slice(0, Math.min(n, count)); // not the sampler's epoch-0 order
}

/** The examples of `ds` at `indices` in consecutive batches of at most `size` (train.batchSize: what BatchNorm sees in training). */
export function statisticsBatches(ds: Dataset, indices: Uint32Array, size: number, norm: Normalization): Batch[] {
  return Array.from({ length: Math.ceil(indices.length / size) }, (_, i) => makeBatch(ds, indices.subarray(i * size, (i + 1) * size), norm));
}

export const isBatchNorm = (layer: tf.layers.Layer) => layer.getClassName() === 'BatchNormalization';

/** The names of `model`'s BatchNorm layers, in order. */
export function batchNormLayers(model: tf.LayersModel): string[] {
  return model.layers.filter(isBatchNorm).map((l) => l.name);
}

type Call = tf.layers.Layer['call'];

/** One layer's running sums, per channel: of the batch means and mean squares, each × its count of values. */
interface Sums {
  mean: Float64Array | null;
  square: Float64Array | null;
  count: number;
}

/** Run `layer` with `call` in place of its own; returns what puts its own back. */
function replaceCall(layer: tf.layers.Layer, call: (own: Call) => Call): () => void {
  const own = layer.call;
  layer.call = call(own.bind(layer));
  return () => { layer.call = own; };
}

/** The BatchNorm layers named in `layers` normalise with their moving statistics even in training, and never update them. */
export function freezeStatistics(model: tf.LayersModel, layers: string[]): void {
  for (const name of layers) replaceCall(model.getLayer(name), (own) => (inputs, kwargs) => own(inputs, { ...kwargs, training: false }));
}

/**
 * Estimate the moving statistics of `model`'s BatchNorm layers other than
 * `frozen` over `batches` (in training mode, so each layer sees the inputs it
 * sees in training) and write them into the model: each channel's mean and
 * (biased, as in training) variance over every example's every position.
 * Returns the values written, by variable name. Accumulated in float64; read
 * back asynchronously (a GPU backend has no synchronous read in Node).
 */
export async function estimateStatistics(model: tf.LayersModel, batches: Batch[], frozen: string[]): Promise<Tensors> {
  const layers = model.layers.filter((l) => isBatchNorm(l) && !frozen.includes(l.name));
  if (layers.length === 0 || batches.length === 0) return new Map();
  const sums: Sums[] = layers.map(() => ({ mean: null, square: null, count: 0 }));
  let seen: { layer: number; mean: tf.Tensor; square: tf.Tensor; count: number }[] = [];
  const restore = layers.map((layer, i) => replaceCall(layer, (own) => (inputs, kwargs) => {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    const axes = x.shape.slice(0, -1).map((_, a) => a); // every axis but the channels'
    seen.push({ layer: i, mean: tf.keep(tf.mean(x, axes)), square: tf.keep(tf.mean(tf.square(x), axes)), count: x.size / x.shape[x.shape.length - 1] });
    return own(inputs, { ...kwargs, training: true });
  }));
  try {
    for (const b of batches) {
      tf.tidy(() => { model.apply(tf.tensor4d(b.x, [b.y.length, ...b.shape]), { training: true }); });
      const taken = seen;
      seen = [];
      try {
        for (const s of taken) accumulate(sums[s.layer], (await s.mean.data()) as Float32Array, (await s.square.data()) as Float32Array, s.count);
      } finally {
        tf.dispose(taken.flatMap((s) => [s.mean, s.square]));
      }
    }
  } finally {
    for (const put of restore) put();
    tf.dispose(seen.flatMap((s) => [s.mean, s.square])); // a failed forward pass leaves these
  }
  return writeStatistics(model, layers, sums);
}

function accumulate(sum: Sums, mean: Float32Array, square: Float32Array, count: number): void {
  sum.mean ??= new Float64Array(mean.length);
  sum.square ??= new Float64Array(mean.length);
  for (let c = 0; c < mean.length; c++) { sum.mean[c] += mean[c] * count; sum.square[c] += square[c] * count; }
  sum.count += count;
}

/** Each layer's mean and variance from its sums, written into the model. */
function writeStatistics(model: tf.LayersModel, layers: tf.layers.Layer[], sums: Sums[]): Tensors {
  const out: Tensors = new Map();
  layers.forEach((layer, i) => {
    const { mean, square, count } = sums[i];
    if (!mean || !square) return; // not on the path of any batch (a branch the model does not use)
    const m = Float32Array.from(mean, (s) => s / count);
    const v = Float32Array.from(square, (s, c) => Math.max(0, s / count - (mean[c] / count) ** 2));
    out.set(`${layer.name}/moving_mean`, m);
    out.set(`${layer.name}/moving_variance`, v);
  });
  writeParams(model, out);
  return out;
}
