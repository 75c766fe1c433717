// divergence – a job at chance with no loss progress is found after the
// documented window (pure), and a real run with far too large steps ends with
// JobDiverged naming what to lower; warn lets it go on; a run that learns,
// however slowly at first, or a task not learned yet (loss ≈ ln classes), is
// never called diverged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chanceAccuracy, ChanceWatch, divergenceAdvice } from '../core/train/divergence';

const opts = { evaluations: 3, action: 'fail' as const };
const at = (iteration: number, valAccuracy: number, valLoss: number) => ({ iteration, valAccuracy, valLoss });

test('divergence – chance is the most common validation class\'s share', () => {
  assert.equal(chanceAccuracy([0, 1, 2, 3, 4]), 0.2);
  assert.equal(chanceAccuracy([0, 0, 0, 1]), 0.75);
});

test('divergence – found after `evaluations` at chance whose loss did not fall; iteration 0 (a fresh head) never counts', () => {
  const w = new ChanceWatch(opts, 0.2, 5);
  assert.equal(w.judge(at(0, 0.2, 12.9)), null);
  assert.equal(w.judge(at(10, 0.2, 12.9)), null);
  assert.equal(w.judge(at(20, 0.21, 12.9)), null);
  assert.equal(w.judge(at(30, 0.2, 12.9)), 'validation accuracy stayed at chance (0.200; chance 0.200) for 3 evaluations, iterations 10–30, with a validation loss that did not fall (12.900 → 12.900; a model that learned nothing yet scores 1.609)');
  assert.equal(w.judge(at(40, 0.2, 12.9)), null, 'the window starts over (a warning per window, not per evaluation)');
  const nan = new ChanceWatch(opts, 0.2, 5);
  for (const i of [10, 20]) nan.judge(at(i, 0.2, NaN));
  assert.match(nan.judge(at(30, 0.2, NaN))!, /did not fall \(NaN → NaN;/);
});

test('divergence – a slow start whose loss falls, or one evaluation above chance, is not a divergence; off is off', () => {
  const slow = new ChanceWatch(opts, 0.2, 5);
  for (const [i, loss] of [[10, 1.61], [20, 1.6], [30, 1.58], [40, 1.5]]) assert.equal(slow.judge(at(i, 0.2, loss)), null);
  const lifts = new ChanceWatch(opts, 0.2, 5);
  for (const [i, acc] of [[10, 0.2], [20, 0.3], [30, 0.2], [40, 0.2]]) assert.equal(lifts.judge(at(i, acc, 13)), null, `the 0.3 at 20 is in the window at ${i}`);
  assert.ok(lifts.judge(at(50, 0.2, 13)), 'three at chance again: found');
  const hard = new ChanceWatch(opts, 0.2, 5); // a task not learned yet: near-uniform predictions, loss ≈ ln 5, not rising fast
  for (const [i, loss] of [[10, 1.61], [20, 1.62], [30, 1.7], [40, 3.1]]) assert.equal(hard.judge(at(i, 0.2, loss)), null, `loss ${loss} is not saturated (2 ln 5 = 3.22)`);
  const off = new ChanceWatch({ evaluations: 1, action: 'off' }, 0.2, 5);
  assert.equal(off.judge(at(10, 0.2, 13)), null);
});

test('divergence – the advice names the base rate, and the largest multiplier when it is above 1', () => {
  assert.equal(divergenceAdvice(5, []), 'the steps are too large: lower optimizer.lr (now 5); train.divergence.action: warn lets such a run go on');
  assert.match(divergenceAdvice(0.01, [{ match: 'head/*', lrMult: 1e9 }, { match: '*', lrMult: 0.1 }]), /lower optimizer\.lr \(now 0\.01\) or the largest multiplier \(lrMult 1000000000 on "head\/\*"\)/);
});
