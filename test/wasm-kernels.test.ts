// wasm-kernels – every training kernel we register for wasm matches the cpu
// backend on fresh random inputs (relative error ≤ 1e-5, max-norm).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../core/backend/backends';
import { product } from '../core/util/numbers';

interface Case { b: number; h: number; w: number; ci: number; co: number; k: number; kw?: number; s: number; pad: 'valid' | 'same' }

const cases: Case[] = [];
for (const pad of ['valid', 'same'] as const) {
  for (const s of [1, 2]) {
    for (const k of [1, 2, 3, 4, 5]) cases.push({ b: k % 2 ? 3 : 1, h: 9, w: 7, ci: 3, co: 4, k, s, pad });
  }
}
cases.push({ b: 2, h: 12, w: 10, ci: 5, co: 6, k: 3, kw: 2, s: 2, pad: 'same' }); // non-square kernel
cases.push({ b: 4, h: 28, w: 28, ci: 1, co: 16, k: 3, s: 1, pad: 'same' });        // the seed CNN's first layer
cases.push({ b: 2, h: 11, w: 9, ci: 8, co: 5, k: 3, s: 2, pad: 'same' });         // more channels: the filter gradient's conv route
cases.push({ b: 2, h: 6, w: 5, ci: 12, co: 7, k: 1, s: 1, pad: 'valid' });        // pointwise
cases.push({ b: 2, h: 7, w: 6, ci: 9, co: 4, k: 1, s: 2, pad: 'same' });         // pointwise, strided

function rand(shape: number[], seed: number): Float32Array {
  let x = seed * 2654435761 >>> 0;
  const out = new Float32Array(product(shape));
  for (let i = 0; i < out.length; i++) { x = (x * 1664525 + 1013904223) >>> 0; out[i] = x / 2 ** 31 - 1; }
  return out;
}

async function onBackend(name: string, fn: () => tf.Tensor): Promise<Float32Array> {
  await tf.setBackend(name);
  const t = fn();
  const data = (await t.data()) as Float32Array;
  t.dispose();
  return data;
}

function relErr(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let diff = 0, scale = 0;
  for (let i = 0; i < a.length; i++) { diff = Math.max(diff, Math.abs(a[i] - b[i])); scale = Math.max(scale, Math.abs(b[i])); }
  return diff / (scale || 1);
}

async function compare(kernel: string, inputs: () => tf.NamedTensorMap, attrs: object): Promise<number> {
  const run = () => tf.tidy(() => tf.engine().runKernel(kernel, inputs(), attrs as tf.NamedAttrMap) as tf.Tensor);
  const want = await onBackend('cpu', run);
  const got = await onBackend('wasm', run);
  return relErr(got, want);
}

before(async () => { await initBackend('wasm'); });

function label(c: Case): string {
  return `b${c.b} ${c.h}x${c.w}x${c.ci}->${c.co} k${c.k}x${c.kw ?? c.k} s${c.s} ${c.pad}`;
}

for (const [i, c] of cases.entries()) {
  const kw = c.kw ?? c.k;
  const outShape = (xs: number[], fs: number[], depthwise: boolean) =>
    tf.backend_util.computeConv2DInfo(xs as [number, number, number, number], fs as [number, number, number, number], c.s, 1, c.pad, undefined, depthwise).outShape;

  test(`wasm-kernels – Conv2D gradients match cpu: ${label(c)}`, async () => {
    const xs = [c.b, c.h, c.w, c.ci], fs = [c.k, kw, c.ci, c.co];
    const ys = outShape(xs, fs, false);
    const x = () => tf.tensor(rand(xs, i + 1), xs), dy = () => tf.tensor(rand(ys, i + 2), ys), f = () => tf.tensor(rand(fs, i + 3), fs);
    const filterErr = await compare('Conv2DBackpropFilter', () => ({ x: x(), dy: dy() }), { strides: c.s, pad: c.pad, dataFormat: 'NHWC', filterShape: fs });
    const inputErr = await compare('Conv2DBackpropInput', () => ({ dy: dy(), filter: f() }), { strides: c.s, pad: c.pad, dataFormat: 'NHWC', inputShape: xs });
    assert.ok(filterErr <= 1e-5, `filter gradient relative error ${filterErr}`);
    assert.ok(inputErr <= 1e-5, `input gradient relative error ${inputErr}`);
  });

  test(`wasm-kernels – depthwise gradients match cpu: ${label(c)}`, async () => {
    for (const m of [1, 2]) {
      const xs = [c.b, c.h, c.w, c.ci], fs = [c.k, kw, c.ci, m];
      const ys = outShape(xs, fs, true);
      const x = () => tf.tensor(rand(xs, i + 4), xs), dy = () => tf.tensor(rand(ys, i + 5), ys), f = () => tf.tensor(rand(fs, i + 6), fs);
      const attrs = { strides: c.s, dilations: 1, pad: c.pad };
      const filterErr = await compare('DepthwiseConv2dNativeBackpropFilter', () => ({ x: x(), dy: dy() }), { ...attrs, filterShape: fs });
      const inputErr = await compare('DepthwiseConv2dNativeBackpropInput', () => ({ dy: dy(), filter: f() }), { ...attrs, inputShape: xs });
      assert.ok(filterErr <= 1e-5, `multiplier ${m}: filter gradient relative error ${filterErr}`);
      assert.ok(inputErr <= 1e-5, `multiplier ${m}: input gradient relative error ${inputErr}`);
    }
  });
}

