// Everything a training job needs before its first step, shared by the
// single-process trainer and the coordinator: the backend, the data, the
// starting model (fresh, pretrained, or resumed from the newest checkpoint),
// which variables train, the optimizer and the sampler.
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../backend/backends';
import { latestCheckpoint, listCheckpoints, loadCheckpoint, TrainingState } from '../model/checkpoint';
import { JobConfig, outDirOf } from './config';
import { differences, Fingerprint, fingerprint } from './fingerprint';
import { CheckpointInvalid, ConfigInvalid } from '../errors';
import { count } from '../data/dataset';
import { EventBus } from '../observe/events';
import { Metrics } from '../observe/metrics';
import { NatsPublisher } from '../observe/nats';
import { initialModel } from './model';
import { JobData, prepareData } from './data';
import { LedgerEntry } from '../train/ledger';
import { logger } from '../observe/log';
import { estimateStatistics, freezeStatistics, statisticsBatches, statisticsIndices } from '../model/batch-norm';
import { frozenStatisticsLayers, isFrozen, multiplierRows, MULTIPLIER_COLUMNS, Resolved, resolveMultipliers, ruleProblems } from '../train/lr-rules';
import { atIteration, nextRelease, releaseIterations, schedule, unfreezeProblems } from '../train/unfreeze';
import { ParamSpec, paramSpecs, readParams } from '../model/params';
import { Sgd } from '../train/optimizer';
import { Tensors } from '../util/tensors';
import { Sampler } from '../train/sampler';
import { product } from '../util/numbers';

const log = logger('job');

export interface JobSetup {
  cfg: JobConfig;
  backend: string;
  data: JobData;
  model: tf.LayersModel;
  specs: ParamSpec[];
  trainable: string[]; // frozen variables (lrMult 0) are not here
  /** Each variable's multipliers, resolved from optimizer.layers once for the whole job (for this stage: unfreeze.ts). */
  multipliers: Map<string, Resolved>;
  /** The iteration where optimizer.unfreeze releases more variables: this stage ends there (null: it runs to the end). */
  releaseAt: number | null;
  params: Tensors; // the master copy the optimizer updates
  sgd: Sgd;
  sampler: Sampler;
  startIteration: number;
  /** BatchNorm (batch-norm.ts): the layers whose statistics are frozen, and the training examples the others are estimated from. */
  statistics: JobStatistics;
  /** Estimate the statistics not frozen at the model's current weights, into the model and `params` (before an evaluation or checkpoint). */
  estimateStatistics(): Promise<void>;
  /** What checkpoints record of this job, so a resume can tell it is the same job. */
  fingerprint: Fingerprint;
  /** The ledger as of the checkpoint resumed from (empty for a fresh start). */
  ledger: LedgerEntry[];
  outDir: string;
  events: EventBus;
  metrics: Metrics;
  /** Publishes the events to NATS when metrics.nats is set. */
  nats: NatsPublisher | null;
  /** Stop this setup's metrics and NATS publisher from taking events (the bus may go on to a next stage), and close NATS. */
  close(): Promise<void>;
}

export interface JobStatistics {
  frozen: string[];
  /** Empty when the model has no BatchNorm statistics to estimate. */
  indices: Uint32Array;
}

/**
 * Each variable's multipliers for `cfg`, checked: every rule decides some
 * variable (a typo never silently falls back to ×1) and something trains.
 * Logged, one line per variable, so a run says what each variable got.
 */
export function jobMultipliers(cfg: JobConfig, names: string[], iteration = 0): { multipliers: Map<string, Resolved>; releaseAt: number | null } {
  const { layers, layerDecay, unfreeze, headWarmup } = cfg.optimizer;
  const entries = schedule(unfreeze, headWarmup);
  const problems = [...ruleProblems(names, layers), ...unfreezeProblems(names, entries)];
  if (problems.length > 0) throw new ConfigInvalid(`${problems.join('; ')} (every variable and what it gets: tunefleet config --explain job.yaml)`);
  const releases = releaseIterations(names, entries);
  const resolved = resolveMultipliers(names, layers, layerDecay);
  const multipliers = atIteration(resolved, releases, iteration);
  const next = nextRelease(releases, iteration);
  if ([...multipliers.values()].every(isFrozen)) {
    throw new ConfigInvalid(next === null
      ? 'every variable is frozen (lrMult 0), so nothing would train: give the head a rate, e.g. optimizer.layers: [{match: "head/*", lrMult: 10}, {match: "*", lrMult: 0}]'
      : `every variable is frozen until iteration ${next} (optimizer.unfreeze), so nothing would train before it: leave the head out of the schedule`);
  }
  for (const row of multiplierRows(resolved, layers, releases)) log.info('multiplier', Object.fromEntries(MULTIPLIER_COLUMNS.map((c, i) => [c, row[i]])));
  return { multipliers, releaseAt: next !== null && next < cfg.train.iterations ? next : null };
}

