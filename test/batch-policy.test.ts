// batch-policy – the global batch and learning rate as workers join and leave.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BatchScaler } from '../core/train/batch-policy';

test('batch policy – global keeps batch and rate; per-worker scales both and ramps the rate', () => {
  const global = new BatchScaler({ policy: 'global', batchSize: 64, plannedWorkers: 2, warmup: 10 });
  assert.deepEqual(global.at(0, 5), { batchSize: 64, lrFactor: 1 });
  const s = new BatchScaler({ policy: 'per-worker', batchSize: 32, plannedWorkers: 2, warmup: 10 });
  assert.deepEqual(s.at(0, 2), { batchSize: 64, lrFactor: 1 });
  assert.deepEqual(s.at(100, 4), { batchSize: 128, lrFactor: 1 }, 'a change starts the ramp where the rate was');
  assert.deepEqual(s.at(105, 4), { batchSize: 128, lrFactor: 1.5 });
  assert.deepEqual(s.at(110, 4), { batchSize: 128, lrFactor: 2 });
  assert.deepEqual(s.at(112, 1), { batchSize: 32, lrFactor: 2 });
  assert.deepEqual(s.at(117, 1), { batchSize: 32, lrFactor: 2 - 1.5 * 0.5 });
  const now = new BatchScaler({ policy: 'per-worker', batchSize: 32, plannedWorkers: 2, warmup: 0 });
  assert.deepEqual(now.at(3, 1), { batchSize: 32, lrFactor: 0.5 });
});
