// The model zoo. Every layer has an explicit, stable name: per-layer learning
// rates, checkpoints and the wire protocol all key variables by
// `<layer>/<weight>` (tfjs's originalName), so names are part of the API.
// The classification layer is always named `head`.
import * as tf from '@tensorflow/tfjs';
import { ConfigInvalid } from '../errors';

export const MODEL_NAMES = ['seed-cnn', 'cifar-cnn', 'mobilenet-small'] as const;
export type ModelName = (typeof MODEL_NAMES)[number];
/** Spatial convs: `same` keeps the size (Keras's habit), `valid` adds no border (PyTorch's Conv2d default). */
export const PADDINGS = ['same', 'valid'] as const;
export type Padding = (typeof PADDINGS)[number];

export const HEAD = 'head';

type Shape = [number, number, number];

/** Glorot-uniform kernels with per-layer seeds derived from one model seed. */
function seeded(seed: number) {
  let n = 0;
  return () => ({ kernelInitializer: tf.initializers.glorotUniform({ seed: seed * 1000 + n++ }) });
}

export function head(numClasses: number, seed: number): tf.layers.Layer {
  return tf.layers.dense({ name: HEAD, units: numClasses, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: seed * 1000 + 999 }) });
}

/** A zoo model's options beside its input and classes: the spatial convs' padding, and BatchNorm after every conv. */
export interface ZooOptions {
  padding: Padding;
  batchNorm: boolean;
}

type ConvArgs = { name: string } & Record<string, unknown>;

/**
 * A conv (`make`) with its ReLU; with `batchNorm`, the ResNet/MobileNet order
 * instead: conv without bias (BatchNorm's β takes its place) → BatchNorm
 * `<name>_bn` → ReLU `<name>_relu`.
 */
function convBlock(make: (args: ConvArgs) => tf.layers.Layer, args: ConvArgs, batchNorm: boolean): tf.layers.Layer[] {
  if (!batchNorm) return [make({ ...args, activation: 'relu' })];
  return [make({ ...args, useBias: false }), tf.layers.batchNormalization({ name: `${args.name}_bn` }), tf.layers.reLU({ name: `${args.name}_relu` })];
}

const conv2d = (args: ConvArgs) => tf.layers.conv2d(args as unknown as Parameters<typeof tf.layers.conv2d>[0]);
const depthwise = (args: ConvArgs) => tf.layers.depthwiseConv2d(args as unknown as Parameters<typeof tf.layers.depthwiseConv2d>[0]);

/** conv 3×3·16 → max-pool 2 → conv 3×3·32 → max-pool 2 → dense 64 → dense K (for 28×28×1: ~106k parameters with same padding, ~57k with valid). */
function seedCnn(input: Shape, k: number, seed: number, { padding, batchNorm }: ZooOptions): tf.LayersModel {
  const init = seeded(seed);
  return tf.sequential({
    name: 'seed-cnn',
    layers: [
      ...convBlock(conv2d, { name: 'conv1', inputShape: input, filters: 16, kernelSize: 3, padding, ...init() }, batchNorm),
      tf.layers.maxPooling2d({ name: 'pool1', poolSize: 2 }),
      ...convBlock(conv2d, { name: 'conv2', filters: 32, kernelSize: 3, padding, ...init() }, batchNorm),
      tf.layers.maxPooling2d({ name: 'pool2', poolSize: 2 }),
      tf.layers.flatten({ name: 'flatten' }),
      tf.layers.dense({ name: 'fc1', units: 64, activation: 'relu', ...init() }),
      head(k, seed),
    ],
  });
}

/** Two blocks of two 3×3 convs (32, 64) with max-pooling, dense 256, dense K (~1.1M parameters for 32×32×3). */
function cifarCnn(input: Shape, k: number, seed: number, { padding, batchNorm }: ZooOptions): tf.LayersModel {
  const init = seeded(seed);
  const conv = (name: string, filters: number, first = false) => convBlock(conv2d, {
    name, filters, kernelSize: 3, padding, ...(first ? { inputShape: input } : {}), ...init(),
  }, batchNorm);
  return tf.sequential({
    name: 'cifar-cnn',
    layers: [
      ...conv('conv1_1', 32, true), ...conv('conv1_2', 32), tf.layers.maxPooling2d({ name: 'pool1', poolSize: 2 }),
      ...conv('conv2_1', 64), ...conv('conv2_2', 64), tf.layers.maxPooling2d({ name: 'pool2', poolSize: 2 }),
      tf.layers.flatten({ name: 'flatten' }),
      tf.layers.dense({ name: 'fc1', units: 256, activation: 'relu', ...init() }),
      head(k, seed),
    ],
  });
}

/** A stem conv, four depthwise-separable blocks (depthwise 3×3 + pointwise 1×1), global average pooling, dense K. */
function mobilenetSmall(input: Shape, k: number, seed: number, { padding, batchNorm }: ZooOptions): tf.LayersModel {
  const init = seeded(seed);
  const layers: tf.layers.Layer[] = convBlock(conv2d, { name: 'stem', inputShape: input, filters: 16, kernelSize: 3, strides: 2, padding, ...init() }, batchNorm);
  for (const [i, [filters, stride]] of ([[32, 1], [64, 2], [64, 1], [128, 2]] as const).entries()) {
    layers.push(
      ...convBlock(depthwise, { name: `dw${i + 1}`, kernelSize: 3, strides: stride, padding, depthwiseInitializer: init().kernelInitializer }, batchNorm),
      ...convBlock(conv2d, { name: `pw${i + 1}`, filters, kernelSize: 1, ...init() }, batchNorm),
    );
  }
  layers.push(tf.layers.globalAveragePooling2d({ name: 'gap' }), head(k, seed));
  return tf.sequential({ name: 'mobilenet-small', layers });
}

const builders: Record<ModelName, (input: Shape, k: number, seed: number, opts: ZooOptions) => tf.LayersModel> = {
  'seed-cnn': seedCnn,
  'cifar-cnn': cifarCnn,
  'mobilenet-small': mobilenetSmall,
};

export function buildModel(name: string, input: Shape, numClasses: number, seed: number, padding: Padding = 'same', batchNorm = false): tf.LayersModel {
  const build = builders[name as ModelName];
  if (!build) throw new ConfigInvalid(`model.arch: unknown model '${name}'; choose one of ${MODEL_NAMES.join(', ')}`);
  const shrunk = (layer: string) => new ConfigInvalid(`model.arch ${name} with ${padding} padding shrinks ${input.join('×')} inputs to nothing at layer ${layer}; use model.padding: same or larger inputs`);
  let model: tf.LayersModel;
  try {
    model = build(input, numClasses, seed, { padding, batchNorm });
  } catch (e) {
    const at = /adding layer (\w+)/.exec(String(e));
    throw at ? shrunk(at[1]) : e;
  }
  // tfjs builds a pooled 1×1 map into a 0×0 one without complaint: check every layer's output.
  const empty = model.layers.find((l) => (l.outputShape as number[]).slice(1).some((d) => d < 1));
  if (empty) {
    model.dispose();
    throw shrunk(empty.name);
  }
  return model;
}
