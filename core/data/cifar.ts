// CIFAR-10 and CIFAR-100 binary versions.
// CIFAR-10 record:  1 label byte, then 3072 pixel bytes (1024 R, 1024 G, 1024 B, row-major).
// CIFAR-100 record: 1 coarse-label byte, 1 fine-label byte, then the same 3072 pixel bytes.
// Pixels are stored channel-planar (CHW); we convert to HWC like every other
// dataset here. A file whose length is not a whole number of records, or a
// label out of range, is DatasetMalformed.
import { readFileSync } from 'node:fs';
import { Dataset } from './dataset';
import { DatasetMalformed } from '../errors';

const PLANE = 32 * 32;
const PIXELS = 3 * PLANE;

export type CifarKind = { kind: 'cifar10' } | { kind: 'cifar100'; labels: 'fine' | 'coarse' };

function layout(k: CifarKind): { labelBytes: number; labelOffset: number; numClasses: number } {
  if (k.kind === 'cifar10') return { labelBytes: 1, labelOffset: 0, numClasses: 10 };
  return k.labels === 'fine' ? { labelBytes: 2, labelOffset: 1, numClasses: 100 } : { labelBytes: 2, labelOffset: 0, numClasses: 20 };
}

export function parseCifar(file: string, buf: Buffer, k: CifarKind): Dataset {
  const { labelBytes, labelOffset, numClasses } = layout(k);
  const record = labelBytes + PIXELS;
  if (buf.length === 0 || buf.length % record !== 0) {
    throw new DatasetMalformed(file, `${buf.length} bytes is not a whole number of ${record}-byte ${k.kind} records (truncated, or not a ${k.kind} binary file)`);
  }
  const n = buf.length / record;
  const images = new Uint8Array(n * PIXELS);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const base = i * record;
    const label = buf[base + labelOffset];
    if (label >= numClasses) throw new DatasetMalformed(file, `record ${i}: label ${label} is out of range 0..${numClasses - 1}`);
    labels[i] = label;
    const px = base + labelBytes, out = i * PIXELS;
    for (let p = 0; p < PLANE; p++) {
      images[out + 3 * p] = buf[px + p];
      images[out + 3 * p + 1] = buf[px + PLANE + p];
      images[out + 3 * p + 2] = buf[px + 2 * PLANE + p];
    }
  }
  return { images, labels, shape: [32, 32, 3], numClasses };
}

/** Load and concatenate several CIFAR binary files (e.g. data_batch_1..5.bin). */
export function loadCifarFiles(files: string[], k: CifarKind): Dataset {
  const parts = files.map((f) => parseCifar(f, readFileSync(f), k));
  const n = parts.reduce((a, p) => a + p.labels.length, 0);
  const images = new Uint8Array(n * PIXELS);
  const labels = new Int32Array(n);
  let at = 0;
  for (const p of parts) {
    images.set(p.images, at * PIXELS);
    labels.set(p.labels, at);
    at += p.labels.length;
  }
  return { images, labels, shape: [32, 32, 3], numClasses: parts[0].numClasses };
}
