// BatchMatMul for the wasm backend. The stock kernel hands only the plain
// product to XNNPACK; with transposeA or transposeB set — which is how every
// dense layer's two gradients are asked for (dx = dy·Wᵀ, dW = xᵀ·dy) — it
// falls back to a naive loop: 1568×64 gradients of the seed CNN take 6–7 ms
// against 0.6 ms for the forward product, the CIFAR CNN's 4096×256 ones
// 60–190 ms against 4 ms. Transposing the operand first is one linear pass
// over it, and the product then runs on XNNPACK.
import * as tf from '@tensorflow/tfjs';
import { KernelArgs, KernelCalls } from './kernel-calls';

interface MatMulAttrs { transposeA: boolean; transposeB: boolean }

/** The permutation swapping the last two axes of a rank-`rank` tensor. */
function lastTwoSwapped(rank: number): number[] {
  const perm = Array.from({ length: rank }, (_, i) => i);
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1], perm[rank - 2]];
  return perm;
}

function makeBatchMatMul(stock: tf.KernelFunc) {
  return (args: KernelArgs): tf.TensorInfo => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB } = args.attrs as unknown as MatMulAttrs;
    if (!transposeA && !transposeB) return stock(args) as tf.TensorInfo;
    const k = new KernelCalls(args, 'wasm');
    const plain = (x: tf.TensorInfo, transposed: boolean) => (transposed ? k.transpose(x, lastTwoSwapped(x.shape.length)) : x);
    return k.finish(k.run(stock, { a: plain(a, transposeA), b: plain(b, transposeB) }, { transposeA: false, transposeB: false }));
  };
}

export function matMulKernels(stock: tf.KernelFunc): tf.KernelConfig[] {
  return [{ kernelName: 'BatchMatMul', backendName: 'wasm', kernelFunc: makeBatchMatMul(stock) as tf.KernelFunc }];
}
