// The single-process trainer: `tunefleet train`. One loop, top to bottom:
// learning rate → batch → gradients (exactly as a worker computes them) →
// SGD step (exactly as the coordinator applies it) → log → maybe evaluate →
// maybe checkpoint. Iteration-based, like Caffe.
import * as tf from '@tensorflow/tfjs';
import { join } from 'node:path';
import { initBackend } from './backend';
import { latestCheckpoint, loadCheckpoint, saveCheckpoint } from './checkpoint';
import { JobConfig } from './config';
import { batchImages, batchLabels, count, Dataset, Normalization } from './dataset';
import { Batch, computeGradients, evaluate } from './gradients';
import { initialModel } from './job-model';
import { JobData, prepareData } from './job-data';
import { logger } from './log';
import { isFrozen, resolveMultipliers } from './lr-rules';
import { learningRate } from './lr-schedule';
import { saveModel } from './model-io';
import { paramSpecs, readParams, writeParams } from './model-params';
import { Sgd } from './optimizer';
import { Sampler } from './sampler';

const log = logger('trainer');

export interface CurvePoint {
  iteration: number;
  valAccuracy: number;
  valLoss: number;
  trainLoss: number;
  wallSeconds: number;
}

export interface TrainResult {
  backend: string;
  curve: CurvePoint[];
  outDir: string;
  model: tf.LayersModel;
}

export function outDirOf(cfg: JobConfig): string {
  return cfg.train.outDir ?? join('runs', cfg.name);
}

export function makeBatch(ds: Dataset, indices: ArrayLike<number>, norm: Normalization): Batch {
  return { x: batchImages(ds, indices, norm), y: batchLabels(ds, indices), shape: ds.shape };
}

export function validate(model: tf.LayersModel, data: JobData) {
  const n = count(data.val);
  return evaluate(model, n, 500, (s, e) => makeBatch(data.val, Array.from({ length: e - s }, (_, i) => s + i), data.norm));
}

async function startingPoint(cfg: JobConfig, data: JobData, resume: boolean) {
  const latest = resume ? latestCheckpoint(outDirOf(cfg)) : null;
  if (latest) {
    const { model, state } = await loadCheckpoint(latest);
    log.info('resuming', { checkpoint: latest, iteration: state.iteration });
    return { model, state };
  }
  const model = await initialModel(cfg, data.train.shape, data.train.numClasses);
  return { model, state: { iteration: 0, seed: cfg.seed, job: cfg.name, sampler: { epoch: 0, offset: 0 }, velocity: new Map() } };
}

export async function train(cfg: JobConfig, opts: { resume?: boolean } = {}): Promise<TrainResult> {
  const backend = await initBackend(cfg.backend);
  const data = await prepareData(cfg);
  const { model, state } = await startingPoint(cfg, data, opts.resume ?? false);
  const specs = paramSpecs(model);
  const multipliers = resolveMultipliers(specs.map((s) => s.name), cfg.optimizer.layers);
  const trainable = specs.map((s) => s.name).filter((n) => !isFrozen(multipliers.get(n)!));
  const sgd = new Sgd(cfg.optimizer, multipliers);
  for (const [name, v] of state.velocity) sgd.velocity.set(name, v);
  const params = readParams(model);
  const sampler = new Sampler(count(data.train), cfg.seed, state.sampler);
  const schedule = { ...cfg.optimizer, totalIterations: cfg.train.iterations };
  const t = cfg.train, outDir = outDirOf(cfg);
  log.info('job', {
    name: cfg.name, backend, trainExamples: count(data.train), valExamples: count(data.val), classes: data.train.numClasses,
    parameters: specs.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0),
    trainable: trainable.join(','), frozen: specs.length - trainable.length,
    batch: t.batchSize, iterationsPerEpoch: +(count(data.train) / t.batchSize).toFixed(1), outDir,
  });

  const curve: CurvePoint[] = [];
  const started = Date.now();
  let lossSum = 0, lossCount = 0, windowStart = Date.now();
  for (let it = state.iteration; it < t.iterations; it++) {
    const lr = learningRate(schedule, it);
    const { loss, grads } = computeGradients(model, trainable, makeBatch(data.train, sampler.next(t.batchSize), data.norm));
    sgd.step(params, grads, lr);
    writeParams(model, new Map(trainable.map((n) => [n, params.get(n)!])));
    lossSum += loss; lossCount++;

    const done = it + 1;
    if (done % t.logEvery === 0) {
      const perSec = (lossCount * t.batchSize) / ((Date.now() - windowStart) / 1000);
      log.info('progress', { iteration: done, loss: +(lossSum / lossCount).toFixed(4), lr, examplesPerSec: Math.round(perSec) });
    }
    if (done % t.evalEvery === 0 || done === t.iterations) {
      const ev = validate(model, data);
      const point = { iteration: done, valAccuracy: ev.accuracy, valLoss: ev.loss, trainLoss: lossCount ? lossSum / lossCount : NaN, wallSeconds: (Date.now() - started) / 1000 };
      curve.push(point);
      log.info('evaluation', { iteration: done, valAccuracy: +ev.accuracy.toFixed(4), valLoss: +ev.loss.toFixed(4) });
    }
    if (done % t.logEvery === 0) { lossSum = 0; lossCount = 0; windowStart = Date.now(); }
    if (done % t.checkpointEvery === 0 || done === t.iterations) {
      const dir = await saveCheckpoint(outDir, model, { iteration: done, seed: cfg.seed, job: cfg.name, sampler: sampler.position, velocity: sgd.velocity }, t.keepCheckpoints);
      log.info('checkpoint', { iteration: done, dir });
    }
  }
  await saveModel(model, join(outDir, 'model'));
  log.info('finished', { model: join(outDir, 'model', 'model.json'), seconds: (Date.now() - started) / 1000 });
  return { backend, curve, outDir, model };
}
