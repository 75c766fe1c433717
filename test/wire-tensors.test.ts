// wire-tensors – tensors split into chunks and checked as they are put back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chunksOf, TensorAssembler } from '../core/wire/tensors';
import { WireInvalid } from '../core/errors';
import { DType } from '../proto/gen/tunefleet/v1/tunefleet';

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
  // One transfer carries each tensor once: re-sending a chunk is refused.
  assert.throws(() => asm.add(chunks[0]), (e: unknown) => e instanceof WireInvalid && e.reason === 'size' && /next must start at element 1000/.test(e.message));
  asm.reset();
  chunks.forEach((c) => asm.add(c));
  assert.ok(asm.complete(), 'after a reset the next transfer is accepted');
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

test('wire-tensors – coverage, not a byte count: overlapping, out-of-order or skipped chunks are refused even when their sizes add up', () => {
  const values = Float32Array.from({ length: 144 }, (_, i) => i);
  const asm = () => new TensorAssembler([{ name: 'w', shape: [144] }]);
  const part = (offset: number, bytes: number) => ({ name: 'w', dtype: DType.FLOAT32, shape: [144], offset, data: new Uint8Array(values.buffer, offset, bytes) });
  // The outside client's case: [0,288), [288,572), [288,292) adds up to 576 bytes but never sent [572,576).
  const a = asm();
  a.add(part(0, 288));
  a.add(part(288, 284));
  assert.throws(() => a.add(part(288, 4)), (e: unknown) => e instanceof WireInvalid && e.reason === 'size');
  assert.equal(a.complete(), false);
  const b = asm();
  assert.throws(() => b.add(part(288, 288)), (e: unknown) => e instanceof WireInvalid && e.reason === 'size', 'a gap before the first chunk');
  const c = asm();
  c.add(part(0, 288));
  assert.throws(() => c.add(part(0, 288)), (e: unknown) => e instanceof WireInvalid && e.reason === 'size', 'the same chunk twice');
  assert.throws(() => c.add(part(288, 0)), (e: unknown) => e instanceof WireInvalid && e.reason === 'size', 'an empty chunk of a non-empty tensor');
  c.add(part(288, 288));
  assert.ok(c.complete());
  assert.deepEqual(c.tensors.get('w'), values);
});

test('wire-tensors – an empty tensor completes with its one empty chunk, once', () => {
  const asm = new TensorAssembler([{ name: 'e', shape: [0, 3] }]);
  const [chunk] = [...chunksOf('e', [0, 3], new Float32Array(0))];
  assert.equal(asm.add(chunk), 'e');
  assert.ok(asm.complete());
  assert.throws(() => asm.add(chunk), (e: unknown) => e instanceof WireInvalid && e.reason === 'size');
});
