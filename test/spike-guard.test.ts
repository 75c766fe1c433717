// spike-guard – judging a gradient norm against its recent history.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { l2Norm, NormHistory } from '../core/train/spike-guard';

test('spike-guard – a norm over factor × the recent median is a spike once warm; spikes stay out of the history', () => {
  const h = new NormHistory({ factor: 10, window: 3, warmup: 2 });
  assert.deepEqual(h.judge(100), { spike: false, median: 0 }, 'not judged before warmup');
  assert.equal(h.judge(1).spike, false, 'still warming up');
  assert.deepEqual(h.judge(2), { spike: false, median: 50.5 });
  assert.deepEqual(h.judge(21), { spike: true, median: 2 }, 'over 10 × median(100, 1, 2)');
  assert.deepEqual(h.judge(21), { spike: true, median: 2 }, 'the spike did not raise the bar');
  assert.equal(h.judge(20).spike, false, 'exactly 10 × is not over');
  assert.equal(h.judge(NaN).spike, true, 'NaN is never a normal norm');
  assert.equal(h.judge(3e38).spike, true);
});

test('spike-guard – off (factor null) judges nothing; l2Norm is the norm of all tensors as one vector', () => {
  const off = new NormHistory({ factor: null, window: 3, warmup: 0 });
  for (const n of [1, 1e30, NaN]) assert.equal(off.judge(n).spike, false);
  assert.equal(off.on, false);
  assert.equal(l2Norm([Float32Array.of(3), Float32Array.of(0, 4)]), 5);
});
