// MaxPoolGrad for the wasm backend. The stock kernel is a plain C++ loop that
// is slow (a third of the seed CNN's training step) and wrong: it routes the
// gradient of a window whose maximum is negative to the wrong element (or
// loses it), and breaks ties towards the last maximum.
//
// This one does what the cpu backend does, exactly: each window's gradient
// goes to the first element (row-major within the window) holding its
// maximum — none if every element is NaN — and an input that is the maximum
// of several overlapping windows gets their gradients summed in float64 in
// window order, then rounded to float32 once. One pass over each window finds
// its maximum and adds its dy there.
import * as tf from '@tensorflow/tfjs';
import { KernelArgs } from './kernel-calls';

interface PoolAttrs {
  filterSize: number | [number, number];
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

interface WasmBackend extends tf.KernelBackend {
  readSync(dataId: object): tf.backend_util.BackendValues;
  makeOutput(shape: number[], dtype: tf.DataType, memoryOffset?: number, values?: tf.backend_util.BackendValues): tf.TensorInfo;
}

/** dx for x of shape [b, h, w, c]: each window's dy added to its first maximal element. */
export function maxPoolGradValues(x: Float32Array, dy: Float32Array, info: tf.backend_util.Conv2DInfo): Float32Array {
  const { batchSize: b, inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow } = info;
  const { strideHeight: sh, strideWidth: sw, filterHeight: fh, filterWidth: fw } = info;
  const { top, left } = info.padInfo;
  const dx = new Float64Array(x.length);
  const first = new Float64Array(c); // running maximum per channel, for one window
  const at = new Int32Array(c); // and where it is (-1: none yet)
  for (let n = 0; n < b; n++) {
    for (let r = 0; r < oh; r++) {
      const r0 = Math.max(0, r * sh - top), r1 = Math.min(h, r * sh - top + fh);
      for (let q = 0; q < ow; q++) {
        const c0 = Math.max(0, q * sw - left), c1 = Math.min(w, q * sw - left + fw);
        first.fill(-Infinity);
        at.fill(-1);
        for (let i = r0; i < r1; i++) {
          for (let j = c0; j < c1; j++) {
            const base = ((n * h + i) * w + j) * c;
            for (let k = 0; k < c; k++) {
              const v = x[base + k];
              if (v > first[k]) { first[k] = v; at[k] = base + k; }
            }
          }
        }
        const out = ((n * oh + r) * ow + q) * c;
        for (let k = 0; k < c; k++) if (at[k] >= 0) dx[at[k]] += dy[out + k];
      }
    }
  }
  return Float32Array.from(dx);
}

function maxPoolGrad(args: KernelArgs): tf.TensorInfo {
  const { dy, input } = args.inputs as { dy: tf.TensorInfo; input: tf.TensorInfo };
  const attrs = args.attrs as unknown as PoolAttrs;
  const backend = args.backend as WasmBackend;
  const info = tf.backend_util.computePool2DInfo(input.shape as [number, number, number, number], attrs.filterSize, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode);
  const dx = maxPoolGradValues(backend.readSync(input.dataId) as Float32Array, backend.readSync(dy.dataId) as Float32Array, info);
  return backend.makeOutput(input.shape, 'float32', undefined, dx);
}

export const maxPoolGradKernel: tf.KernelConfig = { kernelName: 'MaxPoolGrad', backendName: 'wasm', kernelFunc: maxPoolGrad as tf.KernelFunc };
