// An experiment (`tunefleet compare`) is a job config with a `pretrain`
// section (the source task) plus a `compare` section naming the arms to run
// on the target task. Each arm is the job itself, started either from the
// pretrained model (head replaced) or from scratch, with its own per-layer
// learning-rate rules (layer decay, unfreezing schedule), once per seed.
import { z } from 'zod';
import { JobConfig, layerRule, parseJob, readYaml, unfreezeEntry } from './config';
import { ConfigInvalid } from '../errors';

const arm = z.object({
  name: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . - only'),
  init: z.enum(['pretrained', 'scratch']).describe('start from the pretrain stage\'s model (head replaced) or from random weights'),
  layers: z.array(layerRule).default([]).describe('per-layer multipliers for this arm (optimizer.layers)'),
  layerDecay: z.number().gt(0).max(1).default(1).describe('layer-wise rate decay for this arm (optimizer.layerDecay)'),
  unfreeze: z.array(unfreezeEntry).default([]).describe('gradual unfreezing for this arm (optimizer.unfreeze)'),
  headWarmup: z.number().int().nonnegative().default(0).describe('head warm-up for this arm (optimizer.headWarmup)'),
}).strict();

export const DEFAULT_ARMS: z.input<typeof arm>[] = [
  { name: 'fine-tune', init: 'pretrained', layers: [{ match: 'head/*', lrMult: 10 }, { match: '*', lrMult: 0.1 }], layerDecay: 1, unfreeze: [], headWarmup: 0 },
  { name: 'scratch', init: 'scratch', layers: [], layerDecay: 1, unfreeze: [], headWarmup: 0 },
];

export const compareSchema = z.object({
  seeds: z.array(z.number().int().nonnegative()).min(1).default([1]).describe('each arm runs once per seed; speed-ups are medians over seeds'),
  thresholds: z.array(z.number().gt(0).max(1)).min(1).default([0.6, 0.8, 0.85, 0.9]).describe('validation accuracies whose first crossing is reported'),
  arms: z.array(arm).min(1).default(DEFAULT_ARMS).describe('default: fine-tune (head ×10, rest ×0.1) and scratch (all ×1)'),
}).strict();

export type Arm = z.infer<typeof arm>;
export type CompareSpec = z.infer<typeof compareSchema>;

export interface Experiment {
  job: JobConfig;
  compare: CompareSpec;
}

export function parseExperiment(raw: unknown, source: string): Experiment {
  const { compare, ...rest } = (raw ?? {}) as Record<string, unknown>;
  const job = parseJob(rest, source);
  const parsed = compareSchema.safeParse(compare ?? {});
  if (!parsed.success) throw new ConfigInvalid(parsed.error.issues.map((i) => `${source}: compare.${i.path.join('.')}: ${i.message}`).join('\n'));
  if (!job.pretrain && parsed.data.arms.some((a) => a.init === 'pretrained')) {
    throw new ConfigInvalid(`${source}: the arms start from a pretrained model, so the experiment needs a pretrain section (the source task)`);
  }
  if (!parsed.data.arms.some((a) => a.init === 'scratch')) throw new ConfigInvalid(`${source}: compare.arms needs one 'scratch' arm: it is the baseline of every speed-up`);
  return { job, compare: parsed.data };
}

export function loadExperiment(path: string): Experiment {
  return parseExperiment(readYaml(path), path);
}

/** The job one arm runs for one seed, writing under `<out>/runs/<arm>-s<seed>`. */
export function armJob(base: JobConfig, a: Arm, seed: number, pretrainedModel: string | null, out: string): JobConfig {
  return {
    ...base,
    name: `${base.name}-${a.name}-s${seed}`,
    seed,
    pretrain: null,
    model: a.init === 'pretrained' ? { ...base.model, from: pretrainedModel, replaceHead: null } : { ...base.model, from: null },
    optimizer: { ...base.optimizer, layers: a.layers, layerDecay: a.layerDecay, unfreeze: a.unfreeze, headWarmup: a.headWarmup },
    train: { ...base.train, evalAtStart: true, outDir: `${out}/runs/${a.name}-s${seed}` }, // the curves start at iteration 0
  };
}
