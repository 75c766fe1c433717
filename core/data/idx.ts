// IDX files (MNIST, Fashion-MNIST), gzip-compressed or raw.
// Format: 2 zero bytes, a type byte (0x08 = unsigned byte), a rank byte, then
// `rank` big-endian uint32 dimensions, then the data. Anything else — a bad
// magic number, a type we do not read, a truncated or over-long body, labels
// out of range, images and labels that disagree — is DatasetMalformed.
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { Dataset } from './dataset';
import { DatasetMalformed } from '../errors';
import { product } from '../util/numbers';

const UBYTE = 0x08;

export function readMaybeGzip(file: string): Buffer {
  const raw = readFileSync(file);
  if (raw[0] !== 0x1f || raw[1] !== 0x8b) return raw;
  try {
    return gunzipSync(raw);
  } catch (err) {
    throw new DatasetMalformed(file, `gzip data is corrupt or truncated (${(err as Error).message})`, { cause: err });
  }
}

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

export function parseIdx(file: string, buf: Buffer, rank: number): IdxArray {
  if (buf.length < 4 || buf[0] !== 0 || buf[1] !== 0) {
    throw new DatasetMalformed(file, 'bad magic number: not an IDX file');
  }
  if (buf[2] !== UBYTE) throw new DatasetMalformed(file, `IDX element type 0x${buf[2].toString(16)} is not unsigned byte (0x08)`);
  if (buf[3] !== rank) throw new DatasetMalformed(file, `IDX rank ${buf[3]}, expected ${rank}`);
  const header = 4 + 4 * rank;
  if (buf.length < header) throw new DatasetMalformed(file, 'truncated IDX header');
  const dims = Array.from({ length: rank }, (_, i) => buf.readUInt32BE(4 + 4 * i));
  const expected = product(dims);
  const actual = buf.length - header;
  if (actual !== expected) {
    throw new DatasetMalformed(file, `${actual < expected ? 'truncated' : 'trailing bytes'}: header says ${dims.join('×')} = ${expected} bytes, file has ${actual}`);
  }
  return { dims, data: new Uint8Array(buf.buffer, buf.byteOffset + header, expected) };
}

/** Load an IDX image file (rank 3) and its label file (rank 1). */
export function loadIdxPair(imagesFile: string, labelsFile: string, numClasses: number, shape?: [number, number]): Dataset {
  const images = parseIdx(imagesFile, readMaybeGzip(imagesFile), 3);
  const labels = parseIdx(labelsFile, readMaybeGzip(labelsFile), 1);
  const [n, h, w] = images.dims;
  if (shape && (h !== shape[0] || w !== shape[1])) {
    throw new DatasetMalformed(imagesFile, `images are ${h}×${w}, expected ${shape[0]}×${shape[1]}`);
  }
  if (labels.dims[0] !== n) {
    throw new DatasetMalformed(labelsFile, `${labels.dims[0]} labels for ${n} images in ${imagesFile}`);
  }
  const bad = labels.data.findIndex((l) => l >= numClasses);
  if (bad >= 0) throw new DatasetMalformed(labelsFile, `label ${labels.data[bad]} at index ${bad} is out of range 0..${numClasses - 1}`);
  return { images: images.data, labels: Int32Array.from(labels.data), shape: [h, w, 1], numClasses };
}
