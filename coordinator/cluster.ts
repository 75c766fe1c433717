// The fleet of workers as the training loop sees it: a Compute whose
// gradients and evaluations are rounds of slices handed to live workers
// (failure policy in round.ts). Before a worker gets a slice it is brought up
// to date: the parameters it lacks (everything on join; afterwards only the
// trainable tensors, once per version — frozen ones are never re-sent) and
// the examples it has not cached.
//
// Parameter chunks are views into the optimizer's master copy, not copies.
// That is safe because the optimizer only updates after a round completes,
// and a round completes only after every worker in it has answered — which it
// can only do after receiving, in stream order, every message sent before.
import * as grpc from '@grpc/grpc-js';
import { GradientAverager } from './aggregator';
import { JobFailed, WireInvalid, WorkerRefused } from '../core/errors';
import { EvalResult } from '../core/train/gradients';
import { JobSetup } from '../core/job/setup';
import { Ledger, LedgerEntry } from '../core/train/ledger';
import { logger } from '../core/observe/log';
import { Metrics, Phase } from '../core/observe/metrics';
import { ParamSpec } from '../core/model/params';
import { shard } from '../core/train/sampler';
import { Compute } from '../core/train/loop';
import { CHUNK_BYTES, chunksOf } from '../core/wire/tensors';
import { CoordinatorMessage, DType, EvalDone, Join, Split, StepDone, TensorChunk, Welcome } from '../proto/gen/tunefleet/v1/tunefleet';
import { Deadlines, Slice, SliceKind } from './slice-deadline';
import { Round, Task } from './round';
import { SessionCall, WorkerSession } from './session';

const log = logger('coordinator');

export interface Traffic {
  paramBytes: Map<string, number>; // by variable
  dataBytes: number;
  gradientBytes: number;
}

export class Cluster implements Compute {
  readonly sessions = new Map<string, WorkerSession>();
  readonly ledger: Ledger;
  readonly traffic: Traffic = { paramBytes: new Map(), dataBytes: 0, gradientBytes: 0 };
  private version = 0;
  private stepRound: Round<StepDone> | null = null;
  private evalRound: Round<EvalDone> | null = null;
  private readonly averager: GradientAverager;
  private readonly trainableSpecs: ParamSpec[];
  private readonly joinWaiters: (() => void)[] = [];
  private evalTotals = { correct: 0, lossSum: 0, examples: 0 };
  private joined = 0;
  private finished = false;
  private currentStep = -1;
  private readonly rejections = new Map<string, number>();
  private readonly deadlines: Deadlines;

  constructor(private readonly job: JobSetup, private readonly localData: boolean) {
    this.trainableSpecs = job.specs.filter((s) => job.trainable.includes(s.name));
    this.averager = new GradientAverager(this.trainableSpecs);
    this.ledger = new Ledger(job.data.train.labels.length, job.ledger);
    this.deadlines = new Deadlines(job.cfg.cluster.stepDeadline, (w, seconds, kind) =>
      this.drop(w, { code: grpc.status.DEADLINE_EXCEEDED, details: `deadline: no result within the ${kind} deadline of ${seconds.toFixed(1)} s` }));
  }

  get gradientDtype(): DType {
    return this.job.cfg.cluster.gradientDtype === 'float16' ? DType.FLOAT16 : DType.FLOAT32;
  }

  get metrics(): Metrics {
    return this.job.metrics;
  }

  live(): string[] {
    return [...this.sessions.values()].filter((s) => s.alive).map((s) => s.id);
  }

  liveWorkers(): number {
    return Math.max(1, this.live().length);
  }

  ledgerEntries(): LedgerEntry[] {
    return this.ledger.snapshot();
  }

  // ---- membership -------------------------------------------------------

