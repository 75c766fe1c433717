// Training kernels for convolutions on the wasm backend.
//
// As shipped, tfjs-backend-wasm has no Conv2DBackpropFilter at all, and its
// Conv2DBackpropInput is a naive loop ~10x slower than the forward conv. Both
// gradients are themselves convolutions, so we compute them through the
// backend's own XNNPACK forward conv:
//
//   filter gradient  dW[i,j,ci,co] = Σ_{b,oh,ow} xpad[b, oh·s+i, ow·s+j, ci] · dy[b,oh,ow,co]
//     = conv( xᵀ[ci,H,W,b],  dyᵀ[oh,ow,b,co],  dilation = stride, same padding as forward )
//     i.e. batch becomes the channel being summed over, and the output gradient
//     is the filter; the result [ci,kh',kw',co] is cropped to kh×kw and transposed back.
//
//   input gradient   dx = conv( dy with s-1 zeros between rows/cols,
//                               filter flipped in space with in/out channels swapped,
//                               stride 1, padding kh-1-top … chosen so the output is H×W )
//
// Depthwise convolutions (MobileNet-style models) get the same treatment in
// wasm-depthwise-grads.ts.
import * as tf from '@tensorflow/tfjs';
import { KernelArgs, KernelCalls } from './kernel-calls';

type Info = tf.TensorInfo;
type Pad = [[0, 0], [number, number], [number, number], [0, 0]];

interface ConvAttrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | Pad;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

function convInfo(xShape: number[], filterShape: number[], attrs: ConvAttrs, depthwise = false) {
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides, 1, attrs.pad as 'valid', attrs.dimRoundingMode, depthwise);
}

/**
 * Padding for the input-gradient conv over the zero-interleaved dy so that
 * the output has exactly the input's height and width. Null when the forward
 * padding was wider than the kernel (never in our zoo): then the caller falls
 * back to the stock kernel.
 */
export function inputGradPadding(info: tf.backend_util.Conv2DInfo): Pad | null {
  const { filterHeight: kh, filterWidth: kw, inHeight: h, inWidth: w } = info;
  const dilatedH = (info.outHeight - 1) * info.strideHeight + 1;
  const dilatedW = (info.outWidth - 1) * info.strideWidth + 1;
  const top = kh - 1 - info.padInfo.top;
  const left = kw - 1 - info.padInfo.left;
  const bottom = h + kh - 1 - dilatedH - top;
  const right = w + kw - 1 - dilatedW - left;
  if (Math.min(top, left, bottom, right) < 0) return null;
  return [[0, 0], [top, bottom], [left, right], [0, 0]];
}

/**
 * Pᵀ, the transposed patch matrix of a conv: row (i, j, c) — the filter's own
 * layout — column (b, r, q) holds x[b, r·sh − top + i, q·sw − left + j, c], 0
 * outside the input. Plain numbers in, so the JIT keeps one specialised version.
 */
function patchesTransposed(p: Float32Array, x: Float32Array, b: number, h: number, w: number, ci: number,
  oh: number, ow: number, kh: number, kw: number, sh: number, sw: number, top: number, left: number): void {
  let o = 0;
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      for (let c = 0; c < ci; c++) {
        for (let n = 0; n < b; n++) {
          for (let r = 0; r < oh; r++) {
            const row = r * sh - top + i;
            const inside = row >= 0 && row < h;
            for (let q = 0; q < ow; q++) {
              const col = q * sw - left + j;
              p[o++] = inside && col >= 0 && col < w ? x[((n * h + row) * w + col) * ci + c] : 0;
            }
          }
        }
      }
    }
  }
}

// When Pᵀ is no bigger than x — a 1×1 (pointwise) conv — or x has few
// channels (a first layer: grey or RGB images), the filter gradient is taken
// as dW = Pᵀ·dy: building Pᵀ is one pass, while the transposes of the conv
// route below cost more than the product.
const FEW_CHANNELS = 4;
const patchesAreCheap = (info: tf.backend_util.Conv2DInfo) => info.inChannels <= FEW_CHANNELS || info.filterHeight * info.filterWidth === 1;

function filterGradByPatches(k: KernelCalls, x: Info, dy: Info, info: tf.backend_util.Conv2DInfo): Info {
  const { batchSize: b, inHeight: h, inWidth: w, inChannels: ci, outHeight: oh, outWidth: ow, filterHeight: kh, filterWidth: kw } = info;
  const rows = kh * kw * ci, cols = b * oh * ow;
  const p = k.compute([1, rows, cols], [x], (out, xs) =>
    patchesTransposed(out, xs, b, h, w, ci, oh, ow, kh, kw, info.strideHeight, info.strideWidth, info.padInfo.top, info.padInfo.left));
  const dw = k.run('BatchMatMul', { a: p, b: k.reshape(dy, [1, cols, info.outChannels]) }, { transposeA: false, transposeB: false });
  return k.finish(k.reshape(dw, [kh, kw, ci, info.outChannels]));
}

function conv2DBackpropFilter(args: KernelArgs): Info {
  const { x, dy } = args.inputs as { x: Info; dy: Info };
  const attrs = args.attrs as unknown as ConvAttrs & { filterShape: number[] };
  const info = convInfo(x.shape, attrs.filterShape, attrs);
  const k = new KernelCalls(args, 'wasm');
  if (patchesAreCheap(info)) return filterGradByPatches(k, x, dy, info);
  const { top, bottom, left, right } = info.padInfo;
  const out = k.run('Conv2D', {
    x: k.transpose(x, [3, 1, 2, 0]),
    filter: k.transpose(dy, [1, 2, 0, 3]),
  }, {
    strides: [1, 1],
    dilations: [info.strideHeight, info.strideWidth],
    pad: [[0, 0], [top, bottom], [left, right], [0, 0]],
    dataFormat: 'NHWC',
  });
  const [ci, , , co] = out.shape;
  const cropped = k.slice(out, [0, 0, 0, 0], [ci, info.filterHeight, info.filterWidth, co]);
  return k.finish(k.transpose(cropped, [1, 2, 0, 3]));
}

function makeConv2DBackpropInput(stock: tf.KernelFunc) {
  return (args: KernelArgs): Info => {
    const { dy, filter } = args.inputs as { dy: Info; filter: Info };
    const attrs = args.attrs as unknown as ConvAttrs & { inputShape: number[] };
    const info = convInfo(attrs.inputShape, filter.shape, attrs);
    const pad = inputGradPadding(info);
    if (!pad) return stock(args) as Info;
    const k = new KernelCalls(args, 'wasm');
    const flipped = k.transpose(k.run('Reverse', { x: filter }, { dims: [0, 1] }), [0, 1, 3, 2]);
    return k.finish(k.run('Conv2D', {
      x: k.interleaveZeros(dy, info.strideHeight, info.strideWidth),
      filter: flipped,
    }, { strides: [1, 1], dilations: [1, 1], pad, dataFormat: 'NHWC' }));
  };
}

/** Our Conv2D gradient kernels; the stock input-gradient kernel is the fallback for exotic padding. */
export function convGradKernels(stockInput: tf.KernelFunc): tf.KernelConfig[] {
  return [
    { kernelName: 'Conv2DBackpropFilter', backendName: 'wasm', kernelFunc: conv2DBackpropFilter },
    { kernelName: 'Conv2DBackpropInput', backendName: 'wasm', kernelFunc: makeConv2DBackpropInput(stockInput) },
  ];
}
