// The in-memory dataset every loader produces and every transform consumes.
// Images stay as the bytes the files hold (HWC, uint8) — a quarter of the
// memory of float32 — and are normalised only when a batch is built.

export interface Dataset {
  images: Uint8Array; // count × height × width × channels, row-major HWC
  labels: Int32Array; // 0 ≤ label < numClasses
  shape: [number, number, number]; // [height, width, channels]
  numClasses: number;
}

/** The train and test halves a named dataset ships with. */
export interface DatasetSplits {
  train: Dataset;
  test: Dataset;
}

export function count(ds: Dataset): number {
  return ds.labels.length;
}

export function exampleSize(ds: Dataset): number {
  return ds.shape[0] * ds.shape[1] * ds.shape[2];
}

/** A new dataset holding the examples at `indices`, in that order. */
export function pick(ds: Dataset, indices: ArrayLike<number>, labels?: Int32Array, numClasses = ds.numClasses): Dataset {
  const size = exampleSize(ds);
  const images = new Uint8Array(indices.length * size);
  const newLabels = labels ?? new Int32Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const src = indices[i] * size;
    images.set(ds.images.subarray(src, src + size), i * size);
    if (!labels) newLabels[i] = ds.labels[indices[i]];
  }
  return { images, labels: newLabels, shape: ds.shape, numClasses };
}

export interface Normalization {
  mean: number[]; // per channel, on the 0..1 scale
  std: number[];
}

/**
 * Float32 batch [n, h, w, c] for the examples at `indices`, scaled to 0..1
 * and then normalised per channel: (x/255 − mean[c]) / std[c].
 */
export function batchImages(ds: Dataset, indices: ArrayLike<number>, norm: Normalization): Float32Array {
  const size = exampleSize(ds);
  const c = ds.shape[2];
  const scale = norm.std.map((s) => 1 / (255 * s));
  const shift = norm.mean.map((m, i) => -m / norm.std[i]);
  const out = new Float32Array(indices.length * size);
  for (let i = 0; i < indices.length; i++) {
    const src = indices[i] * size, dst = i * size;
    for (let j = 0; j < size; j++) {
      const ch = j % c;
      out[dst + j] = ds.images[src + j] * scale[ch] + shift[ch];
    }
  }
  return out;
}

export function batchLabels(ds: Dataset, indices: ArrayLike<number>): Int32Array {
  const out = new Int32Array(indices.length);
  for (let i = 0; i < indices.length; i++) out[i] = ds.labels[indices[i]];
  return out;
}
