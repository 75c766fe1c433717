// The training loop, shared by `tunefleet train` (gradients computed in this
// process) and the coordinator (gradients from workers over gRPC). One loop,
// top to bottom: learning rate → batch → gradients → SGD step (unless the
// gradient is a spike: spike-guard.ts) → log → maybe evaluate → maybe
// checkpoint. Iteration-based, like Caffe.
import * as tf from '@tensorflow/tfjs';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BatchScaler } from './batch-policy';
import { JobDiverged, JobStopped, ShardLost } from '../errors';
import { chanceAccuracy, ChanceWatch, divergenceAdvice } from './divergence';
import { saveCheckpoint } from '../model/checkpoint';
import { EvalResult } from './gradients';
import { JobSetup } from '../job/setup';
import { LedgerEntry } from './ledger';
import { logger } from '../observe/log';
import { groupRates, LayerRule } from './lr-rules';
import { learningRate } from './lr-schedule';
import { l2Norm, NormHistory } from './spike-guard';
import { Phase } from '../observe/metrics';
import { saveModel } from '../model/io';
import { writeParams } from '../model/params';
import { Tensors } from '../util/tensors';

const log = logger('trainer');

/**
 * Where the SGD step happens when parameter shards hold the parameters
 * (cluster.shards > 0): on them. `params` and the optimizer's momentum here
 * are then only brought up to date for checkpoints and the final model.
 */
export interface RemoteUpdate {
  apply(lr: number): void;
  gather(params: Tensors, velocity: Tensors): Promise<void>;
}

/** Where gradients and evaluations come from: this process, or a fleet of workers. */
export interface Compute {
  /**
   * Gradients of the mean loss over `indices` (epoch of each in `epochs`) at
   * the current parameters; with parameter shards, only Σ g² of the mean
   * (`squares`): the mean itself stays on the shards.
   */
  gradients(step: number, indices: Uint32Array, epochs: Uint32Array): Promise<{ loss: number; grads: Tensors; squares?: number; phases?: Partial<Record<Phase, number>> }>;
  /** Set when parameter shards hold the parameters. */
  readonly remoteUpdate?: RemoteUpdate | null;
  evaluate(): Promise<EvalResult>;
  /** The trainable parameters changed (after each SGD step). */
  paramsChanged(params: Tensors): void;
  /** Workers computing now (for train.batchPolicy); absent = cluster.workers. */
  liveWorkers?(): number;
  /** Which examples each step used (saved in checkpoints); absent = not kept. */
  ledgerEntries?(): LedgerEntry[];
}

export interface CurvePoint {
  iteration: number;
  valAccuracy: number;
  valLoss: number;
  trainLoss: number;
  /** Seconds since the loop started, this evaluation included. */
  wallSeconds: number;
  /** Of those, the seconds spent evaluating (every evaluation so far, this one included). */
  evalSeconds: number;
}

export interface TrainResult {
  backend: string;
  curve: CurvePoint[];
  outDir: string;
  model: tf.LayersModel;
  /** Set when this stage ended at a release of optimizer.unfreeze (with a checkpoint there): the job goes on from it (throughReleases). */
  releasedAt?: number;
}

export interface StageOptions {
  /** Checked after every step; when true, a checkpoint is written there and the run ends with JobStopped. */
  stopRequested?: () => boolean;
  /** When the job's first stage started (Date.now()), and its curve so far: a later stage's curve goes on from them. */
  startedAt?: number;
  earlier?: CurvePoint[];
}

export async function runTraining(job: JobSetup, compute: Compute, opts: StageOptions = {}): Promise<TrainResult> {
  const { events } = job;
  try {
    return await loop(job, compute, opts);
  } catch (err) {
    // A lost shard is not the end: the coordinator goes back to the last checkpoint (job.rewound); a stop is not a failure.
    if (!(err instanceof ShardLost || err instanceof JobStopped)) events.emit({ type: 'job.failed', error: err instanceof Error ? err.message : String(err) });
    throw err;
  }
}

/**
 * Run a job through its stages, one per release of optimizer.unfreeze
 * (unfreeze.ts): `run(resume, carried)` runs one, each after the first
 * continuing from the checkpoint the last one wrote at its release; the
 * curves join into one, timed from the first stage's start.
 */
