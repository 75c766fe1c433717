// `npm run bench:kernels`: per conv layer shape of the zoo models, on wasm,
// forward time and both gradient times with the stock kernels and with ours,
// measured in the same process. Writes bench/results/kernels.json and prints
// a markdown table. The goal: forward + both gradients ≤ 4× forward (ours).
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../core/backend/backends';
import { installWasmTrainingKernels, restoreStockWasmKernels } from '../core/backend/wasm-kernels';
import { writeBenchResult, markdownTable, medianMs } from './report';

interface Layer { name: string; b: number; h: number; ci: number; co: number; k: number; s: number; depthwise?: boolean }

const layers: Layer[] = [
  { name: 'seed conv1 28x28x1->16', b: 64, h: 28, ci: 1, co: 16, k: 3, s: 1 },
  { name: 'seed conv2 14x14x16->32', b: 64, h: 14, ci: 16, co: 32, k: 3, s: 1 },
  { name: 'cifar conv 32x32x32->32', b: 64, h: 32, ci: 32, co: 32, k: 3, s: 1 },
  { name: 'cifar conv 16x16x64->64', b: 64, h: 16, ci: 64, co: 64, k: 3, s: 1 },
  { name: 'mobile dw 16x16x32 s2', b: 64, h: 16, ci: 32, co: 1, k: 3, s: 2, depthwise: true },
];

async function timeKernels(l: Layer) {
  const xs = [l.b, l.h, l.h, l.ci];
  const fs = [l.k, l.k, l.ci, l.co];
  const info = tf.backend_util.computeConv2DInfo(xs as [number, number, number, number], fs as [number, number, number, number], l.s, 1, 'same', undefined, l.depthwise);
  const x = tf.randomNormal(xs), f = tf.randomNormal(fs), dy = tf.randomNormal(info.outShape);
  const [fwd, bpIn, bpFilter] = l.depthwise
    ? ['DepthwiseConv2dNative', 'DepthwiseConv2dNativeBackpropInput', 'DepthwiseConv2dNativeBackpropFilter']
    : ['Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter'];
  const attrs = { strides: l.s, pad: 'same', dilations: 1, dataFormat: 'NHWC' };
  const time = (kernel: string, inputs: tf.NamedTensorMap, extra: object) => {
    if (!tf.getKernel(kernel, 'wasm')) return null;
    return medianMs(() => {
      const out = tf.engine().runKernel(kernel, inputs, { ...attrs, ...extra } as tf.NamedAttrMap) as tf.Tensor;
      out.dataSync();
      out.dispose();
    });
  };
  const result = {
    forward: (await time(fwd, { x, filter: f }, {}))!,
    input: await time(bpIn, { dy, filter: f }, { inputShape: xs }),
    filter: await time(bpFilter, { x, dy }, { filterShape: fs }),
  };
  tf.dispose([x, f, dy]);
  return result;
}

export interface KernelRow { layer: string; batch: number; forwardMs: number; stockInputMs: number | null; stockFilterMs: number | null; inputMs: number | null; filterMs: number | null; trainOverForward: number }

export function kernelTable(rows: KernelRow[]): string {
  return markdownTable(['layer (batch 64)', 'forward ms', 'stock dX ms', 'stock dW ms', 'ours dX ms', 'ours dW ms', '(fwd+dX+dW)/fwd', 'goal ≤ 4'],
    rows.map((r) => [r.layer, r.forwardMs, r.stockInputMs ?? 'missing', r.stockFilterMs ?? 'missing', r.inputMs, r.filterMs, r.trainOverForward, r.trainOverForward <= 4 ? 'met' : 'not met']));
}

/** Stock against ours for every layer; leaves our kernels installed. */
export async function benchKernels(): Promise<KernelRow[]> {
  await initBackend('wasm');
  const rows: KernelRow[] = [];
  for (const l of layers) {
    restoreStockWasmKernels();
    const stock = await timeKernels(l);
    installWasmTrainingKernels();
    const ours = await timeKernels(l);
    const ratio = (ours.forward + ours.input! + ours.filter!) / ours.forward;
    rows.push({ layer: l.name, batch: l.b, forwardMs: ours.forward, stockInputMs: stock.input, stockFilterMs: stock.filter, inputMs: ours.input, filterMs: ours.filter, trainOverForward: ratio });
  }
  return rows;
}

if (require.main === module) {
  benchKernels().then((rows) => writeBenchResult('kernels', { rows }, kernelTable(rows))).catch((err) => { console.error(err); process.exit(1); });
}
