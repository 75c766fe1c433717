// The job config: one YAML file, validated by this schema. This file is the
// one place every field's default and meaning is written down;
// `tunefleet config` prints them as commented YAML and docs/config.md is that
// output (a test keeps the two in step). Unknown fields are errors, so a typo
// never silently falls back to a default.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';
import { BACKENDS } from '../backend/backends';
import { DATASET_NAMES } from '../data/resolve';
import { ConfigInvalid } from '../errors';
import { INIT_SCHEMES } from '../model/init';
import { MODEL_NAMES, PADDINGS } from '../model/zoo';

const positiveInt = z.number().int().positive();
const nonNegative = z.number().nonnegative();

const data = z.object({
  dataset: z.enum(DATASET_NAMES).default('fashion-mnist').describe('named dataset: ' + DATASET_NAMES.join(', ')),
  path: z.string().nullable().default(null).describe('folder holding the dataset files; null = search ./data/<name>, /usr/share/datasets/<name>, the cache'),
  download: z.boolean().default(true).describe('download from the official URL (MD5-checked) when no local copy exists'),
  cifar100Labels: z.enum(['fine', 'coarse']).default('fine').describe('CIFAR-100 only: 100 fine or 20 coarse labels'),
  classes: z.array(z.number().int().nonnegative()).nullable().default(null).describe('keep only these classes, relabelled 0..k-1 in this order; null = all'),
  limitPerClass: positiveInt.nullable().default(null).describe('at most this many training examples per class (seeded choice); null = no limit'),
  limitTotal: positiveInt.nullable().default(null).describe('at most this many training examples in all (seeded choice); null = no limit'),
  validation: z.union([z.literal('test'), z.number().positive()]).default('test').describe("'test' = validate on the test split (same classes); a number = hold out that many (or that fraction, if < 1) of the training set"),
  normalize: z.union([z.literal('auto'), z.literal('none'), z.object({ mean: z.array(z.number()), std: z.array(z.number().positive()) }).strict()]).default('auto').describe("'auto' = per-channel mean/std of the training set; 'none' = pixels/255; or {mean: [...], std: [...]} on the 0..1 scale"),
}).strict();

const model = z.object({
  arch: z.enum(MODEL_NAMES).default('seed-cnn').describe('zoo model to build when not starting from `from`: ' + MODEL_NAMES.join(', ')),
  from: z.string().nullable().default(null).describe('start from this checkpoint folder, or tfjs model.json path or http(s) URL; null = random initialisation'),
  cutAt: z.string().nullable().default(null).describe('keep the loaded model only up to this layer (inclusive)'),
  replaceHead: z.boolean().nullable().default(null).describe('replace the classifier with a fresh dense softmax layer named `head` sized to the data; null = when `from` is set'),
  headLayer: z.string().nullable().default(null).describe('the classification layer to replace (it and all after it are dropped); null = the last layer'),
  padding: z.enum(PADDINGS).default('same').describe("a zoo model's spatial convs: same = output as large as the input (Keras's habit), valid = no border (PyTorch's Conv2d default, padding=0)"),
  batchNorm: z.boolean().default(false).describe("a zoo model with BatchNorm after every convolution (conv without bias → BatchNorm → ReLU, layers `<conv>_bn`, `<conv>_relu`); its statistics are estimated, or frozen by a layer rule's freezeStats (core/model/batch-norm.ts)"),
  init: z.enum(INIT_SCHEMES).default('glorot').describe("random weights (a zoo model's, or a replaced head's): glorot = Keras's Glorot-uniform kernels and zero biases; pytorch = PyTorch's nn.Conv2d/nn.Linear default, U(±1/√fan_in) for kernels and biases"),
}).strict();

