// results – thresholds, medians over seeds and speed-ups, by hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { firstReached, medianOrNever, medianThresholds, speedups } from '../core/job/results';

const curve = (accs: number[]) => accs.map((a, i) => ({ iteration: (i + 1) * 10, valAccuracy: a, valLoss: 1, trainLoss: 1, wallSeconds: i, evalSeconds: 0 }));

test('results – first iteration at which each threshold was reached, null if never', () => {
  assert.deepEqual(firstReached(curve([0.5, 0.62, 0.59, 0.81, 0.9]), [0.6, 0.8, 0.85, 0.9, 0.95]),
    { '0.6': 20, '0.8': 40, '0.85': 50, '0.9': 50, '0.95': null });
});

test('results – medians treat never as larger than anything', () => {
  assert.equal(medianOrNever([90, 100, 90]), 90);
  assert.equal(medianOrNever([240, null, 210]), 240);
  assert.equal(medianOrNever([null, null, 210]), null);
  assert.equal(medianOrNever([10, 20, 30, 40]), 25);
});

test('results – speed-up is the baseline median over the arm median (the PyTorch reference: 2.67)', () => {
  const fine = medianThresholds([{ '0.9': 90 }, { '0.9': 90 }, { '0.9': 100 }], [0.9]);
  const scratch = medianThresholds([{ '0.9': 240 }, { '0.9': 270 }, { '0.9': 210 }], [0.9]);
  assert.deepEqual(fine, { '0.9': 90 });
  assert.ok(Math.abs(speedups(fine, scratch)['0.9']! - 240 / 90) < 1e-12);
  assert.deepEqual(speedups({ '0.9': null, '0.6': 10 }, { '0.9': 50, '0.6': null }), { '0.9': null, '0.6': null });
});
