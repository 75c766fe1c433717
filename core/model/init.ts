// Weight initialisation schemes. The zoo builds every layer with Keras's
// defaults: Glorot-uniform kernels, zero biases. `pytorch` redraws them the way
// torch.nn.Conv2d and nn.Linear initialise themselves — kernels
// kaiming_uniform(a=√5), which is U(±1/√fan_in), and biases U(±1/√fan_in) — so
// an experiment mirrored from a PyTorch reference starts where it started.
// The scheme, with the padding, changes how fast a network trains from
// scratch (README, "Fine-tuning against training from scratch").
import * as tf from '@tensorflow/tfjs';
import { isBatchNorm } from './batch-norm';
import { product } from '../util/numbers';

export const INIT_SCHEMES = ['glorot', 'pytorch'] as const;
export type InitScheme = (typeof INIT_SCHEMES)[number];

/** Inputs feeding one output unit, as PyTorch counts them for this layer's kernel. */
export function fanIn(layer: tf.layers.Layer, kernelShape: number[]): number {
  // A depthwise kernel [h, w, in, mult] is PyTorch's grouped conv [in·mult, 1, h, w]: each output sees h·w inputs.
  const dims = layer.getClassName() === 'DepthwiseConv2D' ? kernelShape.slice(0, 2) : kernelShape.slice(0, -1);
  return product(dims);
}

/** Redraw the weights of `layers` (default: every layer) under `scheme`; seeded, so every run draws the same. */
export function initialise(model: tf.LayersModel, scheme: InitScheme, seed: number, layers?: string[]): void {
  if (scheme === 'glorot') return; // the zoo's and the head's own initialisers
  model.layers.forEach((layer, i) => {
    const weights = layer.getWeights();
    // BatchNorm starts as PyTorch's does too (γ 1, β 0, statistics 0 and 1): tfjs's defaults.
    if (weights.length === 0 || isBatchNorm(layer) || (layers && !layers.includes(layer.name))) return;
    const bound = 1 / Math.sqrt(fanIn(layer, weights[0].shape));
    const fresh = weights.map((w, j) => tf.randomUniform(w.shape, -bound, bound, 'float32', seed * 1000 + 10 * i + j));
    layer.setWeights(fresh); // copies into the layer's variables
    tf.dispose(fresh);
  });
}
