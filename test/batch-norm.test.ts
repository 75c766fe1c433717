// batch-norm – BatchNorm in the zoo (model.batchNorm), its statistics
// estimated from training batches (checked against moments computed by hand)
// or frozen (the layer normalises with them in training too, and they never
// move), on wasm against cpu. The distributed side is in distributed.test.ts.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../core/backend/backends';
import { batchNormLayers, estimateStatistics, freezeStatistics, statisticsIndices } from '../core/model/batch-norm';
import { paramSpecs, readParams } from '../core/model/params';
import { buildModel } from '../core/model/zoo';
import { Batch, computeGradients } from '../core/train/gradients';

before(async () => { await initBackend('wasm'); });

function batch(n: number, shape: [number, number, number], offset = 0): Batch {
  const x = Float32Array.from({ length: n * shape[0] * shape[1] * shape[2] }, (_, i) => Math.sin((i + offset) * 0.37) + 0.3);
  return { x, y: Int32Array.from({ length: n }, (_, i) => i % 10), shape };
}

const trainableNames = (m: tf.LayersModel) => m.weights.filter((w) => w.trainable).map((w) => w.originalName);

test('batch-norm – model.batchNorm: conv without bias → <conv>_bn → ReLU in every zoo model; the statistics are not trainable', () => {
  for (const [name, shape] of [['seed-cnn', [28, 28, 1]], ['cifar-cnn', [32, 32, 3]], ['mobilenet-small', [32, 32, 3]]] as const) {
    const model = buildModel(name, [...shape], 10, 1, 'same', true);
    const names = paramSpecs(model).map((s) => s.name);
    const convs = model.layers.filter((l) => /Conv2D$/.test(l.getClassName())).map((l) => l.name);
    assert.deepEqual(batchNormLayers(model), convs.map((c) => `${c}_bn`), name);
    assert.ok(!names.some((n) => convs.some((c) => n === `${c}/bias`)), `${name}: a conv followed by BatchNorm has no bias`);
    assert.deepEqual(names.filter((n) => !trainableNames(model).includes(n)), convs.flatMap((c) => [`${c}_bn/moving_mean`, `${c}_bn/moving_variance`]));
    model.dispose();
  }
  const plain = buildModel('seed-cnn', [28, 28, 1], 10, 1);
  assert.deepEqual(batchNormLayers(plain), []);
  plain.dispose();
});

test('batch-norm – a training step on wasm equals cpu with BatchNorm (seed-cnn, mobilenet-small) and leaks no tensors', async () => {
  for (const [name, shape] of [['seed-cnn', [28, 28, 1]], ['mobilenet-small', [32, 32, 3]]] as const) {
    const b = batch(4, [...shape]);
    const step = async (backend: string) => {
      await tf.setBackend(backend);
      const model = buildModel(name, [...shape], 10, 7, 'same', true);
      await computeGradients(model, trainableNames(model), b);
      const before = tf.memory().numTensors;
      const out = await computeGradients(model, trainableNames(model), b);
      assert.equal(tf.memory().numTensors, before, `${name} on ${backend}: tensors`);
      model.dispose();
      return out;
    };
    const cpu = await step('cpu');
    const wasm = await step('wasm');
    assert.ok(Math.abs(cpu.loss - wasm.loss) < 1e-5 * cpu.loss, `${name} loss`);
    for (const [v, g] of cpu.grads) {
      const w = wasm.grads.get(v)!;
      let scale = 0, diff = 0;
      g.forEach((x, i) => { scale = Math.max(scale, Math.abs(x)); diff = Math.max(diff, Math.abs(x - w[i])); });
      assert.ok(diff / (scale || 1) < 1e-4, `${name} ${v}: relative error ${diff / (scale || 1)}`);
    }
  }
});

