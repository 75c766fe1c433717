// Installs (and, for benchmarks, removes) tunefleet's wasm training kernels.
// The stock kernels are kept so `restoreStockWasmKernels` can put them back:
// `npm run bench:kernels` measures stock against ours in one process.
import * as tf from '@tensorflow/tfjs';
import { convGradKernels } from './wasm-conv-grads';
import { depthwiseGradKernels } from './wasm-depthwise-grads';
import { matMulKernels } from './wasm-matmul';
import { maxPoolGradKernel } from './wasm-maxpool-grad';

const stock = new Map<string, tf.KernelConfig | undefined>();

function replaceKernel(config: tf.KernelConfig | undefined, name: string): void {
  if (tf.getKernel(name, 'wasm')) tf.unregisterKernel(name, 'wasm');
  if (config) tf.registerKernel(config);
}

export function installWasmTrainingKernels(): void {
  if (stock.size > 0) return;
  const stockInput = tf.getKernel('Conv2DBackpropInput', 'wasm');
  const stockMatMul = tf.getKernel('BatchMatMul', 'wasm');
  if (!stockInput || !stockMatMul) throw new Error('wasm backend kernels are not registered; import @tensorflow/tfjs-backend-wasm first');
  const ours = [...convGradKernels(stockInput.kernelFunc), ...depthwiseGradKernels, maxPoolGradKernel, ...matMulKernels(stockMatMul.kernelFunc)];
  for (const config of ours) {
    stock.set(config.kernelName, tf.getKernel(config.kernelName, 'wasm'));
    replaceKernel(config, config.kernelName);
  }
}

export function restoreStockWasmKernels(): void {
  for (const [name, config] of stock) replaceKernel(config, name);
  stock.clear();
}
