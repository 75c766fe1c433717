// fp16 – half-precision conversion for gradients on the wire.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fitsFloat16, fromFloat16, toFloat16 } from '../core/wire/fp16';
import { chunksOf, TensorAssembler } from '../core/wire/tensors';
import { DType } from '../proto/gen/tunefleet/v1/tunefleet';

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

test('fp16 – fitsFloat16 is exactly "no finite value becomes ±Inf"; a float16 job accepts a tensor sent as float32 instead', () => {
  const justFits = Float32Array.of(65519.99, -65519.99, 1e-9);
  const overflows = Float32Array.of(1, 65520);
  assert.equal(fitsFloat16(justFits), true);
  assert.ok(fromFloat16(toFloat16(justFits)).every(Number.isFinite));
  assert.equal(fitsFloat16(overflows), false);
  assert.equal(fromFloat16(toFloat16(overflows))[1], Infinity, 'what float16 would have sent');
  assert.equal(fitsFloat16(Float32Array.of(-3e38)), false);
  const asm = new TensorAssembler([{ name: 'w', shape: [2] }], [DType.FLOAT16, DType.FLOAT32]);
  for (const c of chunksOf('w', [2], overflows, 1 << 20, DType.FLOAT32)) asm.add(c);
  assert.deepEqual(asm.tensors.get('w'), overflows, 'sent as float32, exact');
});
