// Named datasets: where to find them and how to load them.
//
// Search order, first hit wins:
//   1. an explicit path (job config `data.path`, or --data) — if given and the
//      files are not there, that is an error: we never silently use another copy;
//   2. ./data/<name>;
//   3. system locations: /usr/share/datasets/<name> (Debian's dataset-* packages);
//   4. the cache, $TUNEFLEET_CACHE or ~/.cache/tunefleet, under datasets/<name>;
//   5. a download from the official URL into the cache, MD5-verified (unless
//      downloads are off). Offline with no copy: DatasetNotFound saying how to get one.
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { DatasetSplits } from './dataset';
import { loadCifarFiles } from './cifar';
import { loadIdxPair } from './idx';
import { downloadInto, Source } from './download';
import { DatasetNotFound } from '../errors';

export const DATASET_NAMES = ['fashion-mnist', 'mnist', 'cifar10', 'cifar100'] as const;
export type DatasetName = (typeof DATASET_NAMES)[number];

interface Spec {
  files: string[]; // what must be present in the directory
  sources: Source[];
  apt?: string; // a Debian package that installs it under /usr/share/datasets
  load(dir: string, opts: LoadOptions): DatasetSplits;
}

export interface LoadOptions {
  /** CIFAR-100 only: which of its two label sets to use. */
  cifar100Labels?: 'fine' | 'coarse';
}

const IDX_FILES = ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'];

/** IDX files may be gzip-compressed (`.gz`) or raw; prefer whichever exists. */
function idxFile(dir: string, name: string): string {
  return existsSync(join(dir, `${name}.gz`)) ? join(dir, `${name}.gz`) : join(dir, name);
}

function idxSpec(base: string, md5s: string[], apt?: string): Spec {
  return {
    files: IDX_FILES,
    sources: IDX_FILES.map((f, i) => ({ url: `${base}${f}.gz`, md5: md5s[i] })),
    apt,
    load: (dir) => {
      const [trX, trY, teX, teY] = IDX_FILES.map((f) => idxFile(dir, f));
      return { train: loadIdxPair(trX, trY, 10, [28, 28]), test: loadIdxPair(teX, teY, 10, [28, 28]) };
    },
  };
}

const CIFAR10_TRAIN = [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`);

export const SPECS: Record<DatasetName, Spec> = {
  'fashion-mnist': idxSpec('http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/',
    ['8d4fb7e6c68d591d4c3dfef9ec88bf0d', '25c81989df183df01b3e8a0aad5dffbe', 'bef4ecab320f06d8554ea6380940ec79', 'bb300cfdad3c16e7a12a480ee83cd310'],
    'dataset-fashion-mnist'),
  mnist: idxSpec('https://ossci-datasets.s3.amazonaws.com/mnist/',
    ['f68b3c2dcbeaaa9fbdd348bbdeb94873', 'd53e105ee54ea40749a09fcbcd1e9432', '9fb629c4189551a2d022fa330f9573f3', 'ec29112dd5afa0611ce80d1b7f02629c']),
  cifar10: {
    files: [...CIFAR10_TRAIN, 'test_batch.bin'],
    sources: [{ url: 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz', md5: 'c32a1d4ab5d03f1284b67883e8d87530', extract: [...CIFAR10_TRAIN, 'test_batch.bin'] }],
    load: (dir) => ({
      train: loadCifarFiles(CIFAR10_TRAIN.map((f) => join(dir, f)), { kind: 'cifar10' }),
      test: loadCifarFiles([join(dir, 'test_batch.bin')], { kind: 'cifar10' }),
    }),
  },
  cifar100: {
    files: ['train.bin', 'test.bin'],
    sources: [{ url: 'https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz', md5: '03b5dce01913d631647c71ecec9e9cb8', extract: ['train.bin', 'test.bin'] }],
    load: (dir, opts) => {
      const kind = { kind: 'cifar100' as const, labels: opts.cifar100Labels ?? 'fine' };
      return { train: loadCifarFiles([join(dir, 'train.bin')], kind), test: loadCifarFiles([join(dir, 'test.bin')], kind) };
    },
  },
};

// The official archives unpack into these sub-folders; accept them in place.
const ARCHIVE_DIRS = ['', 'cifar-10-batches-bin', 'cifar-100-binary', 'raw'];

function holds(dir: string, spec: Spec): string | null {
  for (const sub of ARCHIVE_DIRS) {
    const d = join(dir, sub);
    if (spec.files.every((f) => existsSync(join(d, f)) || existsSync(join(d, `${f}.gz`)))) return d;
  }
  return null;
}

export function cacheDir(): string {
  return process.env.TUNEFLEET_CACHE ?? join(homedir(), '.cache', 'tunefleet');
}

export interface ResolveOptions extends LoadOptions {
  path?: string;
  download?: boolean;
  /** Overrides the official URLs (tests serve files from a local HTTP server). */
  sources?: Source[];
  systemDirs?: string[];
}

/** Find (or download) `name` and return its directory. */
export async function resolveDatasetDir(name: DatasetName, opts: ResolveOptions = {}): Promise<string> {
  const spec = SPECS[name];
  if (opts.path) {
    const hit = holds(resolve(opts.path), spec);
    if (hit) return hit;
    throw new DatasetNotFound(`${name} not in ${opts.path}: expected ${spec.files.join(', ')} (raw or .gz); fix data.path / --data`);
  }
  const cache = join(cacheDir(), 'datasets', name);
  const systemDirs = opts.systemDirs ?? [join('/usr/share/datasets', name)];
  for (const dir of [join('data', name), ...systemDirs, cache]) {
    const hit = holds(dir, spec);
    if (hit) return hit;
  }
  const searched = `${name} not in ./data/${name}, ${systemDirs.join(', ')} or ${cache}`;
  const fix = `${spec.apt ? `run apt-get install ${spec.apt}, ` : ''}put the files in ./data/${name} or pass --data`;
  if (opts.download === false) throw new DatasetNotFound(`${searched}, and downloads are off (data.download); ${fix}`);
  try {
    for (const source of opts.sources ?? spec.sources) await downloadInto(cache, source, name);
  } catch (err) {
    if (!(err instanceof DatasetNotFound)) throw err;
    throw new DatasetNotFound(`${searched}, and ${err.message}; ${fix}`, { cause: err });
  }
  return cache;
}

export async function loadNamedDataset(name: DatasetName, opts: ResolveOptions = {}): Promise<DatasetSplits> {
  return SPECS[name].load(await resolveDatasetDir(name, opts), opts);
}
