// Loading and saving tfjs LayersModels in the standard format (model.json +
// weight shards), from a local path or an http(s) URL, without tfjs-node's
// file:// handler (which the wasm and cpu backends do not have).
import * as tf from '@tensorflow/tfjs';
import { readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { writeDirAtomic } from '../util/atomic';
import { ModelInvalid } from '../errors';

type Reader = (relative: string) => Promise<Buffer>;

/** Reads model.json and its weight shards, which are named relative to it. */
function readerFor(source: string): { reader: Reader; file: string } {
  if (/^https?:\/\//.test(source)) {
    const base = new URL(source);
    return {
      file: basename(base.pathname),
      reader: async (rel) => {
        const url = new URL(rel, base);
        const res = await fetch(url);
        if (!res.ok) throw new ModelInvalid(`${url}: HTTP ${res.status} ${res.statusText}`);
        return Buffer.from(await res.arrayBuffer());
      },
    };
  }
  const path = resolve(source.replace(/^file:\/\//, ''));
  return { file: basename(path), reader: async (rel) => readFileSync(join(dirname(path), rel)) };
}

/** Load a LayersModel from a model.json path or URL; `cutAt` keeps layers up to and including that one. */
export async function loadModel(source: string, cutAt?: string): Promise<tf.LayersModel> {
  const { reader, file } = readerFor(source);
  let modelJson: tf.io.ModelJSON;
  try {
    modelJson = JSON.parse((await reader(file)).toString('utf8'));
  } catch (err) {
    throw new ModelInvalid(`${source}: cannot read model.json (${(err as Error).message}); pass a tfjs LayersModel model.json path or URL`, { cause: err });
  }
  if (!modelJson.modelTopology || !modelJson.weightsManifest) {
    throw new ModelInvalid(`${source}: not a tfjs LayersModel (no modelTopology or weightsManifest)`);
  }
  const artifacts = await tf.io.getModelArtifactsForJSON(modelJson, async (manifest) => {
    const shards = await Promise.all(manifest.flatMap((g) => g.paths).map(reader));
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
