// aggregator, sampler, wire-tensors – pure pieces of the distributed step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GradientAverager } from '../core/aggregator';
import { Sampler, shard } from '../core/sampler';
import { chunksOf, TensorAssembler } from '../core/wire-tensors';
import { WireInvalid } from '../core/errors';
import { DType } from '../proto/gen/tunefleet/v1/tunefleet';

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

test('wire-tensors – chunks reassemble exactly; every bad chunk is rejected with a reason', () => {
  const values = Float32Array.from({ length: 1000 }, (_, i) => i * 0.5);
  const chunks = [...chunksOf('w', [10, 100], values, 1024)];
  assert.equal(chunks.length, 4);
  const asm = new TensorAssembler([{ name: 'w', shape: [10, 100] }]);
  const done = chunks.map((c) => asm.add(c));
  assert.deepEqual(done, [null, null, null, 'w']);
  assert.deepEqual(asm.tensors.get('w'), values);
  assert.ok(asm.complete());
  const ok = chunks[0];
  const bad: [object, string][] = [
    [{ ...ok, name: 'x' }, 'unknown-name'],
    [{ ...ok, shape: [100, 10] }, 'shape'],
    [{ ...ok, dtype: DType.DTYPE_UNSPECIFIED }, 'dtype'],
    [{ ...ok, offset: 3999 }, 'size'],
    [{ ...ok, offset: 3072, data: new Uint8Array(2048) }, 'size'],
  ];
  for (const [chunk, reason] of bad) {
    assert.throws(() => asm.add(chunk as typeof ok), (e: unknown) => e instanceof WireInvalid && e.reason === reason, reason);
  }
  // One transfer carries each tensor once: re-sending chunks overflows it.
  assert.throws(() => chunks.forEach((c) => asm.add(c)), (e: unknown) => e instanceof WireInvalid && e.reason === 'size' && /more than all 1 tensors hold/.test(e.message));
  asm.reset();
  chunks.forEach((c) => asm.add(c));
  assert.ok(asm.complete(), 'after a reset the next transfer is accepted');
});
