// init – PyTorch-style initialisation and padding: the knobs that make a zoo
// model start like the same network built with torch.nn defaults.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../core/backend/backends';
import { parseJob } from '../core/job/config';
import { ConfigInvalid } from '../core/errors';
import { fanIn, initialise } from '../core/model/init';
import { initialModel } from '../core/job/model';
import { paramSpecs, readParams } from '../core/model/params';
import { saveModel } from '../core/model/io';
import { buildModel } from '../core/model/zoo';
import { tempDir } from './fixtures';
import { product } from '../core/util/numbers';

before(async () => { await initBackend('wasm'); });

const job = (model: object) => parseJob({ name: 'init', data: { dataset: 'fashion-mnist' }, model });
const maxAbs = (w: Float32Array) => w.reduce((m, x) => Math.max(m, Math.abs(x)), 0);

test('init – fan-in as PyTorch counts it: conv h·w·in, dense in, depthwise h·w', () => {
  const model = buildModel('mobilenet-small', [32, 32, 3], 10, 1);
  const fan = (name: string) => { const l = model.getLayer(name); return fanIn(l, l.getWeights()[0].shape); };
  assert.deepEqual([fan('stem'), fan('dw1'), fan('pw1'), fan('head')], [27, 9, 16, 128]);
});

test('init – pytorch draws every kernel and bias from U(±1/√fan_in), seeded; glorot keeps zero biases', async () => {
  const torch = await initialModel(job({ init: 'pytorch' }), [28, 28, 1], 10);
  const fans: Record<string, number> = { conv1: 9, conv2: 144, fc1: 1568, head: 64 };
  for (const [name, w] of await readParams(torch)) {
    const bound = 1 / Math.sqrt(fans[name.split('/')[0]]);
    // The draws are seeded, so this is deterministic; with ≥ 16 values per tensor the largest lands near the bound.
    assert.ok(maxAbs(w) <= bound && maxAbs(w) > 0.75 * bound, `${name}: max |w| ${maxAbs(w)}, bound ${bound}`);
  }
  const again = await initialModel(job({ init: 'pytorch' }), [28, 28, 1], 10);
  assert.deepEqual(await readParams(again), await readParams(torch));
  const glorot = await initialModel(job({}), [28, 28, 1], 10);
  assert.equal(maxAbs((await readParams(glorot)).get('fc1/bias')!), 0);
  assert.ok(maxAbs((await readParams(glorot)).get('fc1/kernel')!) > 1.5 / Math.sqrt(1568), 'Glorot is wider than 1/√fan_in for fc1');
});

test('init – a replaced head is redrawn under the scheme; the pretrained layers are kept exactly', async () => {
  const pretrained = buildModel('seed-cnn', [28, 28, 1], 5, 3);
  const dir = tempDir();
  await saveModel(pretrained, dir);
  const tuned = await initialModel(job({ from: dir, init: 'pytorch' }), [28, 28, 1], 10);
  const before = await readParams(pretrained), after = await readParams(tuned);
  for (const [name, w] of before) if (!name.startsWith('head/')) assert.deepEqual(after.get(name), w, name);
  assert.ok(maxAbs(after.get('head/bias')!) > 0 && maxAbs(after.get('head/bias')!) <= 1 / 8);
});

test('init – valid padding: the seed CNN shrinks like torch.nn.Conv2d(padding=0) (56,714 parameters for 10 classes)', async () => {
  const model = await initialModel(job({ padding: 'valid' }), [28, 28, 1], 10);
  const specs = paramSpecs(model);
  assert.deepEqual(specs.find((s) => s.name === 'fc1/kernel')!.shape, [800, 64]); // 28→26→13→11→5: 5·5·32
  assert.equal(specs.reduce((a, s) => a + product(s.shape), 0), 56714);
  const before = tf.memory().numTensors;
  initialise(model, 'pytorch', 9);
  assert.equal(tf.memory().numTensors, before, 'redrawing leaks no tensors');
  for (const [side, layer] of [[8, 'pool2'], [4, 'conv2']] as const) {
    assert.throws(() => buildModel('seed-cnn', [side, side, 1], 10, 1, 'valid'), (e: unknown) => e instanceof ConfigInvalid && e.message.includes(`${side}×${side}×1 inputs to nothing at layer ${layer}`));
  }
});
