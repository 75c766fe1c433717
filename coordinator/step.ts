// One synchronous data-parallel training step across the fleet, top to bottom:
//
//   1. shard the global batch over the live workers (sizes differ by at most one);
//   2. hand each worker its slice, bringing it up to date first (sync.ts);
//   3. wait for a gradient for every slice: a worker that is lost or misses
//      its slice deadline has its slices handed to the others within this
//      step (the failure policy is written in round.ts);
//   4. check each gradient as it arrives, and its StepDone; fold each
//      accepted gradient into the step's mean and record its examples in the
//      ledger;
//   5. close the mean. The training loop (core/train/loop.ts, shared with
//      `tunefleet train`) then applies the per-layer-LR SGD update.
//
// Where the gradients go and how the mean is closed is the GradientSink's
// (gradient-sink.ts): the coordinator's own mean, or the parameter shards',
// which apply the update themselves. With shards a worker's upload is
// complete when every shard has reported it; either way its StepDone claims
// it, in order.
//
// Every message a worker sends for the step is checked before it changes any
// state; a bad one throws WireInvalid, which ends that worker's session
// (server.ts) and so reassigns its slice. A NaN/Inf gradient or loss is
// blamed on the worker the first time; when the same slice is non-finite a
// second time (on another worker, or the same one rejoined) it is the model,
// not the worker: the step fails with JobDiverged, and with it the job, rather
// than striking every worker in turn and waiting forever. No transport and no timers here:
// workers are reached through the Fleet, time comes from a Clock.
import { JobDiverged, WireInvalid } from '../core/errors';
import { Metrics, Phase } from '../core/observe/metrics';
import { Ledger } from '../core/train/ledger';
import { NormHistory, SpikeGuardConfig, sumOfSquares } from '../core/train/spike-guard';
import { Tensors } from '../core/util/tensors';
import { ParamSpec } from '../core/model/params';
import { FrameHeader } from '../core/wire/frames';
import { CoordinatorMessage, StepDone, TensorChunk } from '../proto/gen/tunefleet/v1/tunefleet';
import { Clock } from './clock';
import { GradientSink } from './gradient-sink';
import { Round, Task } from './round';
import { WorkerSession } from './session';
import { SliceKind } from './slice-deadline';
import { StepTimer } from './step-timer';
import { Traffic } from './sync';

/** What a round needs of the fleet (cluster.ts). */
export interface Fleet {
  /** Shard `indices` (with their `epochs`) over the live workers, start `round`, and wait until every slice has a result. */
  distribute<R>(round: Round<R>, indices: Uint32Array, epochs?: Uint32Array): Promise<void>;
  /** Bring worker `w` up to date, send it `assignment` for `task`, and start the slice's deadline. */
  handOut<R>(w: string, round: Round<R>, task: Task, kind: SliceKind, assignment: CoordinatorMessage['kind']): Promise<void>;
  /** `w` answered its oldest slice of `round`: stop that slice's deadline (and start the next one's). */
  answered<R>(w: string, round: Round<R>, kind: SliceKind): void;
  session(w: string): WorkerSession;
  live(): string[];
}

/** A worker's answer for one slice: its StepDone and the upload it claims. */
interface Answer {
  done: StepDone;
  grads: Tensors;
}

export interface StepResult {
  loss: number;
  /** The mean gradient (empty with shards: it stays on them). */
  grads: Tensors;
  /** With shards: Σ g² of the mean, added up over the shards. */
  squares?: number;
  phases: Partial<Record<Phase, number>>;
}

/** What a step reads besides the fleet and its sink. */
export interface StepDeps {
  ledger: Ledger;
  metrics: Metrics;
  clock: Clock;
  spikeGuard: SpikeGuardConfig;
  /** Trainable variables, in Welcome order: a gradient frame names one by its index. */
  trainable: ParamSpec[];
  /** cluster.shards: each StepDone carries one Σ g² per shard. */
  shardCount: number;
  /** Where the bytes received are counted (bench, tests). */
  traffic: Traffic;
}

export class Steps {
  private current: { step: number; version: number; round: Round<Answer>; nonFinite: Set<Task> } | null = null;

  /** Recent workers' gradient norms, to reject one far above its peers' (spike-guard.ts). */
  private readonly contributions: NormHistory;

  constructor(private readonly fleet: Fleet, private readonly sink: GradientSink, private readonly deps: StepDeps) {
    this.contributions = new NormHistory(deps.spikeGuard);
  }