const train = z.object({
  iterations: positiveInt.default(5000).describe('optimizer steps to run (Caffe-style: iterations, not epochs)'),
  batchSize: positiveInt.default(64).describe('global batch size: examples per step across all workers'),
  evalEvery: positiveInt.default(500).describe('validate every this many iterations, and at the end'),
  evalAtStart: z.boolean().default(false).describe('also validate before the first step of a fresh run (iteration 0 of the curve; `tunefleet compare` turns it on)'),
  logEvery: positiveInt.default(100).describe('log training loss and throughput every this many iterations'),
  checkpointEvery: positiveInt.default(1000).describe('checkpoint every this many iterations, and at the end'),
  keepCheckpoints: positiveInt.default(3).describe('keep only the newest this many checkpoints'),
  outDir: z.string().nullable().default(null).describe('where checkpoints and the final model go; null = runs/<name>'),
  targetAccuracy: z.number().gt(0).max(1).nullable().default(null).describe('validation accuracy whose first crossing is reported (event target.reached, metric); null = none'),
  batchPolicy: z.enum(['global', 'per-worker']).default('global').describe("when workers join or leave: 'global' = batchSize stays the global batch; 'per-worker' = batchSize per live worker, and the learning rate scales with live ÷ cluster.workers (Goyal et al.), ramped over scaleWarmup iterations (core/train/batch-policy.ts)"),
  spikeGuard: z.object({
    factor: z.number().gt(1).nullable().default(100).describe("a step whose averaged gradient's L2 norm is over factor × the median of recent steps is skipped; with ≥ 3 live workers one worker's gradient over factor × the median of recent ones is rejected (reason outlier); null = off"),
    window: positiveInt.default(50).describe('how many recent norms the median is over'),
    warmup: z.number().int().nonnegative().default(20).describe('judge only once this many norms are known'),
  }).strict().default({}).describe('guard against a poisoned or spiking gradient (core/train/spike-guard.ts)'),
  divergence: z.object({
    evaluations: positiveInt.default(5).describe('evaluations in a row (after iteration 0) at chance — accuracy within 0.02 of the most common validation class\'s share, loss over 2 × ln(classes): confidently wrong — with a validation loss no lower at the last than at the first, that make the job diverged (core/train/divergence.ts)'),
    action: z.enum(['fail', 'warn', 'off']).default('fail').describe("fail = end the job with JobDiverged naming what to lower; warn = log it once and go on; off = no check"),
  }).strict().default({}),
  statisticsExamples: positiveInt.default(512).describe('BatchNorm statistics not frozen are estimated from this many training examples (one seeded choice for the whole job), in batches of batchSize at the current weights, before every evaluation and checkpoint (PreciseBN; core/model/batch-norm.ts); a model without BatchNorm ignores it'),
  scaleWarmup: z.number().int().nonnegative().default(100).describe("per-worker policy: iterations over which the learning rate moves to its new scale after the worker count changes; 0 = at once"),
}).strict();

export const layerRule = z.object({
  match: z.string().describe('glob on variable names such as conv1/kernel or head/bias (* any run, ? one character)'),
  lrMult: nonNegative.describe('learning-rate multiplier; 0 freezes the variable'),
  decayMult: nonNegative.default(1).describe('weight-decay multiplier'),
  freezeStats: z.boolean().default(false).describe("BatchNorm layers whose moving statistics this rule decides keep them as they are (pretrained) and normalise with them in training too (no batch statistics); false = estimated from training batches (train.statisticsExamples). The statistics never take lrMult; a freezeStats rule that decides none is an error"),
}).strict();

export const unfreezeEntry = z.object({
  match: z.string().nullable().default(null).describe('glob on variable names, as in layers'),
  minDepth: z.number().int().nonnegative().nullable().default(null).describe('or: every layer at this depth or deeper (the head: 0)'),
  at: positiveInt.describe('the iteration it is released at'),
}).strict().refine((e) => (e.match === null) !== (e.minDepth === null), 'give match or minDepth, not both');

const policy = z.discriminatedUnion('type', [
  z.object({ type: z.literal('fixed') }).strict(),
  z.object({ type: z.literal('step'), gamma: z.number().positive(), stepSize: positiveInt }).strict(),
  z.object({ type: z.literal('multistep'), gamma: z.number().positive(), steps: z.array(positiveInt) }).strict(),
  z.object({ type: z.literal('cosine'), minLr: nonNegative.default(0) }).strict(),
]);