  join(call: SessionCall, msg: Join): WorkerSession {
    if (this.finished) throw new JobFailed('the job has finished');
    const id = msg.workerId || `worker-${this.joined}`;
    if (this.sessions.get(id)?.alive) throw new WireInvalid(`worker id ${id} is already live`, 'duplicate-id');
    const strikes = this.rejections.get(id) ?? 0;
    if (strikes >= this.job.cfg.cluster.maxRejections) throw new WorkerRefused(`worker id ${id} sent bad messages in ${strikes} sessions; it is refused for the rest of the job`);
    this.joined++;
    const { data } = this.job;
    const session = new WorkerSession(id, msg.backend, call, this.trainableSpecs, [this.gradientDtype], { train: data.train.labels.length, val: data.val.labels.length });
    this.sessions.set(id, session);
    void session.send({ kind: { $case: 'welcome', value: this.welcome(id) } });
    log.info('worker joined', { worker: id, backend: msg.backend, device: msg.device, live: this.live().length });
    this.job.events.emit({ type: 'worker.joined', worker: id, backend: msg.backend, live: this.live().length });
    this.stepRound?.workerJoined(id);
    this.evalRound?.workerJoined(id);
    for (const wake of this.joinWaiters.splice(0)) wake();
    return session;
  }

  /**
   * End a worker's session with a gRPC status. A session ended for a message
   * (`rejected`: the reason) is counted; one the worker got wrong (`strike`)
   * also counts against its id, which is refused at cluster.maxRejections.
   */
  drop(id: string, status: Partial<grpc.StatusObject>, rejected?: string, strike = false): void {
    if (rejected) this.job.metrics.rejected(rejected);
    if (strike) this.rejections.set(id, (this.rejections.get(id) ?? 0) + 1);
    const s = this.sessions.get(id);
    if (!s?.alive) return;
    log.warn('worker dropped', { worker: id, details: status.details });
    this.leave(id, String(status.details));
    s.fail(status);
  }

  leave(id: string, reason: string): void {
    const s = this.sessions.get(id);
    if (!s || !s.alive) return;
    s.alive = false;
    this.deadlines.clear(id);
    const type = this.finished ? 'worker.left' : 'worker.lost';
    log.info(type.replace('.', ' '), { worker: id, reason, live: this.live().length });
    this.job.events.emit({ type, worker: id, reason, live: this.live().length });
    this.stepRound?.workerLost(id, this.live());
    this.evalRound?.workerLost(id, this.live());
  }

  async waitForWorkers(n: number): Promise<void> {
    while (this.live().length < n) {
      log.info('waiting for workers', { live: this.live().length, needed: n });
      await new Promise<void>((r) => this.joinWaiters.push(r));
    }
  }

  private welcome(workerId: string): Welcome {
    const { cfg, data, model, trainable } = this.job;
    return {
      workerId, job: cfg.name,
      modelTopologyJson: JSON.stringify(model.toJSON(null, false)),
      trainable,
      exampleShape: data.train.shape,
      normMean: data.norm.mean, normStd: data.norm.std,
      trainSize: data.train.labels.length, valSize: data.val.labels.length,
      localData: this.localData,
      jobConfigJson: JSON.stringify(cfg),
      gradientDtype: this.gradientDtype,
    };
  }

  // ---- keeping a worker up to date ---------------------------------------

  private async syncParams(s: WorkerSession): Promise<void> {
    if (s.version === this.version) return;
    const specs = s.version < 0 ? this.job.specs : this.trainableSpecs;
    for (const spec of specs) {
      for (const chunk of chunksOf(spec.name, spec.shape, this.job.params.get(spec.name)!)) {
        this.traffic.paramBytes.set(spec.name, (this.traffic.paramBytes.get(spec.name) ?? 0) + chunk.data.length);
        this.job.metrics.traffic('sent', 'parameters', chunk.data.length);
        await s.send({ kind: { $case: 'param', value: chunk } });
      }
    }
    s.version = this.version;
  }