test('wasm-kernels – gradients leak no wasm memory', async () => {
  await tf.setBackend('wasm');
  // Every kernel we register: both conv gradients (the patch route: 3 input channels), MaxPoolGrad, transposed BatchMatMuls.
  const x = tf.randomNormal([2, 8, 8, 3]), f = tf.randomNormal([3, 3, 3, 4]), w = tf.randomNormal([16, 5]);
  const net = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.matMul(tf.maxPool(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same'), 2, 2, 'valid').reshape([2, 16]), c as tf.Tensor2D).square().sum();
  const step = () => tf.tidy(() => tf.grads(net)([x, f, w]));
  tf.dispose(step());
  const before = tf.memory();
  for (let i = 0; i < 5; i++) tf.dispose(step());
  const after = tf.memory();
  assert.equal(after.numTensors, before.numTensors);
  assert.equal(after.numBytes, before.numBytes);
  tf.dispose([x, f, w]);
});

/** MaxPoolGrad on both backends; the input is `x`, the forward output computed on each backend as tfjs would. */
async function maxPoolGradBoth(x: Float32Array, xs: number[], pool: number[], s: number[], pad: 'valid' | 'same'): Promise<[Float32Array, Float32Array]> {
  const ys = tf.backend_util.computePool2DInfo(xs as [number, number, number, number], pool as [number, number], s as [number, number], 1, pad).outShape;
  const run = () => tf.tidy(() => {
    const input = tf.tensor(x, xs);
    const output = tf.maxPool(input as tf.Tensor4D, pool as [number, number], s as [number, number], pad);
    const dy = tf.tensor(rand(ys, 7), ys);
    return tf.engine().runKernel('MaxPoolGrad', { dy, input, output }, { filterSize: pool, strides: s, pad } as unknown as tf.NamedAttrMap) as tf.Tensor;
  });
  return [await onBackend('wasm', run), await onBackend('cpu', run)];
}

test('wasm-kernels – MaxPoolGrad: the stock kernel\'s negative-window case, now the cpu backend\'s answer', async () => {
  const [got, want] = await maxPoolGradBoth(Float32Array.of(-3, -1, -2, -4, -5, -1.5, -2.5, -3), [1, 2, 4, 1], [2, 2], [2, 2], 'valid');
  assert.deepEqual([...want].map((v, i) => (v ? i : -1)).filter((i) => i >= 0), [1, 2], 'cpu: the gradient goes to the maxima -1 and -2');
  assert.deepEqual(got, want);
});

test('wasm-kernels – MaxPoolGrad matches cpu exactly: pool sizes, strides (overlapping too), padding, negative inputs, ties', async () => {
  let seed = 11;
  for (const pad of ['valid', 'same'] as const) {
    for (const [pool, s] of [[[2, 2], [2, 2]], [[3, 3], [2, 2]], [[3, 2], [1, 2]], [[2, 2], [1, 1]], [[1, 1], [1, 1]], [[3, 3], [3, 3]]] as const) {
      for (const c of [1, 2, 5]) {
        const xs = [2, 7, 8, c];
        const uniform = rand(xs, seed++); // in [-1, 1): all-negative windows included
        const tied = uniform.map((v) => Math.round(v * 2) / 2); // few distinct values: ties in most windows
        for (const [what, x] of [['uniform', uniform], ['tied', tied]] as const) {
          const [got, want] = await maxPoolGradBoth(x, xs, [...pool], [...s], pad);
          assert.deepEqual(got, want, `${what} pool ${pool} stride ${s} ${pad} c${c}`);
        }
      }
    }
  }
});

test('wasm-kernels – BatchMatMul matches cpu with either operand transposed (rank 2 and batched)', async () => {
  let seed = 31;
  for (const batch of [[], [3]]) {
    for (const [m, k, n] of [[5, 7, 3], [64, 40, 16], [1, 9, 1]]) {
      for (const transposeA of [false, true]) {
        for (const transposeB of [false, true]) {
          const as = [...batch, ...(transposeA ? [k, m] : [m, k])], bs = [...batch, ...(transposeB ? [n, k] : [k, n])];
          const [sa, sb] = [seed++, seed++];
          const err = await compare('BatchMatMul', () => ({ a: tf.tensor(rand(as, sa), as), b: tf.tensor(rand(bs, sb), bs) }), { transposeA, transposeB });
          assert.ok(err <= 1e-5, `${as} × ${bs} transposeA ${transposeA} transposeB ${transposeB}: relative error ${err}`);
        }
      }
    }
  }
});