  async run(step: number, version: number, indices: Uint32Array, epochs: Uint32Array): Promise<StepResult> {
    const timer = new StepTimer(this.deps.clock);
    const round: Round<Answer> = new Round(
      async (w, task) => {
        await this.fleet.handOut(w, round, task, 'step', { $case: 'step', value: { step, version, indices: Array.from(task.indices) } });
        timer.dispatched(w);
      },
      (w, task, answer) => {
        timer.done(w, answer.done.computeSeconds);
        this.accept(w, step, task, answer);
      },
    );
    this.current = { step, version, round, nonFinite: new Set() };
    try {
      await this.fleet.distribute(round, indices, epochs);
    } finally {
      this.current = null;
    }
    const averaging = this.deps.clock.now();
    const mean = await this.sink.close(step);
    return { ...mean, phases: { ...timer.phases(), aggregate_update: (this.deps.clock.now() - averaging) / 1000 } };
  }

  /** `w`'s slice is done: its gradient goes into the mean, its examples into the ledger. */
  private accept(w: string, step: number, task: Task, { done, grads }: Answer): void {
    this.deps.metrics.workerCompute(w, done.computeSeconds, done.examples);
    this.sink.fold(w, task.indices.length, done, grads);
    this.deps.ledger.record(step, w, task.indices, task.epochs!);
  }

  /**
   * With shards: worker `w`'s upload to one shard is complete; `index` says
   * which of w's outstanding slices it answers. Once every shard has one, it
   * answers a StepDone waiting for it (which checks its Σ g²).
   */
  shardUploaded(w: string, step: number, version: number, index: number): void {
    const current = this.current;
    const task = current?.round.outstanding(w, index);
    if (!current || !task) throw new WireInvalid('a gradient while this worker holds no slice without one', 'unexpected');
    if (step !== current.step || version !== current.version) {
      throw new WireInvalid(`a gradient for step ${step} at version ${version}; expected step ${current.step} at version ${current.version}`, 'stale');
    }
    this.answerWaiting(w);
  }

  /** StepDones of `w` that came before their uploads were complete, answered now that they are (in order). */
  private answerWaiting(w: string): void {
    const waiting = this.fleet.session(w).pendingDones;
    while (waiting.length > 0 && this.sink.ready(w) > 0) waiting.shift()!();
  }

  /** One chunk of worker `w`'s gradient for its current slice (gRPC plane). */
  onGradient(w: string, chunk: TensorChunk): void {
    if (this.fleet.session(w).dataPlane) throw new WireInvalid('a gradient chunk on the gRPC stream: this session sends tensors on its data connection', 'unexpected');
    this.uploadingTask(w);
    this.arrived(w, this.fleet.session(w).uploads.add(chunk));
    this.received(chunk.data.length, 'grpc');
  }

  /**
   * Where a gradient frame's payload from `w` goes (data plane): into its
   * open upload, after the checks a chunk gets; the frame names a trainable
   * variable by index, and its step and version must be the step's.
   */
  gradientTarget(w: string, h: FrameHeader): Uint8Array {
    const spec = this.deps.trainable[h.tensor];
    if (!spec) throw new WireInvalid(`gradient frame for tensor ${h.tensor}; there are ${this.deps.trainable.length} trainable variables`, 'unknown-name');
    this.uploadingTask(w);
    const current = this.current!;
    if (h.step !== current.step || h.version !== current.version) {
      throw new WireInvalid(`a gradient frame for step ${h.step} at version ${h.version}; expected step ${current.step} at version ${current.version}`, 'stale');
    }
    return this.fleet.session(w).uploads.destination(spec.name, h.dtype, h.offset, h.length);
  }

  /** The piece gradientTarget() placed has arrived. */
  gradientLanded(w: string, h: FrameHeader): void {
    this.arrived(w, this.fleet.session(w).uploads.landed());
    this.received(h.length, 'tcp');
  }

  private received(bytes: number, plane: 'tcp' | 'grpc'): void {
    this.deps.traffic.gradientBytes += bytes;
    this.deps.metrics.traffic('received', 'gradients', bytes, plane);
  }

  /** The slice `w`'s open upload is for: the first outstanding one no sealed upload answers yet. */
  private uploadingTask(w: string): Task {
    const task = this.current?.round.outstanding(w, this.fleet.session(w).uploads.ready);
    if (!task) throw new WireInvalid('a gradient while this worker holds no slice without one', 'unexpected');
    return task;
  }

