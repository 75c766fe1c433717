// sampler – which examples each step uses, and how a batch is sharded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Sampler, shard } from '../core/train/sampler';

test('sampler – epochs are seeded permutations; a batch crossing an epoch is completed from the next', () => {
  const s = new Sampler(10, 3);
  const a = s.next(4), b = s.next(4), c = s.next(4);
  assert.deepEqual(Array.from(c.epochs), [0, 0, 1, 1]);
  const epoch0 = [...a.indices, ...b.indices, ...c.indices.subarray(0, 2)].sort((x, y) => x - y);
  assert.deepEqual(epoch0, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(s.position, { epoch: 1, offset: 2 });
  const resumed = new Sampler(10, 3, { epoch: 1, offset: 2 });
  assert.deepEqual(resumed.next(5), s.next(5));
});

test('sampler – shards are contiguous, disjoint and differ in size by at most one', () => {
  const batch = Uint32Array.from({ length: 10 }, (_, i) => 100 + i);
  const slices = shard(batch, 3);
  assert.deepEqual(slices.map((s) => s.length), [4, 3, 3]);
  assert.deepEqual(slices.flatMap((s) => Array.from(s)), Array.from(batch));
});