const optimizer = z.object({
  lr: z.number().positive().default(0.01).describe('base learning rate'),
  momentum: z.number().min(0).max(1).default(0.9).describe('momentum μ (PyTorch form; see core/train/optimizer.ts)'),
  nesterov: z.boolean().default(false).describe('Nesterov momentum'),
  weightDecay: nonNegative.default(0).describe('L2 weight decay λ'),
  policy: policy.default({ type: 'fixed' }).describe('LR policy: {type: fixed} | {type: step, gamma, stepSize} | {type: multistep, gamma, steps} | {type: cosine, minLr}'),
  warmup: z.object({
    iterations: z.number().int().nonnegative().default(0).describe('linear warm-up length; 0 = none'),
    startFactor: z.number().positive().max(1).default(0.1).describe('warm-up starts at lr × this'),
  }).strict().default({}),
  layers: z.array(layerRule).default([]).describe('per-variable multipliers, first match wins: rules {match: glob, lrMult, decayMult: 1, freezeStats: false (BatchNorm statistics kept, not estimated)}, e.g. [{match: "head/*", lrMult: 10}, {match: "*", lrMult: 0.1}]; unmatched = 1; a rule that decides no variable is an error (see them all: tunefleet config --explain job.yaml)'),
  unfreeze: z.array(unfreezeEntry).default([])
    .describe('gradual unfreezing: entries {match: glob, at: N} or {minDepth: d, at: N} (every layer at depth ≥ d; the head is 0); what they name is frozen (no gradient, no bytes) until iteration N, then trained with its multipliers; a variable several entries name is released at the latest; e.g. [{minDepth: 1, at: 100}, {minDepth: 2, at: 200}] (core/train/unfreeze.ts)'),
  headWarmup: z.number().int().nonnegative().default(0).describe('train only the head (depth 0) for this many iterations, then everything: unfreeze {minDepth: 1, at: headWarmup}; 0 = off'),
  layerDecay: z.number().gt(0).max(1).default(1).describe("layer-wise rate decay γ: each variable's lr_mult (from layers, or 1) × γ^depth, depth = layers below the last one with variables in the model's order (the head: 0); 1 = off"),
}).strict();