async function startingPoint(cfg: JobConfig, data: JobData, resume: boolean, print: Fingerprint): Promise<{ model: tf.LayersModel; state: TrainingState }> {
  const latest = resume ? latestCheckpoint(outDirOf(cfg)) : null;
  if (latest) {
    const { model, state } = await loadCheckpoint(latest);
    const differ = differences(state.fingerprint, print);
    if (differ.length > 0) {
      model.dispose();
      throw new CheckpointInvalid(`${latest} was written by a different job (${differ.join('; ')}); resume with the config it was written with, or start afresh without --resume or with another train.outDir`);
    }
    log.info('resuming', { checkpoint: latest, iteration: state.iteration });
    return { model, state };
  }
  const earlier = listCheckpoints(outDirOf(cfg));
  if (earlier.length > 0) {
    log.warn('starting afresh in a folder with checkpoints of an earlier run: this run replaces those of the same iterations, later ones stay, and --resume would continue from the newest; choose another train.outDir to keep runs apart', { outDir: outDirOf(cfg), newest: earlier[earlier.length - 1] });
  }
  const model = await initialModel(cfg, data.train.shape, data.train.numClasses);
  return { model, state: { iteration: 0, seed: cfg.seed, job: cfg.name, sampler: { epoch: 0, offset: 0 }, velocity: new Map(), ledger: [] } };
}

/** The model's frozen BatchNorm layers (made to normalise with their statistics in training), and the examples for estimating the others. */
function jobStatistics(cfg: JobConfig, model: tf.LayersModel, multipliers: Map<string, Resolved>, trainExamples: number): JobStatistics {
  const frozen = frozenStatisticsLayers(multipliers);
  freezeStatistics(model, frozen);
  const estimated = [...multipliers.values()].some((m) => m.statistics === 'estimated');
  return { frozen, indices: estimated ? statisticsIndices(trainExamples, cfg.train.statisticsExamples, cfg.seed) : new Uint32Array(0) };
}

export async function setupJob(cfg: JobConfig, resume = false, events = new EventBus()): Promise<JobSetup> {
  events.job = cfg.name;
  const backend = await initBackend(cfg.backend);
  const data = await prepareData(cfg);
  const print = fingerprint(cfg, count(data.train));
  const { model, state } = await startingPoint(cfg, data, resume, print);
  const specs = paramSpecs(model);
  const { multipliers, releaseAt } = jobMultipliers(cfg, specs.map((s) => s.name), state.iteration);
  const trainable = specs.map((s) => s.name).filter((n) => !isFrozen(multipliers.get(n)!));
  const sgd = new Sgd(cfg.optimizer, multipliers);
  for (const [name, v] of state.velocity) sgd.velocity.set(name, v);
  const statistics = jobStatistics(cfg, model, multipliers, count(data.train));
  const params = await readParams(model);
  const setup: JobSetup = {
    cfg, backend, data, model, specs, trainable, multipliers, releaseAt, sgd, params, statistics,
    estimateStatistics: async () => {
      const batches = statisticsBatches(data.train, statistics.indices, cfg.train.batchSize, data.norm);
      for (const [name, values] of await estimateStatistics(model, batches, statistics.frozen)) params.set(name, values);
    },
    sampler: new Sampler(count(data.train), cfg.seed, state.sampler),
    startIteration: state.iteration,
    fingerprint: print,
    ledger: state.ledger,
    outDir: outDirOf(cfg),
    events,
    metrics: new Metrics(cfg.name, 'coordinator'),
    nats: null,
    close: async () => {
      for (const off of detach) off();
      await setup.nats?.close();
    },
  };
  const detach = [events.subscribe(setup.metrics.onEvent)];
  if (cfg.metrics.nats) {
    setup.nats = new NatsPublisher(cfg.metrics.nats, () => setup.metrics.eventDropped());
    detach.push(events.subscribe(setup.nats.publish));
  }
  log.info('job', {
    name: cfg.name, backend, trainExamples: count(data.train), valExamples: count(data.val), classes: data.train.numClasses,
    parameters: specs.reduce((a, s) => a + product(s.shape), 0),
    trainable: trainable.join(','), frozen: specs.length - trainable.length,
    batch: cfg.train.batchSize, iterationsPerEpoch: +(count(data.train) / cfg.train.batchSize).toFixed(1), outDir: setup.outDir,
  });
  return setup;
}
