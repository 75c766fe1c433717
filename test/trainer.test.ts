// trainer – a real (tiny) single-process run on IDX files written by the
// test: evaluation and checkpoints, resume = uninterrupted, fine-tuning with a
// replaced head and a frozen layer.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { initBackend } from '../core/backend/backends';
import { parseJob } from '../core/job/config';
import { listCheckpoints, loadCheckpoint } from '../core/model/checkpoint';
import { loadModel } from '../core/model/io';
import { readParams } from '../core/model/params';
import { train } from '../core/train/trainer';
import { tempDir, writeIdxSet } from './fixtures';

let dataDir = '';

before(async () => {
  await initBackend('wasm');
  dataDir = tempDir();
  writeIdxSet(dataDir, 200, 50);
});

function job(outDir: string, overrides: Record<string, unknown> = {}) {
  const base = {
    name: 'tiny', backend: 'wasm', data: { path: dataDir, download: false },
    train: { iterations: 12, batchSize: 16, evalEvery: 6, logEvery: 6, checkpointEvery: 6, outDir },
    optimizer: { lr: 0.05, momentum: 0.9 },
  };
  return parseJob({ ...base, ...overrides });
}
test('trainer – evaluates, checkpoints and saves a loadable model', async () => {
  const out = tempDir();
  const result = await train(job(out));
  assert.deepEqual(result.curve.map((p) => p.iteration), [6, 12]);
  for (const p of result.curve) assert.ok(p.valAccuracy >= 0 && p.valAccuracy <= 1 && p.valLoss > 0 && p.trainLoss > 0);
  for (const p of result.curve) assert.ok(p.evalSeconds > 0 && p.evalSeconds < p.wallSeconds, 'the time spent evaluating, part of the wall time');
  assert.ok(result.curve[1].evalSeconds > result.curve[0].evalSeconds, 'summed over the evaluations so far');
  assert.deepEqual(listCheckpoints(out), ['ckpt-00000006', 'ckpt-00000012']);
  const saved = await loadModel(join(out, 'model', 'model.json'));
  assert.deepEqual(await readParams(saved), await readParams(result.model));
});

test('trainer – a run resumed from its checkpoint ends with the same parameters as one that never stopped', async () => {
  const straight = await train(job(tempDir()));
  const out = tempDir();
  await train(job(out, { train: { iterations: 6, batchSize: 16, evalEvery: 6, checkpointEvery: 6, outDir: out } }));
  const resumed = await train(job(out), { resume: true });
  assert.deepEqual(await readParams(resumed.model), await readParams(straight.model));
  assert.notDeepEqual(await readParams(resumed.model), await readParams((await loadCheckpoint(join(out, 'ckpt-00000006'))).model));
});

test('trainer – with BatchNorm (statistics estimated in one layer, frozen in the other) a resumed run ends bit-identical to one that never stopped', async () => {
  const bn = (outDir: string, iterations = 12) => job(outDir, {
    model: { batchNorm: true },
    train: { iterations, batchSize: 16, evalEvery: 6, checkpointEvery: 6, statisticsExamples: 40, outDir },
    optimizer: { lr: 0.05, momentum: 0.9, layers: [{ match: 'conv2_bn/*', lrMult: 1, freezeStats: true }] },
  });
  const straight = await readParams((await train(bn(tempDir()))).model);
  const out = tempDir();
  await train(bn(out, 6));
  const resumed = await readParams((await train(bn(out), { resume: true })).model);
  assert.deepEqual(resumed, straight);
  assert.deepEqual([...resumed.get('conv2_bn/moving_variance')!], Array(32).fill(1), 'frozen: as initialised');
  assert.ok(resumed.get('conv1_bn/moving_variance')!.every((v) => v !== 1), 'estimated');
});

test('trainer – fine-tuning replaces the head and never moves a frozen layer', async () => {
  const pre = tempDir();
  await train(job(pre));
  const pretrained = await readParams((await loadCheckpoint(join(pre, 'ckpt-00000012'))).model);
  const tuned = await train(job(tempDir(), {
    data: { path: dataDir, download: false, classes: [7, 8, 9] },
    model: { from: join(pre, 'ckpt-00000012') },
    optimizer: { lr: 0.05, layers: [{ match: 'conv1/*', lrMult: 0 }, { match: 'head/*', lrMult: 10 }, { match: '*', lrMult: 0.1 }] },
  }));
  const after = await readParams(tuned.model);
  assert.deepEqual(after.get('conv1/kernel'), pretrained.get('conv1/kernel'));
  assert.notDeepEqual(after.get('fc1/kernel'), pretrained.get('fc1/kernel'));
  assert.equal(after.get('head/bias')!.length, 3);
});