const cluster = z.object({
  workers: positiveInt.default(1).describe('the first step waits until this many workers are live (`tunefleet local --workers N` sets it)'),
  host: z.string().default('0.0.0.0').describe('address the coordinator listens on'),
  port: z.number().int().min(0).max(65535).default(7070).describe('gRPC port of the coordinator; 0 = any free port'),
  dataPlane: z.enum(['tcp', 'grpc']).default('tcp').describe("where parameters and gradients travel: 'tcp' = raw frames on a connection of their own (TLS when gRPC is); 'grpc' = as messages on the gRPC stream (one port only, several times slower: README, Benchmarks)"),
  dataPort: z.number().int().min(0).max(65535).nullable().default(null).describe("the data plane's port (dataPlane tcp), reached by workers at the coordinator's host; null = port + 1 (7071), or any free port when port is 0; 0 = any free port"),
  tokenFile: z.string().nullable().default(null).describe('file holding the shared worker token; null = TUNEFLEET_TOKEN (set but empty is refused), or no token when that is unset too'),
  insecure: z.boolean().default(false).describe('run without a token while listening beyond loopback (`coordinator --insecure`); false = such a start is refused'),
  tlsCert: z.string().nullable().default(null).describe('PEM certificate for gRPC over TLS; null = plaintext'),
  tlsKey: z.string().nullable().default(null).describe('PEM private key for tlsCert'),
  tlsClientCa: z.string().nullable().default(null).describe('PEM CA: when set, workers must present a client certificate it signed (mutual TLS)'),
  sliceDeadline: z.object({
    seconds: z.number().positive().nullable().default(null).describe('fixed time a worker has to answer a training slice (an evaluation slice: scaled by its size); null = adaptive'),
    factor: z.number().min(1).default(5).describe("adaptive: this × the median time per example of recent training slices × the slice's examples"),
    minSeconds: z.number().positive().default(10).describe('adaptive: never shorter than this'),
    window: positiveInt.default(50).describe('adaptive: how many recent training slices the median is over'),
    joinSeconds: z.number().positive().default(120).describe("a worker's first slice after joining (model build, cache fill) has this long"),
  }).strict().default({}).describe('a worker that misses it (in a step or an evaluation) is dropped and its slice reassigned within the round (coordinator/slice-deadline.ts)'),
  shards: z.number().int().min(0).max(1024).default(0).describe("parameter shards: 0 = the coordinator holds the parameters and averages every gradient; k > 0 = k `tunefleet shard` processes each hold 1/k of them, average their part and apply SGD to it, so no single link carries every worker's traffic (docs/distributed.md; needs dataPlane tcp; with TLS every shard needs its own certificate: tunefleet shard --tls-*)"),
  partitionMiB: z.number().positive().max(64).default(4).describe('with shards: the model is cut into partitions of at most this many MiB, spread evenly over the shards (core/train/partition.ts)'),
  gradientDtype: z.enum(['float32', 'float16']).default('float32').describe('how workers send gradients: float16 halves the bytes (rounded to ~3 significant digits; the coordinator averages in float64)'),
  stallSeconds: z.number().positive().default(30).describe("a peer that takes none of the bytes being written to it for this long (a worker not reading its parameters, a shard's push, a message on a gRPC stream) is lost: the connection is closed and that peer blamed (docs/failure-model.md)"),
  shardDeadlineSeconds: z.number().positive().default(30).describe('with shards: a shard must answer every request (Expect, Average, Snapshot, and a Ping sent every third of this) within this long of its being written; one that does not is lost and the job goes back to its last checkpoint. A Snapshot\'s whole answer (the shard\'s state, for a checkpoint) must come within it: raise it for shards holding many GiB on slow links'),
  keepaliveSeconds: z.number().positive().default(30).describe('gRPC keepalive: the coordinator pings every worker and shard connection after this long and closes one whose peer does not answer within this long again (a SIGSTOPped process, a half-open connection); keep it above the longest step a worker computes without yielding'),
  joinTimeoutSeconds: z.number().positive().default(10).describe('a session that has not sent Join within this long is closed (and counted as no-join)'),
  maxRejections: positiveInt.default(3).describe('sessions of one worker id ended for bad messages before that id is refused for the rest of the job'),
  workerData: z.enum(['coordinator', 'local']).default('coordinator').describe("'coordinator' = workers receive examples from the coordinator (only it needs the dataset); 'local' = workers load the same dataset themselves and receive only indices"),
}).strict();

const metrics = z.object({
  host: z.string().default('0.0.0.0').describe("address the metrics servers bind: '0.0.0.0' = every interface (what Prometheus in Kubernetes needs), '127.0.0.1' = this host only; `tunefleet local` passes it to its workers"),
  port: z.number().int().min(0).max(65535).nullable().default(9400).describe('HTTP port of the coordinator\'s /metrics, /livez, /readyz, /healthz (docs/observability.md); null = off'),
  workerPort: z.number().int().min(0).max(65535).nullable().default(9401).describe('tunefleet local: worker i serves its metrics on workerPort + i; null = off'),
  nats: z.string().nullable().default(null).describe('NATS URL (nats://host:4222) to publish job events to; null = in-process only'),
}).strict();

export const jobSchema = z.object({
  name: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . - only').default('job').describe('job name: used in run folders, metrics and events'),
  seed: z.number().int().nonnegative().default(1).describe('seeds initialisation, data subsets and shuffling'),
  backend: z.enum(['auto', ...BACKENDS]).default('auto').describe(`tfjs backend; auto = fastest that loads (${BACKENDS.join(', ')}; webgpu only on a hardware adapter)`),
  data: data.default({}),
  model: model.default({}),
  train: train.default({}),
  optimizer: optimizer.default({}),
  cluster: cluster.default({}),
  metrics: metrics.default({}),
  pretrain: z.object({ data: z.unknown(), model: z.unknown(), train: z.unknown(), optimizer: z.unknown() }).partial().strict().nullable().default(null)
    .describe('optional source-task stage run first: these data/model/train/optimizer fields override the job\'s, and the job then fine-tunes from its result (see core/job/stages.ts)'),
}).strict();

