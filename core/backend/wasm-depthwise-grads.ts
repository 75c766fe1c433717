// Depthwise-convolution gradients for the wasm backend, which ships neither.
//
// Filter gradient:  dW[i,j,c,m] = Σ_{b,oh,ow} xpad[b, oh·s+i, ow·s+j, c] · dy[b,oh,ow,c·M+m].
// For a fixed (c, b) that is a correlation of one input plane with one dy
// plane, dilated by the stride: a depthwise conv over a single "image" whose
// C·B channels are the (c, b) planes, with dy's planes as the per-channel
// filters. The B results per channel are then summed.
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
  const [b, h, w] = x.shape;
  const { top, bottom, left, right } = info.padInfo;
  const k = new KernelCalls(args, 'wasm');
  // Channel (c, b) of one image holds image b's channel c ...
  const xs = k.reshape(k.transpose(x, [1, 2, 3, 0]), [1, h, w, c * b]);
  // ... and its M filters are image b's output gradients for channel c.
  const dy5 = k.reshape(dy, [b, info.outHeight, info.outWidth, c, m]);
  const filters = k.reshape(k.transpose(dy5, [1, 2, 3, 0, 4]), [info.outHeight, info.outWidth, c * b, m]);
  const out = k.run('DepthwiseConv2dNative', { x: xs, filter: filters }, {
    strides: [1, 1],
    dilations: [info.strideHeight, info.strideWidth],
    pad: [[0, 0], [top, bottom], [left, right], [0, 0]],
  });
  const [, oh, ow] = out.shape;
  // Sum over the batch, which sits between channel and multiplier.
  const perImage = k.transpose(k.reshape(out, [oh, ow, c, b, m]), [0, 1, 2, 4, 3]);
  const summed = k.run('Sum', { x: perImage }, { axis: [4], keepDims: false });
  return k.finish(k.slice(summed, [0, 0, 0, 0], [kh, kw, c, m]));
}

function depthwiseBackpropInput(args: KernelArgs): Info {
  const { dy, filter } = args.inputs as { dy: Info; filter: Info };
  const attrs = args.attrs as unknown as DepthwiseAttrs & { inputShape: number[] };
  const info = depthwiseInfo(attrs.inputShape, filter.shape, attrs);
  const pad = inputGradPadding(info);
  if (!pad) throw new Error('tunefleet wasm depthwise gradients: padding wider than the kernel is not supported');
  const [kh, kw, c, m] = filter.shape;
  const k = new KernelCalls(args, 'wasm');
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