export async function throughReleases(run: (resume: boolean, carried: StageOptions) => Promise<TrainResult>, resume: boolean): Promise<TrainResult> {
  const startedAt = Date.now();
  const curve: CurvePoint[] = [];
  for (let first = true; ; first = false) {
    const result = await run(resume || !first, { startedAt, earlier: [...curve] });
    curve.push(...result.curve);
    if (result.releasedAt === undefined) return { ...result, curve };
    result.model.dispose(); // the next stage loads the model from the checkpoint at the release
  }
}

async function loop(job: JobSetup, compute: Compute, opts: StageOptions): Promise<TrainResult> {
  const { cfg, sgd, sampler, params, model, outDir, events, metrics } = job;
  const t = cfg.train;
  const schedule = { ...cfg.optimizer, totalIterations: t.iterations };
  const curve: CurvePoint[] = [];
  const started = opts.startedAt ?? Date.now();
  const scaler = new BatchScaler({ policy: t.batchPolicy, batchSize: t.batchSize, plannedWorkers: cfg.cluster.workers, warmup: t.scaleWarmup });
  const stepNorms = new NormHistory(t.spikeGuard);
  const atChance = new ChanceWatch(t.divergence, chanceAccuracy(job.data.val.labels), job.data.train.numClasses);
  let lossSum = 0, lossCount = 0, windowExamples = 0, windowStart = Date.now(), lastLr = NaN, targetReached = false;
  events.emit({ type: 'job.started', backend: job.backend, iterations: t.iterations, startIteration: job.startIteration, batchSize: t.batchSize, trainExamples: job.data.train.labels.length });
  const earlier = opts.earlier ?? [];
  let evalSeconds = earlier[earlier.length - 1]?.evalSeconds ?? 0;
  if (t.targetAccuracy !== null) targetReached = earlier.some((p) => p.valAccuracy >= t.targetAccuracy!); // reported once per job, not per stage
  const evaluate = async () => {
    const t0 = performance.now();
    const ev = await compute.evaluate();
    evalSeconds += (performance.now() - t0) / 1000;
    return ev;
  };
  if (t.evalAtStart && job.startIteration === 0) {
    const ev = await evaluate();
    const point = { iteration: 0, valAccuracy: ev.accuracy, valLoss: ev.loss, trainLoss: NaN, wallSeconds: (Date.now() - started) / 1000, evalSeconds };
    curve.push(point);
    log.info('evaluation', { iteration: 0, valAccuracy: +ev.accuracy.toFixed(4), valLoss: +ev.loss.toFixed(4) });
    events.emit({ type: 'evaluation', ...point });
  }
  for (let it = job.startIteration; it < t.iterations; it++) {
    const { batchSize, lrFactor } = scaler.at(it, compute.liveWorkers?.() ?? cfg.cluster.workers);
    const lr = learningRate(schedule, it) * lrFactor;
    if (lr !== lastLr) {
      events.emit({ type: 'lr.changed', iteration: it, lr });
      metrics.learningRates(groupRates(job.multipliers, lr));
    }
    lastLr = lr;
    const stepStart = performance.now();
    const { indices, epochs } = sampler.next(batchSize);
    const { loss, grads, squares, phases = {} } = await compute.gradients(it, indices, epochs);
    const updateStart = performance.now();
    const gradNorm = squares === undefined ? l2Norm(grads.values()) : Math.sqrt(squares);
    const { spike, median } = stepNorms.judge(gradNorm);
    log.debug('gradient norm', { iteration: it + 1, gradNorm, median }); // TUNEFLEET_DEBUG=trainer: the series bench/spike-guard.ts replays
    if (spike) {
      log.warn('step skipped: gradient spike', { iteration: it + 1, gradNorm, median });
      events.emit({ type: 'step.skipped', iteration: it + 1, gradNorm, medianNorm: median });
    } else if (compute.remoteUpdate) {
      compute.remoteUpdate.apply(lr);
    } else {
      sgd.step(params, grads, lr);
      compute.paramsChanged(params);
    }
    phases.aggregate_update = (phases.aggregate_update ?? 0) + (performance.now() - updateStart) / 1000;
    for (const [phase, seconds] of Object.entries(phases)) metrics.phase(phase as Phase, seconds);
    metrics.stepDone(it + 1, sampler.position.epoch, batchSize, (performance.now() - stepStart) / 1000, gradNorm);
    lossSum += loss; lossCount++; windowExamples += batchSize;

    const done = it + 1;
    if (done % t.logEvery === 0) {
      const examplesPerSec = Math.round(windowExamples / ((Date.now() - windowStart) / 1000));
      log.info('progress', { iteration: done, loss: +(lossSum / lossCount).toFixed(4), lr, examplesPerSec });
      events.emit({ type: 'progress', iteration: done, iterations: t.iterations, loss: lossSum / lossCount, lr, examplesPerSec });
    }
    if (done % t.evalEvery === 0 || done === t.iterations) {
      const ev = await evaluate();
      const point = { iteration: done, valAccuracy: ev.accuracy, valLoss: ev.loss, trainLoss: lossCount ? lossSum / lossCount : NaN, wallSeconds: (Date.now() - started) / 1000, evalSeconds };
      curve.push(point);
      log.info('evaluation', { iteration: done, valAccuracy: +ev.accuracy.toFixed(4), valLoss: +ev.loss.toFixed(4) });
      events.emit({ type: 'evaluation', ...point });
      judgeDivergence(atChance.judge(point), t.divergence.action, cfg.optimizer);
      if (t.targetAccuracy !== null && !targetReached && ev.accuracy >= t.targetAccuracy) {
        targetReached = true;
        events.emit({ type: 'target.reached', iteration: done, valAccuracy: ev.accuracy, target: t.targetAccuracy, wallSeconds: point.wallSeconds });
      }
    }
    if (done % t.logEvery === 0) { lossSum = 0; lossCount = 0; windowExamples = 0; windowStart = Date.now(); }
    const stopping = done < t.iterations && (opts.stopRequested?.() ?? false);
    const releasing = done === job.releaseAt; // unfreeze.ts: the next stage trains more variables, from this checkpoint
    if (done % t.checkpointEvery === 0 || done === t.iterations || stopping || releasing) {
      const t0 = Date.now();
      await compute.remoteUpdate?.gather(params, sgd.velocity);
      writeParams(model, params);
      await job.estimateStatistics(); // BatchNorm's, at these weights (core/model/batch-norm.ts)
      const dir = await saveCheckpoint(outDir, model, { iteration: done, seed: cfg.seed, job: cfg.name, fingerprint: job.fingerprint, sampler: sampler.position, velocity: sgd.velocity, ledger: compute.ledgerEntries?.() ?? [] }, t.keepCheckpoints);
      log.info('checkpoint', { iteration: done, dir });
      events.emit({ type: 'checkpoint.written', iteration: done, dir, bytes: folderBytes(dir), seconds: (Date.now() - t0) / 1000 });
    }
    if (stopping) throw new JobStopped(`stopped by SIGTERM after iteration ${done} of ${t.iterations}, with a checkpoint there: run it again with --resume to continue`);
    if (releasing) {
      log.info('releasing frozen variables', { iteration: done });
      return { backend: job.backend, curve, outDir, model, releasedAt: done };
    }
  }
  writeParams(model, params); // with shards: gathered for the checkpoint the last iteration always writes
  await saveModel(model, join(outDir, 'model'));
  const seconds = (Date.now() - started) / 1000;
  log.info('finished', { model: join(outDir, 'model', 'model.json'), seconds });
  events.emit({ type: 'job.finished', iteration: t.iterations, valAccuracy: curve.length ? curve[curve.length - 1].valAccuracy : null, seconds });
  return { backend: job.backend, curve, outDir, model };
}

/** A job at chance (divergence.ts) fails with JobDiverged, or is warned about (once per window of evaluations). */
function judgeDivergence(found: string | null, action: 'fail' | 'warn' | 'off', o: { lr: number; layers: LayerRule[] }): void {
  if (found === null) return;
  if (action === 'fail') throw new JobDiverged(`${found}: ${divergenceAdvice(o.lr, o.layers)}`);
  log.warn('training at chance', { problem: found, advice: divergenceAdvice(o.lr, o.layers) });
}

function folderBytes(dir: string): number {
  return readdirSync(dir).reduce((a, f) => a + statSync(join(dir, f)).size, 0);
}