export type JobConfig = z.infer<typeof jobSchema>;

// Keys renamed since a release, with their new place: named in the error, so
// an old job file fails with what to change rather than "unrecognized key".
const RENAMED: Record<string, string> = { 'cluster.stepDeadline': 'cluster.sliceDeadline (it governs evaluation slices too)' };

function formatIssues(source: string, err: z.ZodError): string {
  return err.issues.map((i) => {
    const at = i.path.join('.');
    const renamed = i.code === 'unrecognized_keys' ? i.keys.map((k) => RENAMED[at ? `${at}.${k}` : k]).find(Boolean) : undefined;
    return `${source}: ${at || '(top level)'}: ${renamed ? `${i.message}; it was renamed ${renamed}` : i.message}`;
  }).join('\n');
}

/** Validate a plain object (already parsed YAML) against the schema. */
export function parseJob(raw: unknown, source = 'job config'): JobConfig {
  const result = jobSchema.safeParse(raw ?? {});
  if (!result.success) throw new ConfigInvalid(formatIssues(source, result.error));
  if (result.data.pretrain) pretrainConfig(result.data, source); // validate the stage now, not hours later
  checkShards(result.data, source);
  return result.data;
}

function checkShards(cfg: JobConfig, source: string): void {
  const c = cfg.cluster;
  if (c.shards === 0) return;
  if (c.dataPlane !== 'tcp') throw new ConfigInvalid(`${source}: cluster.shards: parameter shards move tensors on the data plane; set cluster.dataPlane: tcp or cluster.shards: 0`);
}

/** The parameter shards' partition size in bytes (cluster.partitionMiB; whole float32s). */
export function partitionBytesOf(cfg: JobConfig): number {
  return 4 * Math.max(1, Math.floor((cfg.cluster.partitionMiB * 2 ** 20) / 4));
}

/** The data plane's port to bind (cluster.dataPort's default follows cluster.port). */
export function dataPortOf(cfg: JobConfig): number {
  const { port, dataPort } = cfg.cluster;
  return dataPort ?? (port === 0 ? 0 : port + 1);
}

export function outDirOf(cfg: JobConfig): string {
  return cfg.train.outDir ?? join('runs', cfg.name);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isPlainObject(v) && isPlainObject(base[k]) ? deepMerge(base[k] as Record<string, unknown>, v) : v;
  return out;
}

/**
 * The pretraining stage of a job with a `pretrain` section: the job's own
 * fields with that section's overrides, training from scratch (model.from
 * null, no per-layer rules unless the section sets them), named
 * `<name>-pretrain`, writing into `<outDir>/pretrain`.
 */
export function pretrainConfig(cfg: JobConfig, source = 'job config'): JobConfig {
  const base: Record<string, unknown> = {
    ...cfg, pretrain: null, name: `${cfg.name}-pretrain`,
    model: { ...cfg.model, from: null, cutAt: null, replaceHead: null, headLayer: null },
    optimizer: { ...cfg.optimizer, layers: [] },
    train: { ...cfg.train, outDir: join(outDirOf(cfg), 'pretrain') },
  };
  return parseJob(deepMerge(base, cfg.pretrain as Record<string, unknown>), `${source} (pretrain stage)`);
}

/** Read and parse a YAML file; ConfigInvalid when it cannot be read or is not YAML. */
export function readYaml(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigInvalid(`${path}: cannot read the job file (${(err as Error).message})`, { cause: err });
  }
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (err) {
    throw new ConfigInvalid(`${path}: not valid YAML: ${(err as Error).message}`, { cause: err });
  }
  return raw;
}

export function loadJobFile(path: string): JobConfig {
  return parseJob(readYaml(path), path);
}