  private async syncData(s: WorkerSession, split: Split.TRAIN | Split.VALIDATION, indices: Uint32Array): Promise<void> {
    if (this.localData) return;
    const ds = split === Split.TRAIN ? this.job.data.train : this.job.data.val;
    const cached = s.cached[split];
    const missing = Array.from(indices).filter((i) => !cached[i]);
    const size = ds.shape[0] * ds.shape[1] * ds.shape[2];
    const perMessage = Math.max(1, Math.floor(CHUNK_BYTES / size));
    for (let at = 0; at < missing.length; at += perMessage) {
      const batch = missing.slice(at, at + perMessage);
      const images = new Uint8Array(batch.length * size);
      batch.forEach((idx, k) => images.set(ds.images.subarray(idx * size, (idx + 1) * size), k * size));
      this.traffic.dataBytes += images.length;
      this.job.metrics.traffic('sent', 'data', images.length);
      await s.send({ kind: { $case: 'examples', value: { split, indices: batch, images, labels: batch.map((i) => ds.labels[i]) } } });
      for (const i of batch) cached[i] = 1;
    }
  }

  /** Bring worker `w` up to date for `task`, send it `message`, and start the slice's deadline. */
  private async handOut<R>(w: string, round: Round<R>, task: Task, kind: SliceKind, message: CoordinatorMessage['kind']): Promise<void> {
    const s = this.sessions.get(w)!;
    const joining = s.version < 0;
    await this.syncParams(s);
    await this.syncData(s, kind === 'step' ? Split.TRAIN : Split.VALIDATION, task.indices);
    await s.send({ kind: message });
    if (s.alive && round.outstanding(w)) this.deadlines.arm(w, { kind, examples: task.indices.length, joining });
  }

  // ---- Compute: training steps ---------------------------------------------

  async gradients(step: number, indices: Uint32Array, epochs: Uint32Array) {
    const t = new StepTimer();
    const round = new Round<StepDone>(
      async (w, task) => {
        await this.handOut(w, round, task, 'step', { $case: 'step', value: { step, version: this.version, indices: Array.from(task.indices) } });
        t.dispatched(w);
      },
      (w, task, done) => {
        t.done(w, done.computeSeconds);
        this.acceptGradients(w, step, task, done);
      },
    );
    this.stepRound = round;
    this.currentStep = step;
    await this.startRound(round, indices, epochs);
    this.stepRound = null;
    this.deadlines.clearAll();
    const takeStart = performance.now();
    const mean = this.averager.take();
    return { ...mean, phases: { ...t.phases(), aggregate_update: (performance.now() - takeStart) / 1000 } };
  }

  private acceptGradients(workerId: string, step: number, task: Task, done: StepDone): void {
    const s = this.sessions.get(workerId)!;
    this.job.metrics.workerCompute(workerId, done.computeSeconds, done.examples);
    this.averager.add(s.uploads.tensors, task.indices.length, done.loss);
    s.uploads.reset();
    this.ledger.record(step, workerId, task.indices, task.epochs!);
  }

  onGradient(workerId: string, chunk: TensorChunk): void {
    if (!this.stepRound?.outstanding(workerId)) throw new WireInvalid('gradient chunk while no step is assigned to this worker', 'unexpected');
    const uploads = this.sessions.get(workerId)!.uploads;
    const completed = uploads.add(chunk);
    if (completed && !allFinite(uploads.tensors.get(completed)!)) throw new WireInvalid(`${completed}: gradient holds NaN or Inf`, 'non-finite');
    this.traffic.gradientBytes += chunk.data.length;
    this.job.metrics.traffic('received', 'gradients', chunk.data.length);
  }

  onStepDone(workerId: string, msg: StepDone): void {
    const s = this.sessions.get(workerId)!;
    const task = this.stepRound?.outstanding(workerId);
    if (!task) throw new WireInvalid(`StepDone for step ${msg.step} while no step is assigned to this worker`, 'unexpected');
    if (msg.step !== this.currentStep || msg.version !== this.version) {
      throw new WireInvalid(`StepDone for step ${msg.step} at version ${msg.version}; expected step ${this.currentStep} at version ${this.version}`, 'stale');
    }
    if (!Number.isFinite(msg.loss)) throw new WireInvalid(`StepDone reports loss ${msg.loss}`, 'non-finite');
    if (msg.examples !== task.indices.length) throw new WireInvalid(`StepDone reports ${msg.examples} examples for a slice of ${task.indices.length}`, 'examples');
    if (!s.uploads.complete()) throw new WireInvalid('StepDone before every trainable gradient arrived', 'incomplete');
    this.stepRound!.complete(workerId, msg);
    this.deadlines.answered(workerId, nextSlice(this.stepRound, workerId, 'step'));
  }

