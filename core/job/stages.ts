// A job with a `pretrain` section runs in two stages: first the source task
// from scratch (config from `pretrainConfig`), then the job itself,
// fine-tuning from the first stage's final model with its head replaced.
// The first stage is skipped when its output exists for the same
// training-relevant config (recorded in <outDir>/pretrain/stage.json), unless
// `fresh` is set.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic';
import { JobConfig, outDirOf, pretrainConfig } from './config';
import { logger } from '../observe/log';
import { TrainResult } from '../train/loop';

const log = logger('stages');

/** What decides the trained weights; not where logs go or how many workers compute them. */
function fingerprint(cfg: JobConfig): string {
  const { seed, data, model, optimizer } = cfg;
  const { iterations, batchSize } = cfg.train;
  return createHash('sha256').update(JSON.stringify({ seed, data, model, optimizer, iterations, batchSize })).digest('hex');
}

/**
 * Run the pretrain stage of `cfg` unless its output exists for the same
 * config (or `fresh`); return the pretrained model's folder and its final
 * validation accuracy on the source task (null: pretrained by a version that
 * did not record it).
 */
export async function ensurePretrained(cfg: JobConfig, run: (stage: JobConfig) => Promise<TrainResult>, opts: { fresh?: boolean; outDir?: string } = {}): Promise<{ model: string; sourceAccuracy: number | null }> {
  let pre = pretrainConfig(cfg);
  if (opts.outDir) pre = { ...pre, train: { ...pre.train, outDir: opts.outDir } };
  const dir = outDirOf(pre);
  const stamp = join(dir, 'stage.json');
  const hash = fingerprint(pre);
  const stamped = existsSync(stamp) ? JSON.parse(readFileSync(stamp, 'utf8')) as { fingerprint: string; valAccuracy?: number } : null;
  const reusable = !opts.fresh && existsSync(join(dir, 'model', 'model.json')) && stamped?.fingerprint === hash;
  if (reusable) {
    log.info('reusing pretrained model', { dir: join(dir, 'model') });
    return { model: join(dir, 'model'), sourceAccuracy: stamped?.valAccuracy ?? null };
  }
  log.info('stage', { stage: 'pretrain', name: pre.name });
  const { curve } = await run(pre);
  const valAccuracy = curve[curve.length - 1]?.valAccuracy ?? null;
  writeFileAtomic(stamp, JSON.stringify({ fingerprint: hash, config: pre, valAccuracy }, null, 1));
  return { model: join(dir, 'model'), sourceAccuracy: valAccuracy };
}

export async function runStages(cfg: JobConfig, run: (stage: JobConfig) => Promise<TrainResult>, opts: { fresh?: boolean } = {}): Promise<TrainResult> {
  if (!cfg.pretrain) return run(cfg);
  const from = (await ensurePretrained(cfg, run, opts)).model;
  log.info('stage', { stage: 'fine-tune', name: cfg.name, from });
  return run({ ...cfg, pretrain: null, model: { ...cfg.model, from } });
}
