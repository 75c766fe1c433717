// fingerprint – a checkpoint is resumed only by the job that wrote it: a
// changed seed, batch, data selection or model is refused, naming what differs.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { CheckpointInvalid } from '../core/errors';
import { parseJob } from '../core/job/config';
import { differences, fingerprint } from '../core/job/fingerprint';
import { train } from '../core/train/trainer';
import { tempDir, wasmWithIdxSet } from './fixtures';

let dataDir = '';
before(async () => {
  dataDir = await wasmWithIdxSet(200, 50);
});

test('fingerprint – differences name each changed field with both values; a checkpoint from before fingerprints is checked on its seed', () => {
  const a = fingerprint(parseJob({ seed: 1 }), 100);
  assert.deepEqual(differences(a, a), []);
  assert.deepEqual(differences(a, fingerprint(parseJob({ seed: 2, train: { batchSize: 32 } }), 100)), [
    'seed: 1 in the checkpoint, 2 now', 'train.batchSize: 64 in the checkpoint, 32 now',
  ]);
  assert.deepEqual(differences(undefined, a), []);
  assert.deepEqual(differences({ seed: 7 }, a), ['seed: 7 in the checkpoint, 1 now']);
});

test('fingerprint – resuming with another seed, batch size or data selection is refused; the same job resumes', async () => {
  const out = tempDir();
  const job = (over: { seed?: number; batchSize?: number; limitTotal?: number; iterations?: number } = {}) => parseJob({
    name: 'fp', backend: 'wasm', seed: over.seed ?? 1,
    data: { path: dataDir, download: false, limitTotal: over.limitTotal ?? null },
    train: { iterations: over.iterations ?? 4, batchSize: over.batchSize ?? 16, evalEvery: 4, logEvery: 4, checkpointEvery: 2, outDir: out },
  });
  await train(job());
  const refused = async (changed: Parameters<typeof job>[0], what: RegExp) =>
    assert.rejects(train(job(changed), { resume: true }), (e: Error) => e instanceof CheckpointInvalid && what.test(e.message) && /was written by a different job/.test(e.message));
  await refused({ seed: 2 }, /seed: 1 in the checkpoint, 2 now/);
  await refused({ batchSize: 8 }, /train\.batchSize: 16 in the checkpoint, 8 now/);
  await refused({ limitTotal: 100 }, /data \(dataset and selection\).*training examples: 200 in the checkpoint, 100 now/);
  const resumed = await train(job({ iterations: 6 }), { resume: true });
  assert.deepEqual(resumed.curve.map((p) => p.iteration), [6], 'the same job resumes from iteration 4 (a longer run is the same job)');
});
