// models – the zoo, gradients (names, shapes, frozen variables, no leaks,
// wasm = cpu, a failed read-back leaks nothing), head replacement, loading from a path and a URL, checkpoints.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { createServer } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AddressInfo } from 'node:net';
import { initBackend } from '../core/backend/backends';
import { buildModel } from '../core/model/zoo';
import { computeGradients, evaluate } from '../core/train/gradients';
import { paramSpecs, readParams } from '../core/model/params';
import { replaceHead } from '../core/model/head';
import { loadModel, saveModel } from '../core/model/io';
import { listCheckpoints, loadCheckpoint, saveCheckpoint } from '../core/model/checkpoint';
import { CheckpointInvalid, ModelInvalid } from '../core/errors';
import { tempDir } from './fixtures';
import { product } from '../core/util/numbers';

before(async () => { await initBackend('wasm'); });

function batch(n: number, shape: [number, number, number], k: number) {
  const x = Float32Array.from({ length: n * shape[0] * shape[1] * shape[2] }, (_, i) => Math.sin(i * 0.37));
  return { x, y: Int32Array.from({ length: n }, (_, i) => i % k), shape };
}

const zoo: [string, [number, number, number], number][] = [
  ['seed-cnn', [28, 28, 1], 105866],
  ['cifar-cnn', [32, 32, 3], 1116970],
  ['mobilenet-small', [32, 32, 3], 18634],
];

for (const [name, shape, params] of zoo) {
  test(`models – ${name}: stable names, ${params} parameters, a training step leaks no tensors`, async () => {
    const model = buildModel(name, shape, 10, 1);
    const specs = paramSpecs(model);
    assert.equal(specs.reduce((a, s) => a + product(s.shape), 0), params);
    assert.ok(specs.some((s) => s.name === 'head/kernel') && specs.every((s) => /^[a-z0-9_]+\/[a-z_]+$/.test(s.name)), specs.map((s) => s.name).join());
    const names = specs.map((s) => s.name);
    const b = batch(4, shape, 10);
    await computeGradients(model, names, b);
    const before = tf.memory().numTensors;
    const { loss, grads } = await computeGradients(model, names, b);
    assert.equal(tf.memory().numTensors, before);
    assert.ok(Number.isFinite(loss) && loss > 0);
    assert.deepEqual([...grads.keys()], names);
    for (const s of specs) assert.equal(grads.get(s.name)!.length, product(s.shape));
    model.dispose();
  });
}

test('models – gradients on wasm equal gradients on cpu (every zoo layer type)', async () => {
  for (const [name, shape] of zoo) {
    const b = batch(3, shape, 10);
    const grads = async (backend: string) => {
      await tf.setBackend(backend);
      const model = buildModel(name, shape, 10, 7);
      const out = await computeGradients(model, paramSpecs(model).map((s) => s.name), b);
      model.dispose();
      return out;
    };
    const cpu = await grads('cpu');
    const wasm = await grads('wasm');
    assert.ok(Math.abs(cpu.loss - wasm.loss) < 1e-5 * Math.abs(cpu.loss), `${name} loss`);
    for (const [v, g] of cpu.grads) {
      const w = wasm.grads.get(v)!;
      let scale = 0, diff = 0;
      g.forEach((x, i) => { scale = Math.max(scale, Math.abs(x)); diff = Math.max(diff, Math.abs(x - w[i])); });
      const err = diff / (scale || 1);
      assert.ok(err < 1e-4, `${name} ${v}: relative error ${err}`);
    }
  }
});

// A GPU backend's read-back can fail (device lost, out of memory): the step's
// tensors must go with it, or a worker that retries leaks a model's worth of
// GPU memory per failure. The n-th data() call rejects; every count is tried.
test('models – a read-back that fails, at the loss, a gradient or evaluation, leaks no tensors', async (t) => {
  const model = buildModel('seed-cnn', [28, 28, 1], 10, 1);
  const names = paramSpecs(model).map((s) => s.name);
  const b = batch(4, [28, 28, 1], 10);
  const data = tf.Tensor.prototype.data;
  let calls = 0, failAt = 0;
  t.mock.method(tf.Tensor.prototype, 'data', function (this: tf.Tensor) {
    if (++calls === failAt) return Promise.reject(new Error('device lost'));
    return data.call(this);
  });
  const before = tf.memory().numTensors;
  for (failAt = 1; failAt <= names.length + 1; failAt++) {
    calls = 0;
    await assert.rejects(computeGradients(model, names, b), /device lost/, `read ${failAt} fails`);
    assert.equal(tf.memory().numTensors, before, `tensors after read ${failAt} failed`);
  }
  for (failAt = 1; failAt <= 2; failAt++) {
    calls = 0;
    await assert.rejects(evaluate(model, 8, 4, () => b), /device lost/);
    assert.equal(tf.memory().numTensors, before, `tensors after evaluation read ${failAt} failed`);
  }
  model.dispose();
});

test('models – frozen variables get no gradient', async () => {
  const model = buildModel('seed-cnn', [28, 28, 1], 10, 1);
  const { grads } = await computeGradients(model, ['head/kernel', 'head/bias'], batch(2, [28, 28, 1], 10));
  assert.deepEqual([...grads.keys()], ['head/kernel', 'head/bias']);
});

