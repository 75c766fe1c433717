// aggregator – the example-weighted mean of the workers' gradients.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GradientAverager } from '../core/train/aggregator';

test('aggregator – mean weighted by example count equals the mean over the whole batch', () => {
  const avg = new GradientAverager([{ name: 'w', shape: [2] }]);
  avg.add(new Map([['w', Float32Array.of(1, 2)]]), 3, 0.5);   // mean of 3 examples
  avg.add(new Map([['w', Float32Array.of(5, -2)]]), 1, 1.5);  // mean of 1 example
  const { loss, grads } = avg.take();
  assert.deepEqual(Array.from(grads.get('w')!), [(3 * 1 + 5) / 4, (3 * 2 - 2) / 4]);
  assert.equal(loss, (3 * 0.5 + 1.5) / 4);
  assert.equal(avg.count, 0, 'empty after take');
  assert.throws(() => avg.add(new Map([['v', Float32Array.of(1)]]), 1, 0), /lacks w/);
});