  // ---- Compute: evaluation -------------------------------------------------

  async evaluate(): Promise<EvalResult> {
    const n = this.job.data.val.labels.length;
    const round: Round<EvalDone> = new Round<EvalDone>(
      (w, task) => this.handOut(w, round, task, 'evaluation', { $case: 'eval', value: { evalId: 0, version: this.version, indices: Array.from(task.indices) } }),
      (_w, _task, r) => {
        this.evalTotals.correct += r.correct;
        this.evalTotals.lossSum += r.lossSum;
        this.evalTotals.examples += r.examples;
      },
    );
    this.evalTotals = { correct: 0, lossSum: 0, examples: 0 };
    this.evalRound = round;
    await this.startRound(round, Uint32Array.from({ length: n }, (_, i) => i));
    this.evalRound = null;
    this.deadlines.clearAll();
    const t = this.evalTotals;
    return { correct: t.correct, accuracy: t.correct / t.examples, loss: t.lossSum / t.examples, count: t.examples };
  }

  onEvalDone(workerId: string, msg: EvalDone): void {
    const task = this.evalRound?.outstanding(workerId);
    if (!task || msg.examples !== task.indices.length) throw new WireInvalid('EvalDone that matches no assigned evaluation', 'unexpected');
    this.evalRound!.complete(workerId, msg);
    this.deadlines.answered(workerId, nextSlice(this.evalRound, workerId, 'evaluation'));
  }

  paramsChanged(): void {
    this.version++;
  }

  private async startRound<R>(round: Round<R>, indices: Uint32Array, epochs?: Uint32Array): Promise<void> {
    if (this.live().length === 0) await this.waitForWorkers(1);
    const live = this.live();
    const slices = shard(indices, live.length);
    const epochSlices = epochs ? shard(epochs, live.length) : [];
    // With fewer examples than workers, the last workers sit this round out.
    const tasks = slices.map((s, i) => ({ indices: s, epochs: epochSlices[i] })).filter((t) => t.indices.length > 0);
    round.start(live, tasks);
    await round.done;
  }

  finish(reason: string): void {
    this.finished = true;
    for (const s of this.sessions.values()) {
      if (!s.alive) continue;
      void s.send({ kind: { $case: 'finish', value: { reason } } }).then(() => s.end());
    }
  }
}


function allFinite(values: Float32Array): boolean {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return false;
  return true;
}

/**
 * Where a step's time went, from the coordinator's clock and the workers'
 * reported compute times: broadcast (until every assignment was written),
 * compute and upload (slowest worker), wait_slowest (first to last result).
 */
class StepTimer {
  private readonly start = performance.now();
  private lastDispatch = this.start;
  private readonly dispatchedAt = new Map<string, number>();
  private readonly finished: { at: number; upload: number; compute: number }[] = [];

  dispatched(worker: string): void {
    this.lastDispatch = performance.now();
    this.dispatchedAt.set(worker, this.lastDispatch);
  }

  done(worker: string, computeSeconds: number): void {
    const at = performance.now();
    const since = (at - (this.dispatchedAt.get(worker) ?? this.start)) / 1000;
    this.finished.push({ at, compute: computeSeconds, upload: Math.max(0, since - computeSeconds) });
  }

  phases(): Partial<Record<Phase, number>> {
    const f = this.finished;
    if (f.length === 0) return {};
    return {
      broadcast: (this.lastDispatch - this.start) / 1000,
      compute: Math.max(...f.map((x) => x.compute)),
      upload: Math.max(...f.map((x) => x.upload)),
      wait_slowest: (Math.max(...f.map((x) => x.at)) - Math.min(...f.map((x) => x.at))) / 1000,
    };
  }
}

/** The slice `worker` still holds in `round` after answering one, if any. */
function nextSlice<R>(round: Round<R> | null, worker: string, kind: SliceKind): Slice | undefined {
  const task = round?.outstanding(worker);
  return task && { kind, examples: task.indices.length, joining: false };
}
