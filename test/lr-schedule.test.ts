// lr-schedule – the base rate over iterations, against hand-derived values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { learningRate, Schedule } from '../core/train/lr-schedule';

const close = (a: ArrayLike<number>, b: number[], eps = 1e-6) =>
  assert.ok(Array.from(a).every((v, i) => Math.abs(v - b[i]) < eps), `${Array.from(a)} ≉ ${b}`);

test('lr-schedule – fixed, step, multistep, cosine, warm-up', () => {
  const s = (policy: Schedule['policy'], warmup = { iterations: 0, startFactor: 1 }): Schedule => ({ lr: 0.1, policy, warmup, totalIterations: 100 });
  assert.equal(learningRate(s({ type: 'fixed' }), 77), 0.1);
  close([learningRate(s({ type: 'step', gamma: 0.5, stepSize: 10 }), 25)], [0.025]);
  close([learningRate(s({ type: 'multistep', gamma: 0.1, steps: [10, 50] }), 9)], [0.1]);
  close([learningRate(s({ type: 'multistep', gamma: 0.1, steps: [10, 50] }), 50)], [0.001]);
  close([learningRate(s({ type: 'cosine', minLr: 0 }), 50)], [0.05]);
  close([learningRate(s({ type: 'cosine', minLr: 0.02 }), 100)], [0.02]);
  const warm = s({ type: 'fixed' }, { iterations: 10, startFactor: 0.1 });
  close([learningRate(warm, 0), learningRate(warm, 5), learningRate(warm, 10)], [0.01, 0.055, 0.1]);
});
