// Checksum-verified downloads into a cache directory, plus just enough of a
// tar reader to unpack the CIFAR archives. Files appear under their final
// name only once complete and verified (temp file + rename), so an interrupted
// download never leaves something that looks like data.
import { createHash } from 'node:crypto';
import { basename, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { writeFileAtomic } from '../util/atomic';
import { ChecksumMismatch, DatasetNotFound } from '../errors';
import { logger } from '../observe/log';

const log = logger('download');

export interface Source {
  url: string;
  md5: string;
  /** For archives: the member files (by base name) to extract. */
  extract?: string[];
}

async function fetchWithProgress(url: string): Promise<Buffer> {
  const res = await fetch(url);
  if (!res.ok || !res.body) throw new Error(`HTTP ${res.status} ${res.statusText}`);
  const total = Number(res.headers.get('content-length') ?? 0);
  const chunks: Uint8Array[] = [];
  let got = 0, nextReport = 0.1;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    chunks.push(chunk);
    got += chunk.length;
    if (total && got / total >= nextReport) {
      log.info('download progress', { url, percent: Math.floor((100 * got) / total) });
      nextReport += 0.1;
    }
  }
  return Buffer.concat(chunks);
}

/** Regular files in a (ustar) tar archive, by path. */
export function* tarEntries(tar: Buffer): Generator<{ name: string; data: Buffer }> {
  for (let off = 0; off + 512 <= tar.length;) {
    const header = tar.subarray(off, off + 512);
    if (header.every((b) => b === 0)) return;
    const field = (a: number, b: number) => header.subarray(a, b).toString('latin1').replace(/\0.*$/s, '');
    const prefix = field(345, 500);
    const name = (prefix ? `${prefix}/` : '') + field(0, 100);
    const size = parseInt(field(124, 136).trim() || '0', 8);
    const type = header[156];
    if (type === 0 || type === 0x30) yield { name, data: tar.subarray(off + 512, off + 512 + size) };
    off += 512 + Math.ceil(size / 512) * 512;
  }
}

/** Download `source` into `dir`, verify its MD5, and extract what it names. */
export async function downloadInto(dir: string, source: Source, dataset: string): Promise<void> {
  log.info('downloading', { dataset, url: source.url, into: dir });
  let body: Buffer;
  try {
    body = await fetchWithProgress(source.url);
  } catch (err) {
    throw new DatasetNotFound(`download of ${source.url} failed (${(err as Error).message})`, { cause: err });
  }
  const md5 = createHash('md5').update(body).digest('hex');
  if (md5 !== source.md5) {
    throw new ChecksumMismatch(`${dataset}: ${source.url} has MD5 ${md5}, expected ${source.md5}; the download is corrupt or the file changed upstream — nothing was saved`);
  }
  if (!source.extract) {
    writeFileAtomic(join(dir, basename(new URL(source.url).pathname)), body);
    return;
  }
  const wanted = new Set(source.extract);
  for (const entry of tarEntries(gunzipSync(body))) {
    if (wanted.delete(basename(entry.name))) writeFileAtomic(join(dir, basename(entry.name)), entry.data);
  }
  if (wanted.size > 0) throw new DatasetNotFound(`${dataset}: archive ${source.url} lacks ${[...wanted].join(', ')}`);
}
