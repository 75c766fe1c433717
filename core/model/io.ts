// Loading and saving tfjs LayersModels in the standard format (model.json +
// weight shards), from a local path or an http(s) URL, without tfjs-node's
// file:// handler (which the wasm and cpu backends do not have).
import * as tf from '@tensorflow/tfjs';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { writeDirAtomic } from '../util/atomic';
import { ModelInvalid } from '../errors';
import { product } from '../util/numbers';

type Reader = (relative: string, maxBytes: number) => Promise<Buffer>;

/** How long one file may take to fetch, and how large model.json may be (weights are bounded by what the manifest declares). */
export interface FetchLimits {
  seconds: number;
  modelJsonBytes: number;
}
const LIMITS: FetchLimits = { seconds: 300, modelJsonBytes: 64 << 20 };

/**
 * Reads model.json and its weight shards, which are named relative to it and
 * must stay beside it: a manifest naming `../x` or another host is refused
 * (a model.from is often someone else's file).
 */
function readerFor(source: string, limits: FetchLimits): { reader: Reader; file: string } {
  if (/^https?:\/\//.test(source)) {
    const base = new URL(source);
    const folder = new URL('.', base);
    return {
      file: basename(base.pathname),
      reader: async (rel, maxBytes) => {
        const url = new URL(rel, base);
        if (url.origin !== folder.origin || !url.pathname.startsWith(folder.pathname)) throw new ModelInvalid(`${source}: weight path '${rel}' leaves the model's folder ${folder}`);
        return fetchBounded(url, maxBytes, limits.seconds);
      },
    };
  }
  const path = resolve(source.replace(/^file:\/\//, ''));
  const folder = dirname(path);
  return {
    file: basename(path),
    reader: async (rel, maxBytes) => {
      const file = resolve(folder, rel);
      const inside = relative(folder, file);
      if (inside.startsWith('..') || isAbsolute(inside)) throw new ModelInvalid(`${source}: weight path '${rel}' leaves the model's folder ${folder}`);
      if (statSync(file).size > maxBytes) throw new ModelInvalid(`${file}: larger than the ${maxBytes} bytes its manifest declares`);
      return readFileSync(file);
    },
  };
}

/** Redirects followed at most, each within the first URL's origin. */
const MAX_REDIRECTS = 5;

/** GET `url`, following redirects only within its origin, refusing more than `maxBytes` and giving up after `seconds`. */
async function fetchBounded(url: URL, maxBytes: number, seconds: number): Promise<Buffer> {
  const signal = AbortSignal.timeout(seconds * 1000);
  let res: Response;
  for (let at = url, hops = 0; ; hops++) {
    res = await fetch(at, { signal, redirect: 'manual' }).catch((err: Error) => {
      throw new ModelInvalid(`${url}: ${err.name === 'TimeoutError' ? `no answer within ${seconds} s` : err.message}`, { cause: err });
    });
    const location = res.status >= 300 && res.status < 400 ? res.headers.get('location') : null;
    if (location === null) break;
    const next = new URL(location, at);
    // A redirect elsewhere would make the coordinator fetch whatever a model's host names.
    if (next.origin !== url.origin) throw new ModelInvalid(`${url}: redirected to another origin (${next.origin}); host the model and its weights on one origin`);
    if (hops >= MAX_REDIRECTS) throw new ModelInvalid(`${url}: more than ${MAX_REDIRECTS} redirects`);
    at = next;
  }
  if (!res.ok) throw new ModelInvalid(`${url}: HTTP ${res.status} ${res.statusText}`);
  const parts: Uint8Array[] = [];
  let size = 0;
  try {
    for await (const part of res.body as AsyncIterable<Uint8Array>) {
      size += part.length;
      if (size > maxBytes) throw new ModelInvalid(`${url}: more than the ${maxBytes} bytes expected`);
      parts.push(part);
    }
  } catch (err) {
    if (err instanceof ModelInvalid) throw err;
    throw new ModelInvalid(`${url}: ${(err as Error).name === 'TimeoutError' ? `not complete within ${seconds} s` : (err as Error).message}`, { cause: err });
  }
  return Buffer.concat(parts);
}

/** Bytes the manifest's weights take (what all its shards together hold). */
function manifestBytes(manifest: tf.io.WeightsManifestConfig): number {
  const size: Record<string, number> = { float32: 4, int32: 4, bool: 1, uint8: 1, float16: 2, complex64: 8, string: 0 };
  return manifest.flatMap((g) => g.weights).reduce((a, w) => {
    // A shape that is not whole numbers would make the bound NaN: no bound at all.
    if (!Array.isArray(w.shape) || !w.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new ModelInvalid(`weight ${w.name}: shape ${JSON.stringify(w.shape)} is not a list of whole numbers ≥ 0`);
    return a + product(w.shape) * (w.quantization ? 2 : size[w.dtype] ?? 4);
  }, 0);
}

/** Load a LayersModel from a model.json path or URL; `cutAt` keeps layers up to and including that one. */
export async function loadModel(source: string, cutAt?: string, limits: FetchLimits = LIMITS): Promise<tf.LayersModel> {
  const { reader, file } = readerFor(source, limits);
  let modelJson: tf.io.ModelJSON;
  try {
    modelJson = JSON.parse((await reader(file, limits.modelJsonBytes)).toString('utf8'));
  } catch (err) {
    if (err instanceof ModelInvalid) throw err;
    throw new ModelInvalid(`${source}: cannot read model.json (${(err as Error).message}); pass a tfjs LayersModel model.json path or URL`, { cause: err });
  }
  if (!modelJson.modelTopology || !modelJson.weightsManifest) {
    throw new ModelInvalid(`${source}: not a tfjs LayersModel (no modelTopology or weightsManifest)`);
  }
  const artifacts = await tf.io.getModelArtifactsForJSON(modelJson, async (manifest) => {
    const total = manifestBytes(manifest);
    const shards = await Promise.all(manifest.flatMap((g) => g.paths).map((p) => reader(p, total)));
    const data = tf.io.CompositeArrayBuffer.join(shards.map((b) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer));
    return [tf.io.getWeightSpecs(manifest), data];
  });
  const model = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
  return cutAt ? cutModel(model, cutAt) : model;
}

/** The sub-model from the inputs up to and including layer `name`. */
export function cutModel(model: tf.LayersModel, name: string): tf.LayersModel {
  const layer = findLayer(model, name);
  return tf.model({ inputs: model.inputs, outputs: layer.output as tf.SymbolicTensor, name: model.name });
}

export function findLayer(model: tf.LayersModel, name: string): tf.layers.Layer {
  const layer = model.layers.find((l) => l.name === name);
  if (!layer) throw new ModelInvalid(`no layer named '${name}'; layers are ${model.layers.map((l) => l.name).join(', ')}`);
  return layer;
}

/** Write model.json + weights.bin (the LayersModel format) into an existing folder. */
export async function writeModelFiles(model: tf.LayersModel, dir: string): Promise<void> {
  await model.save(tf.io.withSaveHandler(async (artifacts) => {
    const weights = Buffer.from(tf.io.CompositeArrayBuffer.join(artifacts.weightData));
    writeFileSync(join(dir, 'weights.bin'), weights);
    const modelJson = {
      modelTopology: artifacts.modelTopology,
      format: 'layers-model',
      generatedBy: `tunefleet (TensorFlow.js ${tf.version.tfjs})`,
      convertedBy: null,
      weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
    };
    writeFileSync(join(dir, 'model.json'), JSON.stringify(modelJson));
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON', weightDataBytes: weights.length } };
  }));
}

/** Save a model into `dir` atomically: a reader never sees half a model. */
export function saveModel(model: tf.LayersModel, dir: string): Promise<void> {
  return writeDirAtomic(dir, (tmp) => writeModelFiles(model, tmp));
}
