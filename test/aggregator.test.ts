// aggregator, sampler, wire-tensors – pure pieces of the distributed step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GradientAverager } from '../coordinator/aggregator';
import { Sampler, shard } from '../core/train/sampler';
import { chunksOf, TensorAssembler } from '../core/wire/tensors';
import { fromFloat16, toFloat16 } from '../core/wire/fp16';
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

test('fp16 – every half converts to float32 and back exactly; midpoints round to even; out of range gives ±Inf or ±0', () => {
  const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
  const floats = fromFloat16(all);
  const back = toFloat16(floats);
  for (let h = 0; h < 65536; h++) {
    if (Number.isNaN(floats[h])) assert.ok(Number.isNaN(fromFloat16(Uint16Array.of(back[h]))[0]), `NaN ${h}`);
    else assert.equal(back[h], h, `half 0x${h.toString(16)}`);
  }
  // Between consecutive positive finite halves a and a+1: just below, at and just above the midpoint.
  for (let h = 0; h < 0x7bff; h++) {
    const mid = (floats[h] + floats[h + 1]) / 2; // exact in float64, and in float32 (one more bit)
    const even = h % 2 === 0 ? h : h + 1;
    const got = toFloat16(Float32Array.of(mid, Math.fround(mid * (1 - 2 ** -20)), Math.fround(mid * (1 + 2 ** -20))));
    assert.deepEqual(Array.from(got), [even, h, h + 1], `around the midpoint of 0x${h.toString(16)}`);
  }
  assert.deepEqual(Array.from(toFloat16(Float32Array.of(65520, -1e6, 2 ** -26, -(2 ** -26)))), [0x7c00, 0xfc00, 0, 0x8000]);
});

test('wire-tensors – float16 chunks carry half the bytes and land as float32 within half-precision rounding; refused unless accepted', () => {
  const values = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 0.01);
  const chunks = [...chunksOf('w', [10, 100], values, 512, DType.FLOAT16)];
  assert.equal(chunks.reduce((a, c) => a + c.data.length, 0), 2000);
  assert.equal(chunks.length, 4);
  assert.throws(() => new TensorAssembler([{ name: 'w', shape: [10, 100] }]).add(chunks[0]), (e: unknown) => e instanceof WireInvalid && e.reason === 'dtype');
  const asm = new TensorAssembler([{ name: 'w', shape: [10, 100] }], [DType.FLOAT16]);
  const odd = Buffer.alloc(chunks[1].data.length + 1).subarray(1); // received bytes: a Buffer view at an odd offset
  odd.set(chunks[1].data);
  [chunks[0], { ...chunks[1], data: odd }, chunks[2], chunks[3]].forEach((c) => asm.add(c));
  assert.ok(asm.complete());
  const got = asm.tensors.get('w')!;
  for (let i = 0; i < values.length; i++) assert.ok(Math.abs(got[i] - values[i]) <= Math.abs(values[i]) * 2 ** -11 + 2 ** -25, `element ${i}`);
  assert.throws(() => asm.add({ ...chunks[0], offset: 1 }), (e: unknown) => e instanceof WireInvalid && e.reason === 'size');
});
