// MaxPoolGrad for the wasm backend. The stock kernel is a plain C++ loop that
// is slow (a third of the seed CNN's training step) and wrong: it routes the
// gradient of a window whose maximum is negative to the wrong element (or
// loses it), and breaks ties towards the last maximum.
//
// This one does what the cpu backend does, exactly: each window's gradient
// goes to the first element (row-major within the window) holding its
// maximum — none if every element is NaN or -Infinity — and an input that is the maximum
// of several overlapping windows gets their gradients summed in float64 in
// window order, then rounded to float32 once. One pass over the windows finds
// where each one's maximum is; a second adds each window's dy there.
import * as tf from '@tensorflow/tfjs';
import { KernelArgs, KernelCalls } from './kernel-calls';

interface PoolAttrs {
  filterSize: number | [number, number];
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}


/**
 * For each output element (window × channel) of a max pool over x [b, h, w, c],
 * the index in x of the window's first maximal element, or -1 when it has
 * none (all NaN or -Infinity, as on cpu). Plain numbers in, so the JIT keeps one specialised version.
 */
function firstMaxima(at: Int32Array, x: Float32Array, b: number, h: number, w: number, c: number, oh: number, ow: number,
  sh: number, sw: number, fh: number, fw: number, top: number, left: number): void {
  at.fill(-1);
  const best = new Float32Array(c);
  for (let n = 0; n < b; n++) {
    for (let r = 0; r < oh; r++) {
      const r0 = Math.max(0, r * sh - top), r1 = Math.min(h, r * sh - top + fh);
      for (let q = 0; q < ow; q++) {
        const c0 = Math.max(0, q * sw - left), c1 = Math.min(w, q * sw - left + fw);
        const out = ((n * oh + r) * ow + q) * c;
        best.fill(-Infinity);
        for (let i = r0; i < r1; i++) {
          for (let j = c0; j < c1; j++) {
            const base = ((n * h + i) * w + j) * c;
            for (let k = 0; k < c; k++) {
              const v = x[base + k];
              if (v > best[k]) { best[k] = v; at[out + k] = base + k; }
            }
          }
        }
      }
    }
  }
}

// Reused between calls: a fresh 1–4 MB array per step costs more in page
// faults than the routing itself.
let scratch = new Int32Array(0);

/** Write into dx (x's shape [b, h, w, c]) each window's dy added to its first maximal element. */
export function maxPoolGradInto(x: Float32Array, dy: Float32Array, info: tf.backend_util.Conv2DInfo, dx: Float32Array): void {
  const { strideHeight: sh, strideWidth: sw, filterHeight: fh, filterWidth: fw } = info;
  if (scratch.length < dy.length) scratch = new Int32Array(dy.length);
  const at = scratch.subarray(0, dy.length);
  firstMaxima(at, x, info.batchSize, info.inHeight, info.inWidth, info.inChannels, info.outHeight, info.outWidth,
    sh, sw, fh, fw, info.padInfo.top, info.padInfo.left);
  dx.fill(0);
  if (sh >= fh && sw >= fw) {
    // Windows do not overlap: each element receives at most one gradient, as is.
    for (let o = 0; o < at.length; o++) if (at[o] >= 0) dx[at[o]] = dy[o];
    return;
  }
  const sum = new Float64Array(x.length);
  for (let o = 0; o < at.length; o++) if (at[o] >= 0) sum[at[o]] += dy[o];
  dx.set(sum);
}

function maxPoolGrad(args: KernelArgs): tf.TensorInfo {
  const { dy, input } = args.inputs as { dy: tf.TensorInfo; input: tf.TensorInfo };
  const attrs = args.attrs as unknown as PoolAttrs;
  const info = tf.backend_util.computePool2DInfo(input.shape as [number, number, number, number], attrs.filterSize, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode);
  const k = new KernelCalls(args, 'wasm');
  return k.finish(k.compute(input.shape, [input, dy], (dx, x, g) => maxPoolGradInto(x, g, info, dx)));
}

export const maxPoolGradKernel: tf.KernelConfig = { kernelName: 'MaxPoolGrad', backendName: 'wasm', kernelFunc: maxPoolGrad as tf.KernelFunc };
