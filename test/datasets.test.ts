// datasets – IDX and CIFAR loaders on files written in the exact formats,
// malformed files, named-dataset resolution (local HTTP download included),
// transforms, and the real Fashion-MNIST that .ci/run installs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { AddressInfo } from 'node:net';
import { loadIdxPair } from '../core/data/idx';
import { loadCifarFiles } from '../core/data/cifar';
import { loadNamedDataset, resolveDatasetDir } from '../core/data/resolve';
import { holdOut, limitExamples, selectClasses } from '../core/data/transforms';
import { batchImages } from '../core/data/dataset';
import { ChecksumMismatch, DatasetMalformed, DatasetNotFound } from '../core/errors';
import { cifarBytes, idxBytes, pixels, tempDir, writeIdxSet } from './fixtures';

test('datasets – IDX loads gzip and raw files identically', () => {
  const gz = tempDir(), raw = tempDir();
  writeIdxSet(gz, 20, 10, true);
  writeIdxSet(raw, 20, 10, false);
  const a = loadIdxPair(join(gz, 'train-images-idx3-ubyte.gz'), join(gz, 'train-labels-idx1-ubyte.gz'), 10);
  const b = loadIdxPair(join(raw, 'train-images-idx3-ubyte'), join(raw, 'train-labels-idx1-ubyte'), 10);
  assert.deepEqual(a.shape, [28, 28, 1]);
  assert.equal(a.labels.length, 20);
  assert.deepEqual(a.images, b.images);
  assert.deepEqual(Array.from(a.labels.slice(0, 12)), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
  assert.deepEqual(a.images.subarray(784, 790), pixels(20, 784).subarray(784, 790));
});

const malformed: [string, (dir: string) => void, RegExp][] = [
  ['bad magic number', (d) => writeFileSync(join(d, 'x'), Buffer.from([1, 2, 8, 3, 0, 0, 0, 1])), /bad magic number/],
  ['truncated body', (d) => writeFileSync(join(d, 'x'), idxBytes([2, 28, 28], new Uint8Array(784 * 2)).subarray(0, 900)), /truncated/],
  ['trailing bytes', (d) => writeFileSync(join(d, 'x'), Buffer.concat([idxBytes([2, 28, 28], new Uint8Array(784 * 2)), Buffer.alloc(3)])), /trailing bytes/],
  ['wrong image size', (d) => writeFileSync(join(d, 'x'), idxBytes([2, 32, 28], new Uint8Array(32 * 28 * 2))), /32×28, expected 28×28/],
  ['wrong element type', (d) => { const b = idxBytes([2, 28, 28], new Uint8Array(784 * 2)); b[2] = 0x0d; writeFileSync(join(d, 'x'), b); }, /element type/],
  ['corrupt gzip', (d) => writeFileSync(join(d, 'x'), gzipSync(idxBytes([2, 28, 28], new Uint8Array(1568))).subarray(0, 30)), /gzip/],
];

for (const [what, write, message] of malformed) {
  test(`datasets – malformed IDX images fail clearly: ${what}`, () => {
    const d = tempDir();
    write(d);
    writeFileSync(join(d, 'y'), idxBytes([2], Uint8Array.from([0, 1])));
    assert.throws(() => loadIdxPair(join(d, 'x'), join(d, 'y'), 10, [28, 28]), (err: unknown) =>
      err instanceof DatasetMalformed && message.test(err.message) && err.message.startsWith(join(d, 'x')));
  });
}

test('datasets – IDX labels out of range or miscounted fail clearly', () => {
  const d = tempDir();
  writeFileSync(join(d, 'x'), idxBytes([2, 28, 28], new Uint8Array(1568)));
  writeFileSync(join(d, 'y'), idxBytes([2], Uint8Array.from([3, 10])));
  assert.throws(() => loadIdxPair(join(d, 'x'), join(d, 'y'), 10), /label 10 at index 1 is out of range 0..9/);
  writeFileSync(join(d, 'y'), idxBytes([3], Uint8Array.from([1, 2, 3])));
  assert.throws(() => loadIdxPair(join(d, 'x'), join(d, 'y'), 10), /3 labels for 2 images/);
});

test('datasets – CIFAR-10 binary: labels and CHW→HWC pixels', () => {
  const d = tempDir();
  writeFileSync(join(d, 'a.bin'), cifarBytes([[3], [9]]));
  writeFileSync(join(d, 'b.bin'), cifarBytes([[0]]));
  const ds = loadCifarFiles([join(d, 'a.bin'), join(d, 'b.bin')], { kind: 'cifar10' });
  assert.deepEqual(Array.from(ds.labels), [3, 9, 0]);
  assert.deepEqual(ds.shape, [32, 32, 3]);
  // Pixel 5 of example 1 (label 9): R = 0*80+9+5, G = 80+9+5, B = 160+9+5.
  assert.deepEqual(Array.from(ds.images.subarray(3072 + 15, 3072 + 18)), [14, 94, 174]);
});

test('datasets – CIFAR-100 binary: fine and coarse labels', () => {
  const d = tempDir();
  writeFileSync(join(d, 'train.bin'), cifarBytes([[4, 77], [19, 99]]));
  assert.deepEqual(Array.from(loadCifarFiles([join(d, 'train.bin')], { kind: 'cifar100', labels: 'fine' }).labels), [77, 99]);
  const coarse = loadCifarFiles([join(d, 'train.bin')], { kind: 'cifar100', labels: 'coarse' });
  assert.deepEqual(Array.from(coarse.labels), [4, 19]);
  assert.equal(coarse.numClasses, 20);
});

test('datasets – malformed CIFAR files fail clearly', () => {
  const d = tempDir();
  writeFileSync(join(d, 't.bin'), cifarBytes([[1], [2]]).subarray(0, 5000));
  assert.throws(() => loadCifarFiles([join(d, 't.bin')], { kind: 'cifar10' }), (e: unknown) => e instanceof DatasetMalformed && /t\.bin: 5000 bytes is not a whole number/.test(e.message));
  writeFileSync(join(d, 'l.bin'), cifarBytes([[1], [12]]));
  assert.throws(() => loadCifarFiles([join(d, 'l.bin')], { kind: 'cifar10' }), /record 1: label 12 is out of range 0..9/);
});

test('datasets – an explicit path without the files is an error, never a fallback', async () => {
  await assert.rejects(resolveDatasetDir('fashion-mnist', { path: tempDir() }), (e: unknown) =>
    e instanceof DatasetNotFound && /fashion-mnist not in .*fix data.path/.test(e.message));
});

test('datasets – offline with no copy says how to get it', async () => {
  process.env.TUNEFLEET_CACHE = tempDir();
  await assert.rejects(resolveDatasetDir('fashion-mnist', { download: false, systemDirs: [tempDir()] }), (e: unknown) =>
    e instanceof DatasetNotFound && /run apt-get install dataset-fashion-mnist/.test(e.message) && /pass --data/.test(e.message));
});

async function serve(files: Record<string, Buffer>): Promise<{ url: string; close: () => void }> {
  const server = createServer((req, res) => {
    const body = files[req.url ?? ''];
    res.writeHead(body ? 200 : 404, body ? { 'content-length': body.length } : {});
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() };
}

function cifar10Archive(): Buffer {
  const src = tempDir();
  const dir = join(src, 'cifar-10-batches-bin');
  execFileSync('mkdir', [dir]);
  for (let i = 1; i <= 5; i++) writeFileSync(join(dir, `data_batch_${i}.bin`), cifarBytes([[i], [i + 1]]));
  writeFileSync(join(dir, 'test_batch.bin'), cifarBytes([[7]]));
  execFileSync('tar', ['czf', join(src, 'c.tar.gz'), '-C', src, 'cifar-10-batches-bin']);
  return readFileSync(join(src, 'c.tar.gz'));
}

test('datasets – download: CIFAR-10 archive fetched, MD5-checked, unpacked into the cache', async () => {
  const archive = cifar10Archive();
  const server = await serve({ '/cifar-10-binary.tar.gz': archive });
  try {
    process.env.TUNEFLEET_CACHE = tempDir();
    const md5 = createHash('md5').update(archive).digest('hex');
    const sources = [{ url: `${server.url}/cifar-10-binary.tar.gz`, md5, extract: [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`).concat('test_batch.bin') }];
    const { train, test: t } = await loadNamedDataset('cifar10', { sources, systemDirs: [] });
    assert.deepEqual(Array.from(train.labels), [1, 2, 2, 3, 3, 4, 4, 5, 5, 6]);
    assert.deepEqual(Array.from(t.labels), [7]);
    // A second resolution finds the cached copy without the server.
    server.close();
    assert.equal(await resolveDatasetDir('cifar10', { download: false, systemDirs: [] }), join(process.env.TUNEFLEET_CACHE, 'datasets', 'cifar10'));
  } finally {
    server.close();
  }
});

test('datasets – download: a checksum mismatch saves nothing', async () => {
  const server = await serve({ '/c.tar.gz': cifar10Archive() });
  try {
    const cache = tempDir();
    process.env.TUNEFLEET_CACHE = cache;
    const sources = [{ url: `${server.url}/c.tar.gz`, md5: '0'.repeat(32), extract: ['test_batch.bin'] }];
    await assert.rejects(resolveDatasetDir('cifar10', { sources, systemDirs: [] }), ChecksumMismatch);
    assert.equal(existsSync(join(cache, 'datasets', 'cifar10')) ? readdirSync(join(cache, 'datasets', 'cifar10')).length : 0, 0);
    await assert.rejects(resolveDatasetDir('cifar10', { sources: [{ url: `${server.url}/missing`, md5: 'x' }], systemDirs: [] }), /download of .* failed \(HTTP 404/);
  } finally {
    server.close();
  }
});

test('datasets – transforms: select classes, limit, hold out', () => {
  const d = tempDir();
  writeIdxSet(d, 100, 10);
  const ds = loadIdxPair(join(d, 'train-images-idx3-ubyte.gz'), join(d, 'train-labels-idx1-ubyte.gz'), 10);
  const five = selectClasses(ds, [5, 6, 7, 8, 9]);
  assert.equal(five.numClasses, 5);
  assert.equal(five.labels.length, 50);
  assert.deepEqual(Array.from(five.labels.slice(0, 6)), [0, 1, 2, 3, 4, 0]);
  assert.deepEqual(five.images.subarray(0, 784), ds.images.subarray(5 * 784, 6 * 784));
  assert.throws(() => selectClasses(ds, [3, 10]), /class 10 does not exist/);

  const small = limitExamples(five, { perClass: 3 }, 1);
  assert.equal(small.labels.length, 15);
  for (let c = 0; c < 5; c++) assert.equal(small.labels.filter((l) => l === c).length, 3);
  assert.deepEqual(limitExamples(five, { perClass: 3 }, 1).images, small.images, 'same seed, same subset');
  assert.notDeepEqual(limitExamples(five, { perClass: 3 }, 2).images, small.images, 'another seed, another subset');
  assert.equal(limitExamples(five, { total: 7 }, 1).labels.length, 7);

  const { train, val } = holdOut(ds, 0.2, 3);
  assert.equal(val.labels.length, 20);
  assert.equal(train.labels.length, 80);
  assert.throws(() => holdOut(ds, 100, 3), /at least one training example/);
});

test('datasets – batches are normalised per channel', () => {
  const ds = { images: Uint8Array.from([0, 255, 51, 102]), labels: Int32Array.from([0, 1]), shape: [1, 1, 2] as [number, number, number], numClasses: 2 };
  const x = batchImages(ds, [1, 0], { mean: [0.2, 0.5], std: [0.5, 0.25] });
  assert.deepEqual(Array.from(x).map((v) => +v.toFixed(5)), [0, -0.4, -0.4, 2]);
});

test('datasets – the real Fashion-MNIST loads from /usr/share/datasets', { skip: !existsSync('/usr/share/datasets/fashion-mnist') && 'apt-get install dataset-fashion-mnist' }, async () => {
  process.env.TUNEFLEET_CACHE = tempDir();
  const { train, test: t } = await loadNamedDataset('fashion-mnist', { download: false });
  assert.equal(train.labels.length, 60000);
  assert.equal(t.labels.length, 10000);
  assert.deepEqual(train.shape, [28, 28, 1]);
  for (let c = 0; c < 10; c++) assert.equal(train.labels.filter((l) => l === c).length, 6000);
  assert.equal(train.labels[0], 9, 'the first training image is an ankle boot');
});
