// Depthwise-convolution gradients for the wasm backend, which ships neither.
//
// Filter gradient: a depthwise filter has only kh·kw·C·M weights, so instead
// of a convolution we take, for each of the kh·kw taps, the strided window of
// the padded input that tap sees, multiply it by dy and sum over batch and
// space:  dW[i,j,c,m] = Σ_{b,oh,ow} xpad[b, oh·s+i, ow·s+j, c] · dy[b,oh,ow,c·M+m].
// That is the same arithmetic as the forward pass, in kh·kw wasm elementwise
// kernels.
//
// Input gradient: a depthwise conv of the zero-interleaved dy with the
// spatially flipped filter (as for Conv2D); with a channel multiplier M > 1
// each of the C·M dy channels is convolved alone and groups of M are summed.
import * as tf from '@tensorflow/tfjs';
import { KernelArgs, KernelCalls } from './kernel-calls';
import { inputGradPadding } from './wasm-conv-grads';

type Info = tf.TensorInfo;

interface DepthwiseAttrs {
  strides: number | [number, number];
  dilations?: number | [number, number];
  pad: 'valid' | 'same' | number;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

function depthwiseInfo(xShape: number[], filterShape: number[], attrs: DepthwiseAttrs) {
  const d = attrs.dilations ?? 1;
  if ((Array.isArray(d) ? d : [d, d]).some((v) => v !== 1)) {
    throw new Error('tunefleet wasm depthwise gradients support dilation 1 only');
  }
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number], filterShape as [number, number, number, number],
    attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, true);
}

function depthwiseBackpropFilter(args: KernelArgs): Info {
  const { x, dy } = args.inputs as { x: Info; dy: Info };
  const attrs = args.attrs as unknown as DepthwiseAttrs & { filterShape: number[] };
  const info = depthwiseInfo(x.shape, attrs.filterShape, attrs);
  const [kh, kw, c, m] = attrs.filterShape;
  const [b] = x.shape;
  const { top, bottom, left, right } = info.padInfo;
  const k = new KernelCalls(args.backend, 'wasm');
  const xpad = k.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]]);
  const dy5 = k.reshape(dy, [b, info.outHeight, info.outWidth, c, m]);
  const taps: Info[] = [];
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const window = k.run('StridedSlice', { x: xpad }, {
        begin: [0, i, j, 0],
        end: [b, i + (info.outHeight - 1) * info.strideHeight + 1, j + (info.outWidth - 1) * info.strideWidth + 1, c],
        strides: [1, info.strideHeight, info.strideWidth, 1],
        beginMask: 0, endMask: 0, ellipsisMask: 0, newAxisMask: 0, shrinkAxisMask: 0,
      });
      const product = k.run('Multiply', { a: k.reshape(window, [...window.shape, 1]), b: dy5 });
      taps.push(k.run('Sum', { x: product }, { axis: [0, 1, 2], keepDims: false }));
    }
  }
  const packed = k.run('Pack', taps, { axis: 0 });
  return k.finish(k.reshape(packed, [kh, kw, c, m]));
}

function depthwiseBackpropInput(args: KernelArgs): Info {
  const { dy, filter } = args.inputs as { dy: Info; filter: Info };
  const attrs = args.attrs as unknown as DepthwiseAttrs & { inputShape: number[] };
  const info = depthwiseInfo(attrs.inputShape, filter.shape, attrs);
  const pad = inputGradPadding(info);
  if (!pad) throw new Error('tunefleet wasm depthwise gradients: padding wider than the kernel is not supported');
  const [kh, kw, c, m] = filter.shape;
  const k = new KernelCalls(args.backend, 'wasm');
  const flipped = k.reshape(k.run('Reverse', { x: filter }, { dims: [0, 1] }), [kh, kw, c * m, 1]);
  const perChannel = k.run('DepthwiseConv2dNative', {
    x: k.interleaveZeros(dy, info.strideHeight, info.strideWidth),
    filter: flipped,
  }, { strides: [1, 1], dilations: [1, 1], pad });
  if (m === 1) return k.finish(perChannel);
  const [b, h, w] = attrs.inputShape;
  const grouped = k.reshape(perChannel, [b, h, w, c, m]);
  return k.finish(k.run('Sum', { x: grouped }, { axis: [4], keepDims: false }));
}

export const depthwiseGradKernels: tf.KernelConfig[] = [
  { kernelName: 'DepthwiseConv2dNativeBackpropFilter', backendName: 'wasm', kernelFunc: depthwiseBackpropFilter },
  { kernelName: 'DepthwiseConv2dNativeBackpropInput', backendName: 'wasm', kernelFunc: depthwiseBackpropInput },
];
