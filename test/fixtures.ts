// Test helpers that write small datasets in the exact on-disk formats.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

export function tempDir(prefix = 'tunefleet-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function idxBytes(dims: number[], data: Uint8Array): Buffer {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header[2] = 0x08;
  header[3] = dims.length;
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([header, Buffer.from(data)]);
}

/** Images whose pixel value encodes (example, position) so tests can check layout. */
export function pixels(n: number, size: number, seed = 0): Uint8Array {
  return Uint8Array.from({ length: n * size }, (_, i) => (i * 7 + seed * 13 + Math.floor(i / size)) % 256);
}

/** Write a Fashion-MNIST-shaped IDX set (train + t10k) into `dir`. */
export function writeIdxSet(dir: string, nTrain: number, nTest: number, gzip = true, h = 28, w = 28): void {
  const write = (name: string, buf: Buffer) => writeFileSync(join(dir, gzip ? `${name}.gz` : name), gzip ? gzipSync(buf) : buf);
  for (const [prefix, n] of [['train', nTrain], ['t10k', nTest]] as const) {
    write(`${prefix}-images-idx3-ubyte`, idxBytes([n, h, w], pixels(n, h * w)));
    write(`${prefix}-labels-idx1-ubyte`, idxBytes([n], Uint8Array.from({ length: n }, (_, i) => i % 10)));
  }
}

/** Start the wasm backend and write a small IDX set (writeIdxSet) into a fresh directory: the `before` of tests that run real jobs. */
export async function wasmWithIdxSet(nTrain: number, nTest: number): Promise<string> {
  const { initBackend } = await import('../core/backend/backends');
  await initBackend('wasm');
  const dir = tempDir();
  writeIdxSet(dir, nTrain, nTest);
  return dir;
}

/** CIFAR records: label byte(s), then 1024 R, 1024 G, 1024 B. Pixel = channel*80 + label + (p % 7). */
export function cifarBytes(labels: number[][]): Buffer {
  const records = labels.map((ls) => {
    const px = Buffer.alloc(3072);
    for (let ch = 0; ch < 3; ch++) for (let p = 0; p < 1024; p++) px[ch * 1024 + p] = ch * 80 + ls[ls.length - 1] + (p % 7);
    return Buffer.concat([Buffer.from(ls), px]);
  });
  return Buffer.concat(records);
}

/**
 * Save a model of about `mib` MiB for 28×28×1 inputs (one wide dense layer,
 * `wide`, then a 10-class `head`) in `dir`; returns its model.json. Tests
 * and benchmarks of moving large tensors use it: its compute is small.
 */
export async function saveWideModel(dir: string, mib: number, kernelInitializer: 'zeros' | 'glorotUniform' = 'glorotUniform'): Promise<string> {
  const tf = await import('@tensorflow/tfjs');
  const { saveModel } = await import('../core/model/io');
  const units = Math.max(1, Math.round((mib * 2 ** 20) / 4 / 785));
  const model = tf.sequential({ layers: [
    tf.layers.flatten({ name: 'flatten', inputShape: [28, 28, 1] }),
    tf.layers.dense({ name: 'wide', units, activation: 'relu', kernelInitializer }),
    tf.layers.dense({ name: 'head', units: 10, activation: 'softmax', kernelInitializer }),
  ] });
  await saveModel(model, dir);
  model.dispose();
  return join(dir, 'model.json');
}