test('models – replacing the head keeps every other weight exactly', async () => {
  const model = buildModel('seed-cnn', [28, 28, 1], 100, 1);
  const before = await readParams(model);
  const tuned = replaceHead(model, 10, 2);
  const after = await readParams(tuned);
  assert.deepEqual(paramSpecs(tuned).find((s) => s.name === 'head/kernel')!.shape, [64, 10]);
  for (const [name, w] of before) if (!name.startsWith('head/')) assert.deepEqual(after.get(name), w, name);
  assert.equal((tuned.outputs[0].shape as number[])[1], 10);
  assert.equal(tuned.layers[tuned.layers.length - 1].getConfig().activation, 'softmax');
  assert.throws(() => replaceHead(model, 10, 2, 'pool1'), (e: unknown) => e instanceof ModelInvalid && /MaxPooling2D, not a Dense/.test(e.message));
  assert.throws(() => replaceHead(model, 10, 2, 'nope'), /no layer named 'nope'/);
  const cutHead = replaceHead(model, 3, 2, 'fc1');
  assert.deepEqual(paramSpecs(cutHead).find((s) => s.name === 'head/kernel')!.shape, [1568, 3]);
});

test('models – load from a model.json path and an http URL, optionally cut', async () => {
  const model = buildModel('seed-cnn', [28, 28, 1], 10, 1);
  const dir = join(tempDir(), 'm');
  await saveModel(model, dir);
  const fromPath = await loadModel(join(dir, 'model.json'));
  assert.deepEqual(await readParams(fromPath), await readParams(model));
  const server = createServer((req, res) => res.end(readFileSync(join(dir, req.url!.replace(/^\/models\//, '')))));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/models/model.json`;
    const fromUrl = await loadModel(url, 'fc1');
    assert.equal(fromUrl.layers[fromUrl.layers.length - 1].name, 'fc1');
    assert.deepEqual((await readParams(fromUrl)).get('conv2/kernel'), (await readParams(model)).get('conv2/kernel'));
  } finally {
    server.close();
  }
  writeFileSync(join(dir, 'bad.json'), '{"hello": 1}');
  await assert.rejects(loadModel(join(dir, 'bad.json')), /not a tfjs LayersModel/);
});

test('checkpoint – round trip, keep the newest M, refuse a corrupted one', async () => {
  const root = tempDir();
  const model = buildModel('seed-cnn', [28, 28, 1], 10, 1);
  const velocity = new Map([['head/bias', Float32Array.from({ length: 10 }, (_, i) => i / 3)]]);
  for (const iteration of [10, 20, 30]) {
    await saveCheckpoint(root, model, { iteration, seed: 5, job: 'j', sampler: { epoch: 1, offset: 64 }, velocity, ledger: [{ step: iteration - 1, workerId: 'w0', indices: [3, 1], epochs: [1, 1] }] }, 2);
  }
  assert.deepEqual(listCheckpoints(root), ['ckpt-00000020', 'ckpt-00000030']);
  const dir = join(root, 'ckpt-00000030');
  const { model: loaded, state } = await loadCheckpoint(dir);
  assert.deepEqual(await readParams(loaded), await readParams(model));
  assert.deepEqual(state.velocity, velocity);
  assert.deepEqual({ ...state, velocity: null }, { iteration: 30, seed: 5, job: 'j', sampler: { epoch: 1, offset: 64 }, velocity: null, ledger: [{ step: 29, workerId: 'w0', indices: [3, 1], epochs: [1, 1] }] });
  const weights = readFileSync(join(dir, 'weights.bin'));
  weights[100] ^= 0xff;
  writeFileSync(join(dir, 'weights.bin'), weights);
  await assert.rejects(loadCheckpoint(dir), (e: unknown) => e instanceof CheckpointInvalid && /weights.bin does not match its SHA-256/.test(e.message));
  // state.json is covered too: one digit of a momentum offset changed.
  const other = join(root, 'ckpt-00000020');
  const state20 = readFileSync(join(other, 'state.json'), 'utf8');
  assert.match(state20, /"offset": 0/);
  writeFileSync(join(other, 'state.json'), state20.replace('"offset": 0', '"offset": 1'));
  await assert.rejects(loadCheckpoint(other), (e: unknown) => e instanceof CheckpointInvalid && /state.json does not match its own SHA-256/.test(e.message));
});

test('checkpoint – a fresh run in a folder holding an earlier run\'s later checkpoints keeps its own and leaves those', async () => {
  const root = tempDir();
  const model = buildModel('seed-cnn', [28, 28, 1], 10, 1);
  const save = (iteration: number) => saveCheckpoint(root, model, { iteration, seed: 5, job: 'j', sampler: { epoch: 0, offset: 0 }, velocity: new Map(), ledger: [] }, 2);
  for (const iteration of [30, 40, 50]) await save(iteration); // the earlier run: keeps 40 and 50
  for (const iteration of [10, 20, 30]) await save(iteration); // the new one, from the start
  assert.deepEqual(listCheckpoints(root), ['ckpt-00000020', 'ckpt-00000030', 'ckpt-00000040', 'ckpt-00000050']);
  model.dispose();
});
