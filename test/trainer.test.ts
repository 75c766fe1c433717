// trainer – a real (tiny) single-process run on IDX files written by the
// test: evaluation and checkpoints, resume = uninterrupted, fine-tuning with a
// replaced head and a frozen layer, config errors and the CLI's error lines.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { initBackend } from '../core/backend/backends';
import { parseJob, loadJobFile } from '../core/job/config';
import { defaultsYaml } from '../core/job/config-docs';
import { listCheckpoints, loadCheckpoint } from '../core/model/checkpoint';
import { ConfigInvalid } from '../core/errors';
import { loadModel } from '../core/model/io';
import { readParams } from '../core/model/params';
import { train } from '../core/train/trainer';
import { tempDir, writeIdxSet } from './fixtures';

const run = promisify(execFile);
const CLI = join(__dirname, '..', 'cli', 'main.js');
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
  assert.deepEqual(listCheckpoints(out), ['ckpt-00000006', 'ckpt-00000012']);
  const saved = await loadModel(join(out, 'model', 'model.json'));
  assert.deepEqual(readParams(saved), readParams(result.model));
});

test('trainer – a run resumed from its checkpoint ends with the same parameters as one that never stopped', async () => {
  const straight = await train(job(tempDir()));
  const out = tempDir();
  await train(job(out, { train: { iterations: 6, batchSize: 16, evalEvery: 6, checkpointEvery: 6, outDir: out } }));
  const resumed = await train(job(out), { resume: true });
  assert.deepEqual(readParams(resumed.model), readParams(straight.model));
  assert.notDeepEqual(readParams(resumed.model), readParams((await loadCheckpoint(join(out, 'ckpt-00000006'))).model));
});

test('trainer – fine-tuning replaces the head and never moves a frozen layer', async () => {
  const pre = tempDir();
  await train(job(pre));
  const pretrained = readParams((await loadCheckpoint(join(pre, 'ckpt-00000012'))).model);
  const tuned = await train(job(tempDir(), {
    data: { path: dataDir, download: false, classes: [7, 8, 9] },
    model: { from: join(pre, 'ckpt-00000012') },
    optimizer: { lr: 0.05, layers: [{ match: 'conv1/*', lrMult: 0 }, { match: 'head/*', lrMult: 10 }, { match: '*', lrMult: 0.1 }] },
  }));
  const after = readParams(tuned.model);
  assert.deepEqual(after.get('conv1/kernel'), pretrained.get('conv1/kernel'));
  assert.notDeepEqual(after.get('fc1/kernel'), pretrained.get('fc1/kernel'));
  assert.equal(after.get('head/bias')!.length, 3);
});

test('config – errors name the field and what is wrong; typos are not ignored', () => {
  assert.throws(() => parseJob({ optimizer: { lr: 'fast' } }), (e: unknown) => e instanceof ConfigInvalid && /optimizer\.lr: Expected number, received string/.test(e.message));
  assert.throws(() => parseJob({ train: { iteration: 5 } }), /train: Unrecognized key\(s\) in object: 'iteration'/);
  assert.throws(() => parseJob({ optimizer: { policy: { type: 'step', gamma: 0.1 } } }), /optimizer\.policy\.stepSize: Required/);
  const dir = tempDir();
  writeFileSync(join(dir, 'j.yaml'), 'train: [1, 2\n');
  assert.throws(() => loadJobFile(join(dir, 'j.yaml')), /j\.yaml: not valid YAML/);
  assert.equal(parseJob({}).optimizer.momentum, 0.9);
  assert.throws(() => parseJob({ pretrain: { train: { iterations: -1 } } }), /\(pretrain stage\): train\.iterations: Number must be greater than 0/);
  assert.throws(() => parseJob({ pretrain: { cluster: {} } }), /pretrain: Unrecognized key\(s\) in object: 'cluster'/);
});

test('config – docs/config.md shows exactly the defaults the schema has', () => {
  const doc = readFileSync(join(__dirname, '..', '..', 'docs', 'config.md'), 'utf8');
  assert.ok(doc.includes(defaultsYaml()), 'docs/config.md is stale: run npm run docs:config');
});

test('cli – a bad config or a missing dataset is one clear line and a non-zero exit', async () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'bad.yaml'), 'optimizer:\n  momentum: 3\n');
  const bad = await run('node', [CLI, 'train', '--config', join(dir, 'bad.yaml')]).catch((e) => e);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^ConfigInvalid: .*bad\.yaml: optimizer\.momentum: Number must be less than or equal to 1\n$/);
  writeFileSync(join(dir, 'nodata.yaml'), `data:\n  path: ${join(dir, 'nowhere')}\n`);
  const missing = await run('node', [CLI, 'train', '--config', join(dir, 'nodata.yaml'), '--backend', 'wasm']).catch((e) => e);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /DatasetNotFound: fashion-mnist not in .*nowhere/);
  assert.doesNotMatch(missing.stderr, /\n\s+at /, 'no stack trace');
});