  /**
   * A piece of `w`'s open upload is in place; `completed` names the tensor it
   * completed. A complete tensor is checked at once; a complete upload is
   * sealed for its StepDone, and answers one that came first. It is folded
   * into the mean only when its StepDone is accepted: taking a refused
   * contribution back out of a float sum is not exact (a poisoned 3e38 would
   * wipe out the honest sum it was added to).
   */
  private arrived(w: string, completed: string | null): void {
    if (!completed) return;
    const uploads = this.fleet.session(w).uploads;
    // One pass over the finished tensor: NaN/Inf anywhere makes the sum non-finite; otherwise it is this upload's squared norm so far.
    const squares = sumOfSquares(uploads.tensor(completed));
    if (!Number.isFinite(squares)) this.nonFinite(this.uploadingTask(w), `${completed}: gradient holds NaN or Inf`);
    uploads.addSquares(squares);
    if (uploads.sealIfComplete()) this.answerWaiting(w);
  }

  /** Worker `w` says its gradient for its oldest slice is complete (on the data plane, its last frames may still be on their way). */
  onStepDone(w: string, msg: StepDone): void {
    const current = this.current;
    const session = this.fleet.session(w);
    // The slice it answers: the oldest, unless earlier StepDones still wait for their uploads.
    const task = current?.round.outstanding(w, session.pendingDones.length);
    if (!current || !task) throw new WireInvalid(`StepDone for step ${msg.step} while no step is assigned to this worker`, 'unexpected');
    if (msg.step !== current.step || msg.version !== current.version) {
      throw new WireInvalid(`StepDone for step ${msg.step} at version ${msg.version}; expected step ${current.step} at version ${current.version}`, 'stale');
    }
    if (!Number.isFinite(msg.loss)) this.nonFinite(task, `StepDone reports loss ${msg.loss}`);
    if (!(Number.isFinite(msg.computeSeconds) && msg.computeSeconds >= 0)) throw new WireInvalid(`StepDone reports compute_seconds ${msg.computeSeconds}`, 'non-finite');
    if (msg.examples !== task.indices.length) throw new WireInvalid(`StepDone reports ${msg.examples} examples for a slice of ${task.indices.length}`, 'examples');
    const shards = this.deps.shardCount;
    if (msg.shardSquares.length !== shards) throw new WireInvalid(`StepDone carries Σ g² for ${msg.shardSquares.length} shards; the job has ${shards}`, 'incomplete');
    const finish = () => {
      const claim = this.sink.claim(w, msg);
      if (!claim) return; // a shard reported another sum than the worker sent: it is lost, the round aborts
      try {
        if (!Number.isFinite(claim.squares)) this.nonFinite(task, 'gradient holds NaN or Inf');
        this.checkNotOutlier(Math.sqrt(claim.squares));
        current.round.complete(w, { done: msg, grads: claim.grads });
      } finally {
        claim.release();
      }
      this.fleet.answered(w, current.round, 'step');
    };
    if (this.sink.ready(w) > 0) return finish();
    if (!session.dataPlane) throw new WireInvalid('StepDone before every trainable gradient arrived', 'incomplete');
    session.pendingDones.push(finish); // its frames are on another connection, not ordered with this stream: wait for them
  }

  /**
   * With three or more live workers the others outvote one bad gradient: one
   * whose norm is far above recent workers' is refused. With fewer, the
   * step's own guard (core/train/loop.ts) has to catch it.
   */
  private checkNotOutlier(norm: number): void {
    if (!this.contributions.on || this.fleet.live().length < 3) return;
    const { spike, median } = this.contributions.judge(norm);
    if (spike) throw new WireInvalid(`gradient norm ${norm.toPrecision(3)} is far above the recent median of ${median.toPrecision(3)}`, 'outlier');
  }

  /** A slice's gradient or loss is NaN/Inf: the worker's fault the first time, the model's the second (see the header). */
  private nonFinite(task: Task, what: string): never {
    const current = this.current!;
    if (!current.nonFinite.has(task)) {
      current.nonFinite.add(task);
      throw new WireInvalid(what, 'non-finite');
    }
    const diverged = new JobDiverged(`step ${current.step}: ${what} for the same ${task.indices.length} examples twice: the model has diverged. ` +
      'Lower optimizer.lr (or the head\'s lrMult), add warmup, or resume from an earlier checkpoint');
    current.round.abort(diverged);
    throw diverged;
  }
}
