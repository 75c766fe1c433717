// The dataset transforms the experiments need. Each is a pure function from a
// Dataset to a new Dataset; none mutates its input, and every choice that
// involves randomness takes an explicit seed.
import { count, Dataset, pick } from './dataset';
import { ConfigInvalid } from '../errors';
import { permutation } from '../util/rng';

/** Keep only `classes` and relabel them 0..k-1 in the order given. */
export function selectClasses(ds: Dataset, classes: number[]): Dataset {
  const bad = classes.find((c) => !Number.isInteger(c) || c < 0 || c >= ds.numClasses);
  if (bad !== undefined) throw new ConfigInvalid(`class ${bad} does not exist: the dataset has classes 0..${ds.numClasses - 1}`);
  if (new Set(classes).size !== classes.length) throw new ConfigInvalid(`classes ${classes.join(',')} lists a class twice`);
  const newLabel = new Map(classes.map((c, i) => [c, i]));
  const keep: number[] = [];
  for (let i = 0; i < count(ds); i++) if (newLabel.has(ds.labels[i])) keep.push(i);
  const labels = Int32Array.from(keep, (i) => newLabel.get(ds.labels[i])!);
  return pick(ds, keep, labels, classes.length);
}

export interface Limit {
  perClass?: number;
  total?: number;
}

/**
 * At most `perClass` examples of each class and at most `total` in all,
 * drawn in a seeded random order (so a subset is a fair sample, and the same
 * seed gives the same subset). Kept examples stay in their original order.
 */
export function limitExamples(ds: Dataset, limit: Limit, seed: number): Dataset {
  const order = permutation(count(ds), seed);
  const perClass = new Array(ds.numClasses).fill(0);
  const keep: number[] = [];
  for (const i of order) {
    if (limit.total !== undefined && keep.length >= limit.total) break;
    const label = ds.labels[i];
    if (limit.perClass !== undefined && perClass[label] >= limit.perClass) continue;
    perClass[label]++;
    keep.push(i);
  }
  return pick(ds, keep.sort((a, b) => a - b));
}

/** Hold out `validation` examples (a count, or a fraction when < 1), seeded. */
export function holdOut(ds: Dataset, validation: number, seed: number): { train: Dataset; val: Dataset } {
  const n = count(ds);
  const size = validation < 1 ? Math.round(validation * n) : validation;
  if (!Number.isInteger(size) || size < 0 || size >= n) {
    throw new ConfigInvalid(`validation split ${validation} must leave at least one training example (dataset has ${n})`);
  }
  const order = permutation(n, seed);
  const val = Array.from(order.subarray(0, size)).sort((a, b) => a - b);
  const train = Array.from(order.subarray(size)).sort((a, b) => a - b);
  return { train: pick(ds, train), val: pick(ds, val) };
}

/** Per-channel mean and standard deviation on the 0..1 scale. */
export function channelStats(ds: Dataset): { mean: number[]; std: number[] } {
  const c = ds.shape[2];
  const sum = new Float64Array(c), sq = new Float64Array(c);
  for (let i = 0; i < ds.images.length; i++) {
    const v = ds.images[i] / 255;
    sum[i % c] += v;
    sq[i % c] += v * v;
  }
  const n = ds.images.length / c;
  const mean = Array.from(sum, (s) => s / n);
  const std = Array.from(sq, (s, i) => Math.sqrt(Math.max(s / n - mean[i] ** 2, 1e-12)));
  return { mean, std };
}