test('batch-norm – estimated statistics are each channel\'s mean and variance of the layer\'s input over every batch (by hand, in float64); frozen ones do not move; nothing leaks', async () => {
  const model = buildModel('seed-cnn', [28, 28, 1], 10, 3, 'same', true);
  const batches = [batch(5, [28, 28, 1]), batch(3, [28, 28, 1], 999)];
  const conv2Before = await readParams(model);
  freezeStatistics(model, ['conv2_bn']);
  const before = tf.memory().numTensors;
  const written = await estimateStatistics(model, batches, ['conv2_bn']);
  assert.equal(tf.memory().numTensors, before, 'tensors');
  assert.deepEqual([...written.keys()], ['conv1_bn/moving_mean', 'conv1_bn/moving_variance']);
  // conv1_bn's input is conv1's output: its moments over 8 examples × 28 × 28 positions, per channel.
  const sum = new Float64Array(16), square = new Float64Array(16);
  let count = 0;
  for (const b of batches) {
    const out = tf.tidy(() => model.getLayer('conv1').apply(tf.tensor4d(b.x, [b.y.length, ...b.shape])) as tf.Tensor);
    const v = (await out.data()) as Float32Array;
    out.dispose();
    for (let i = 0; i < v.length; i++) { sum[i % 16] += v[i]; square[i % 16] += v[i] * v[i]; }
    count += v.length / 16;
  }
  const after = await readParams(model);
  for (let c = 0; c < 16; c++) {
    const mean = sum[c] / count, variance = square[c] / count - mean * mean;
    assert.ok(Math.abs(after.get('conv1_bn/moving_mean')![c] - mean) <= 1e-5 * (Math.abs(mean) + 1e-3), `channel ${c} mean ${after.get('conv1_bn/moving_mean')![c]} vs ${mean}`);
    assert.ok(Math.abs(after.get('conv1_bn/moving_variance')![c] - variance) <= 1e-4 * variance, `channel ${c} variance ${after.get('conv1_bn/moving_variance')![c]} vs ${variance}`);
  }
  assert.deepEqual(after.get('conv2_bn/moving_mean'), conv2Before.get('conv2_bn/moving_mean'));
  assert.deepEqual(after.get('conv2_bn/moving_variance'), conv2Before.get('conv2_bn/moving_variance'));
  model.dispose();
});

test('batch-norm – a frozen layer normalises with its moving statistics in training too and a step leaves them as they were; an unfrozen one moves them', async () => {
  const b = batch(6, [28, 28, 1]);
  const stats = (p: Map<string, Float32Array>) => ['conv1_bn', 'conv2_bn'].map((l) => [...p.get(`${l}/moving_mean`)!, ...p.get(`${l}/moving_variance`)!]);
  const x = () => tf.tensor4d(b.x, [b.y.length, ...b.shape]);
  const frozen = buildModel('seed-cnn', [28, 28, 1], 10, 5, 'same', true);
  await estimateStatistics(frozen, [b], []); // statistics that are not the initial 0 and 1
  freezeStatistics(frozen, batchNormLayers(frozen));
  const start = await readParams(frozen);
  const [training, inference] = tf.tidy(() => [frozen.apply(x(), { training: true }) as tf.Tensor, frozen.predict(x()) as tf.Tensor]);
  assert.deepEqual(await training.data(), await inference.data(), 'training-mode output = inference output');
  tf.dispose([training, inference]);
  await computeGradients(frozen, trainableNames(frozen), b);
  assert.deepEqual(stats(await readParams(frozen)), stats(start));
  const free = buildModel('seed-cnn', [28, 28, 1], 10, 5, 'same', true);
  const initial = await readParams(free);
  await computeGradients(free, trainableNames(free), b);
  assert.notDeepEqual(stats(await readParams(free)), stats(initial), "tfjs's moving average moved them");
  frozen.dispose();
  free.dispose();
});

test('batch-norm – the statistics examples: a seeded choice of distinct training examples, the same for the same seed', () => {
  const a = statisticsIndices(1000, 300, 1);
  assert.equal(a.length, 300);
  assert.equal(new Set(a).size, 300);
  assert.ok(a.every((i) => i < 1000));
  assert.deepEqual(statisticsIndices(1000, 300, 1), a);
  assert.notDeepEqual(statisticsIndices(1000, 300, 2), a);
  assert.equal(statisticsIndices(50, 300, 1).length, 50, 'at most the training set');
});
