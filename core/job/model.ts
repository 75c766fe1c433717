// The model a job starts from: a zoo model with random weights, or a
// pretrained one (a checkpoint folder, or a tfjs model.json path or URL),
// optionally cut at a layer and with its classifier replaced for the new task.
import * as tf from '@tensorflow/tfjs';
import { isCheckpoint, loadCheckpoint } from '../model/checkpoint';
import { JobConfig } from './config';
import { ModelInvalid } from '../errors';
import { replaceHead } from '../model/head';
import { initialise } from '../model/init';
import { cutModel, loadModel } from '../model/io';
import { buildModel, HEAD } from '../model/zoo';

/** The model at a `model.from`: a checkpoint folder, a folder with model.json, a model.json path or an http(s) URL. */
export async function loadPretrained(from: string): Promise<tf.LayersModel> {
  if (isCheckpoint(from)) return (await loadCheckpoint(from)).model;
  return loadModel(/^https?:\/\//.test(from) ? from : from.endsWith('.json') ? from : `${from}/model.json`);
}

export async function initialModel(cfg: JobConfig, shape: [number, number, number], numClasses: number): Promise<tf.LayersModel> {
  const m = cfg.model;
  if (!m.from) {
    const model = buildModel(m.arch, shape, numClasses, cfg.seed, m.padding, m.batchNorm);
    initialise(model, m.init, cfg.seed);
    return model;
  }
  let model = await loadPretrained(m.from);
  if (m.cutAt) model = cutModel(model, m.cutAt);
  if (m.replaceHead ?? true) {
    model = replaceHead(model, numClasses, cfg.seed, m.headLayer ?? undefined);
    initialise(model, m.init, cfg.seed, [HEAD]);
  }
  checkShapes(model, shape, numClasses, m.from);
  return model;
}

function checkShapes(model: tf.LayersModel, shape: number[], numClasses: number, from: string): void {
  const input = model.inputs[0].shape.slice(1);
  if (input.join('x') !== shape.join('x')) {
    throw new ModelInvalid(`${from} takes ${input.join('×')} inputs but the data is ${shape.join('×')}`);
  }
  const out = model.outputs[0].shape[1];
  if (out !== numClasses) {
    throw new ModelInvalid(`${from} has ${out} outputs but the data has ${numClasses} classes; set model.replaceHead: true`);
  }
}
