// What a worker computes: per-variable gradients of the mean cross-entropy
// over a batch, for the trainable (not frozen) variables only, keyed by stable
// name, and accuracy/loss over examples. The single-process trainer calls
// exactly these, so distributed runs can be checked against it.
import * as tf from '@tensorflow/tfjs';
import { batchImages, batchLabels, Dataset, Normalization } from '../data/dataset';
import { modelVariables } from '../model/params';
import { Tensors } from '../util/tensors';

const EPS = 1e-7; // Keras' clip, so log never sees 0 or 1

/** Mean categorical cross-entropy of softmax outputs against integer labels. */
export function crossEntropy(probs: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  const oneHot = tf.oneHot(labels, probs.shape[1]);
  return tf.neg(tf.mean(tf.sum(tf.mul(oneHot, tf.log(tf.clipByValue(probs, EPS, 1 - EPS))), -1))) as tf.Scalar;
}

export interface Batch {
  x: Float32Array; // [n, h, w, c]
  y: Int32Array;
  shape: [number, number, number];
}

export interface GradientResult {
  loss: number;
  grads: Tensors;
}

export async function computeGradients(model: tf.LayersModel, trainable: string[], batch: Batch): Promise<GradientResult> {
  const { loss, grads } = await streamGradients(model, trainable, batch);
  const out: [string, Float32Array][] = [];
  for await (const entry of grads) out.push(entry);
  return { loss, grads: new Map(out.reverse()) }; // back in the variables' order
}

/**
 * computeGradients, with each gradient read back from the backend only when
 * the caller asks for it, last layer first (the order backpropagation
 * produces them): a worker sends one while the next is still on the device.
 * Reads are asynchronous (`data()`), the only kind a GPU backend in Node
 * offers (webgpu's dataSync needs a browser's OffscreenCanvas). The caller
 * must run the generator to its end (or return() it, which a for-await loop
 * does when left early) so every gradient tensor is disposed; a read that
 * fails disposes them too.
 */
export async function streamGradients(model: tf.LayersModel, trainable: string[], batch: Batch): Promise<{ loss: number; grads: AsyncGenerator<[string, Float32Array]> }> {
  const vars = modelVariables(model);
  const varList = trainable.map((n) => vars.get(n)!.read() as tf.Variable);
  const { value, grads } = tf.tidy(() => {
    const x = tf.tensor4d(batch.x, [batch.y.length, ...batch.shape]);
    const y = tf.tensor1d(batch.y, 'int32');
    return tf.variableGrads(() => crossEntropy(model.apply(x, { training: true }) as tf.Tensor2D, y), varList);
  });
  const ordered = trainable.map((name, i) => [name, grads[varList[i].name]] as const).reverse();
  const disposeAll = () => tf.dispose(ordered.map(([, g]) => g).filter((g) => !g.isDisposed));
  let loss: number;
  try {
    loss = (await value.data())[0];
  } catch (err) {
    disposeAll();
    throw err;
  } finally {
    value.dispose();
  }
  async function* readBack(): AsyncGenerator<[string, Float32Array]> {
    try {
      for (const [name, g] of ordered) {
        const values = (await g.data()) as Float32Array;
        g.dispose();
        yield [name, values];
      }
    } finally {
      disposeAll();
    }
  }
  return { loss, grads: readBack() };
}

export interface EvalResult {
  correct: number;
  accuracy: number;
  loss: number;
  count: number;
}

/** Accuracy and mean loss over `n` examples delivered in batches by `batchAt`. */
export async function evaluate(model: tf.LayersModel, n: number, batchSize: number, batchAt: (start: number, end: number) => Batch): Promise<EvalResult> {
  let correct = 0, lossSum = 0;
  for (let start = 0; start < n; start += batchSize) {
    const b = batchAt(start, Math.min(n, start + batchSize));
    const [hits, loss] = tf.tidy(() => {
      const probs = model.predict(tf.tensor4d(b.x, [b.y.length, ...b.shape])) as tf.Tensor2D;
      const y = tf.tensor1d(b.y, 'int32');
      return [tf.sum(tf.cast(tf.equal(tf.argMax(probs, 1), y), 'int32')), crossEntropy(probs, y)];
    });
    try {
      const [c, l] = await Promise.all([hits.data(), loss.data()]);
      correct += c[0];
      lossSum += l[0] * b.y.length;
    } finally {
      tf.dispose([hits, loss]);
    }
  }
  return { correct, accuracy: n ? correct / n : 0, loss: n ? lossSum / n : 0, count: n };
}

export function makeBatch(ds: Dataset, indices: ArrayLike<number>, norm: Normalization): Batch {
  return { x: batchImages(ds, indices, norm), y: batchLabels(ds, indices), shape: ds.shape };
}

/** Evaluate `model` on the examples of `ds` at `indices`, in batches of 500. */
export function evaluateRange(model: tf.LayersModel, ds: Dataset, indices: ArrayLike<number>, norm: Normalization) {
  return evaluate(model, indices.length, 500, (s, e) => makeBatch(ds, Array.prototype.slice.call(indices, s, e), norm));
}
