// The fleet of workers as the training loop sees it: a Compute whose
// gradients and evaluations are rounds of slices handed to live workers —
// training steps in step.ts, evaluations in evaluation.ts, the failure policy
// in round.ts. This module owns membership: joining (ids, strikes against
// misbehaving ids), dropping (a bad message, a missed slice deadline) and
// leaving; every round in progress hears of each, so it can reassign. No
// transport here: a worker is reached through its session's Channel, which
// server.ts makes from a gRPC stream (the unit tests, from an array).
import type * as tf from '@tensorflow/tfjs';
import { randomBytes } from 'node:crypto';
import { ConnectionLost, DeadlineExceeded, endedBecause, JobFailed, rejectReason, ShardLost, WireInvalid, WorkerRefused } from '../core/errors';
import { JobSetup } from '../core/job/setup';
import { logger } from '../core/observe/log';
import { ParamSpec } from '../core/model/params';
import { Metrics } from '../core/observe/metrics';
import { EvalResult } from '../core/train/gradients';
import { Ledger, LedgerEntry } from '../core/train/ledger';
import { Compute, RemoteUpdate } from '../core/train/loop';
import { shard } from '../core/train/sampler';
import { redactJob } from '../core/util/redact';
import { CoordinatorMessage, DType, Join, ShardTrouble, Split, Welcome } from '../proto/gen/tunefleet/v1/tunefleet';
import { GradientAverager } from '../core/train/aggregator';
import { Clock, systemClock } from './clock';
import { DataPlaneHost, Tickets } from '../core/wire/data-plane';
import { Evaluations } from './evaluation';
import { Round, Task } from './round';
import { ShardHost, ShardSet } from './shard-set';
import { Channel, WorkerSession } from './session';
import { Deadlines, SliceKind } from './slice-deadline';
import { StatusBoard } from './status';
import { Fleet, Steps } from './step';
import { LocalMean, ShardedMean } from './gradient-sink';
import { Traffic, WorkerSync } from './sync';

const log = logger('coordinator');

/** Struck worker ids remembered at most (the most recently struck). */
const MAX_STRUCK_IDS = 10_000;
const JOIN_FIELD = /^[A-Za-z0-9._:@/-]*$/;

/** A Join's strings end up in logs and metric labels: bound them. An empty worker id asks for one. */
function checkJoin(msg: Join): void {
  const fields: [string, string, number][] = [['worker id', msg.workerId, 128], ['backend', msg.backend, 64], ['device', msg.device, 256]];
  for (const [what, value, max] of fields) {
    if (value.length > max || !JOIN_FIELD.test(value)) throw new WireInvalid(`${what} of ${value.length} characters: at most ${max}, only [A-Za-z0-9._:@/-]`, 'bad-join');
  }
}

/** What the fleet needs of a job (a JobSetup has it all; unit tests build one by hand). */
export type FleetJob = Pick<JobSetup, 'cfg' | 'data' | 'specs' | 'trainable' | 'multipliers' | 'params' | 'sgd' | 'startIteration' | 'ledger' | 'events' | 'metrics' | 'statistics'> & {
  model: Pick<tf.LayersModel, 'toJSON'>;
};

/** What a round in progress must hear about membership (and a lost shard). */
type Listening = Pick<Round<unknown>, 'workerJoined' | 'workerLost' | 'abort'>;

export class Cluster implements Compute, Fleet, ShardHost {
  readonly sessions = new Map<string, WorkerSession>();
  /** Data-plane tickets of the sessions that have not opened their data connection yet. */
  readonly tickets = new Tickets();
  readonly ledger: Ledger;
  /** What `tunefleet status` shows. */
  readonly status: StatusBoard;
  private readonly sync: WorkerSync;
  /** Step and evaluation messages go to these straight from server.ts and the data plane. */
  readonly steps: Steps;
  readonly evaluations: Evaluations;
  private readonly deadlines: Deadlines;
  private readonly rounds = new Set<Listening>();
  private readonly joinWaiters: (() => void)[] = [];
  private readonly strikes = new Map<string, number>();
  private readonly localData: boolean;
  private readonly trainable: ParamSpec[];
  private welcome: Welcome | null = null;
  /** The data plane's port once it listens; null: tensors travel on the gRPC streams. */
  private dataPort: number | null = null;
  private readonly clock: Clock;
  private version = 0;
  private finished = false;
  /** The parameter shards (cluster.shards > 0); null: this coordinator holds the parameters. */
  readonly shards: ShardSet | null;
  /** Set from a shard's loss until the job has gone back to its checkpoint (rewind). */
  private shardLoss: ShardLost | null = null;
  /** With shards: they apply the step and serve the result as the next version. */
  readonly remoteUpdate: RemoteUpdate | null;

  constructor(private readonly job: FleetJob, opts: { localData: boolean; clock?: Clock }) {
    const clock = (this.clock = opts.clock ?? systemClock);
    const trainable = (this.trainable = job.specs.filter((s) => job.trainable.includes(s.name)));
    this.localData = opts.localData;
    this.ledger = new Ledger(job.data.train.labels.length, job.ledger);
    this.status = new StatusBoard(job.cfg.name, clock, { iterations: job.cfg.train.iterations, startIteration: job.startIteration }, () => this.shards?.status() ?? []);
    job.events.subscribe(this.status.onEvent);
    this.sync = new WorkerSync(job.params, { all: job.specs, trainable }, opts.localData ? null : job.data, job.metrics);
    const shards = (this.shards = job.cfg.cluster.shards > 0 ? new ShardSet(job, this, job.events, () => this.version) : null);
    this.remoteUpdate = shards && {
      apply: (lr) => shards.apply(++this.version, lr),
      gather: (params, velocity) => shards.gather(params, velocity),
    };
    const sink = shards ? new ShardedMean(shards) : new LocalMean(new GradientAverager(trainable), (w) => this.session(w));
    this.steps = new Steps(this, sink, { ledger: this.ledger, metrics: job.metrics, clock, spikeGuard: job.cfg.train.spikeGuard, trainable, shardCount: job.cfg.cluster.shards, traffic: this.sync.traffic });
    this.evaluations = new Evaluations(this, job.statistics.indices);
    this.deadlines = new Deadlines(job.cfg.cluster.sliceDeadline, (w, seconds, kind) =>
      this.late(w, new DeadlineExceeded(`no result within the ${kind} deadline of ${seconds.toFixed(1)} s`)), clock);
  }

  /** Tensors go on the data plane at `port` from now on (runCoordinator, before any worker joins). */
  useDataPlane(port: number): void {
    this.dataPort = port;
  }

  /** The data port Welcomes name; null: tensors travel on the gRPC streams. */
  get dataPlanePort(): number | null {
    return this.dataPort;
  }

  get gradientDtype(): DType {
    return this.job.cfg.cluster.gradientDtype === 'float16' ? DType.FLOAT16 : DType.FLOAT32;
  }

  get metrics(): Metrics {
    return this.job.metrics;
  }

  get stallSeconds(): number {
    return this.job.cfg.cluster.stallSeconds;
  }

  get traffic(): Traffic {
    return this.sync.traffic;
  }

  /** The live workers (a session leaves the map when it ends). */
  live(): string[] {
    return [...this.sessions.keys()];
  }

  session(id: string): WorkerSession {
    return this.sessions.get(id)!;
  }

  // ---- membership -------------------------------------------------------

  /** A worker's first message: open its session on `channel` and welcome it. */
  join(msg: Join, channel: Channel): WorkerSession {
    if (this.finished) throw new JobFailed('the job has finished');
    checkJoin(msg);
    const id = msg.workerId || this.newId();
    if (this.sessions.get(id)?.alive) throw new WireInvalid(`worker id ${id} is already live`, 'duplicate-id');
    const strikes = this.strikes.get(id) ?? 0;
    if (strikes >= this.job.cfg.cluster.maxRejections) throw new WorkerRefused(`worker id ${id} sent bad messages in ${strikes} sessions; it is refused for the rest of the job`);
    const { data } = this.job;
    // float16 jobs also take float32: a worker sends a tensor that would overflow float16 as float32.
    const dtypes = this.gradientDtype === DType.FLOAT16 ? [DType.FLOAT16, DType.FLOAT32] : [DType.FLOAT32];
    const sizes = { train: data.train.labels.length, val: data.val.labels.length };
    // With shards, tensors travel only between workers and shards: no data connection to this coordinator.
    const session = new WorkerSession(id, msg.backend, channel, this.trainable, dtypes, sizes, this.dataPort !== null || this.shards !== null);
    this.sessions.set(id, session);
    this.status.joined(id, msg.backend, msg.device);
    const ticket = this.dataPort === null ? new Uint8Array(0) : this.awaitDataConnection(session);
    const welcome = this.shards
      ? this.shards.expect(id, () => session.alive).then((shards) => ({ ...this.welcomeFor(id, ticket), shards, partitionBytes: this.shards!.partitionBytes }))
      : this.welcomeFor(id, ticket);
    session.send(Promise.resolve(welcome).then((value) => ({ kind: { $case: 'welcome' as const, value } }))).catch((err) => this.drop(id, err));
    log.info('worker joined', { worker: id, backend: msg.backend, device: msg.device, live: this.live().length });
    this.job.events.emit({ type: 'worker.joined', worker: id, backend: msg.backend, live: this.live().length });
    for (const round of this.rounds) round.workerJoined(id);
    for (const wake of this.joinWaiters.splice(0)) wake();
    return session;
  }

  /**
   * End a worker's session because of `err`. A refused message is counted
   * by its reason (a missed deadline is not a message); one the worker got
   * wrong (WireInvalid) also counts against its id, refused at
   * cluster.maxRejections.
   */
  drop(id: string, err: Error): void {
    const reason = rejectReason(err);
    if (reason) this.job.metrics.rejected(reason);
    if (err instanceof WireInvalid) this.strike(id);
    const s = this.sessions.get(id);
    if (!s?.alive) return;
    log.warn('worker dropped', { worker: id, details: endedBecause(err) });
    this.leave(id, endedBecause(err));
    s.fail(err);
  }

  /**
   * `id` missed its slice deadline. With shards it may be late because a
   * shard stopped taking its gradient or serving its parameters, so it is
   * dropped only once every shard has answered a Ping sent now; a shard that
   * does not is lost instead (the round stops, nobody is struck).
   */
  private late(id: string, err: DeadlineExceeded): void {
    if (!this.shards) return this.drop(id, err);
    const s = this.sessions.get(id);
    void this.shards.probe().then((answered) => { if (answered && s?.alive && this.sessions.get(id) === s) this.drop(id, err); });
  }

  /**
   * The session ends; it is forgotten (its buffers freed, its data
   * connection closed), and its outstanding slices go to others. `graceful`:
   * the worker said it was leaving (Leave) — a `worker.left`, not a loss.
   */
  leave(id: string, reason: string, graceful = false): void {
    const s = this.sessions.get(id);
    if (!s || !s.alive) return;
    s.alive = false;
    s.release();
    this.tickets.forget(s);
    this.shards?.forget(id);
    this.sessions.delete(id);
    this.status.left(id);
    this.deadlines.clear(id);
    const type = this.finished || graceful ? 'worker.left' : 'worker.lost';
    log.info(type.replace('.', ' '), { worker: id, reason, live: this.live().length });
    this.job.events.emit({ type, worker: id, reason, live: this.live().length });
    for (const round of this.rounds) round.workerLost(id, this.live());
  }

  async waitForWorkers(n: number): Promise<void> {
    while (this.live().length < n) {
      log.info('waiting for workers', { live: this.live().length, needed: n });
      await new Promise<void>((r) => this.joinWaiters.push(r));
    }
  }

  /** An id no one can guess, so hostile sessions cannot run up strikes against the id an honest worker will get. */
  private newId(): string {
    for (;;) {
      const id = `worker-${randomBytes(6).toString('hex')}`;
      if (!this.sessions.has(id) && !this.strikes.has(id)) return id;
    }
  }

  /** One more rejected session for `id`. The oldest entries go past MAX_STRUCK_IDS, so a flood of made-up ids cannot grow it without bound. */
  private strike(id: string): void {
    const n = (this.strikes.get(id) ?? 0) + 1;
    this.strikes.delete(id); // re-inserted last: the Map's order is by most recent strike
    this.strikes.set(id, n);
    if (this.strikes.size > MAX_STRUCK_IDS) this.strikes.delete(this.strikes.keys().next().value!);
  }

  /** A ticket for `s`'s data connection; a session that has not opened it within the join timeout is dropped. */
  private awaitDataConnection(s: WorkerSession): Uint8Array {
    const seconds = this.job.cfg.cluster.joinTimeoutSeconds;
    const cancel = this.clock.after(seconds * 1000, () => {
      if (!s.attached) this.drop(s.id, new ConnectionLost(`no data connection within ${seconds} s: can the worker reach port ${this.dataPort} (cluster.dataPort)?`));
    });
    void s.linked().then(cancel);
    return this.tickets.issue(s);
  }

  /** The Welcome every worker gets, but for its id and data plane: the rest is the same for the whole job, so built once. */
  private welcomeFor(workerId: string, dataTicket: Uint8Array): Welcome {
    if (!this.welcome) {
      const { cfg, data, model, trainable, statistics } = this.job;
      this.welcome = {
        workerId: '', job: cfg.name,
        modelTopologyJson: JSON.stringify(model.toJSON(null, false)),
        trainable,
        exampleShape: data.train.shape,
        normMean: data.norm.mean, normStd: data.norm.std,
        trainSize: data.train.labels.length, valSize: data.val.labels.length,
        localData: this.localData,
        jobConfigJson: JSON.stringify(redactJob(cfg)), // workers need its data section, never its credentials
        gradientDtype: this.gradientDtype,
        dataPort: 0,
        dataTicket: new Uint8Array(0),
        shards: [],
        partitionBytes: 0,
        frozenStatistics: statistics.frozen,
      };
    }
    return { ...this.welcome, workerId, dataPort: this.dataPort ?? 0, dataTicket };
  }

  // ---- Fleet: what a round needs ---------------------------------------------

  async distribute<R>(round: Round<R>, indices: Uint32Array, epochs?: Uint32Array): Promise<void> {
    if (this.shardLoss) throw this.shardLoss;
    if (this.live().length === 0) await this.waitForWorkers(1);
    const live = this.live();
    const slices = shard(indices, live.length);
    const epochSlices = epochs ? shard(epochs, live.length) : [];
    // With fewer examples than workers, the last workers sit this round out.
    const tasks = slices.map((s, i) => ({ indices: s, epochs: epochSlices[i] })).filter((t) => t.indices.length > 0);
    this.rounds.add(round);
    try {
      round.start(live, tasks);
      await round.done;
    } finally {
      this.rounds.delete(round);
      this.deadlines.clearAll();
    }
  }

  handOut<R>(w: string, round: Round<R>, task: Task, kind: SliceKind, assignment: CoordinatorMessage['kind']): Promise<void> {
    const s = this.session(w);
    return s.serially(async () => {
      const joining = s.version < 0;
      if (this.shards) s.version = this.version; // the shards serve it the parameters; it waits for them before computing
      else await this.sync.sendParams(s, this.version);
      if (kind === 'evaluation') await this.sync.sendExamples(s, Split.TRAIN, this.job.statistics.indices); // BatchNorm's (core/model/batch-norm.ts)
      await this.sync.sendExamples(s, kind === 'step' ? Split.TRAIN : Split.VALIDATION, task.indices);
      await s.send({ kind: assignment });
      // An evaluation slice's worker first estimates BatchNorm statistics over their examples: its deadline counts them too.
      const examples = task.indices.length + (kind === 'evaluation' ? this.job.statistics.indices.length : 0);
      if (s.alive && round.outstanding(w)) this.deadlines.arm(w, { kind, examples, joining });
    }).catch((err) => this.drop(w, err)); // its data connection closed mid-send: the session is over
  }

  answered<R>(w: string, round: Round<R>, kind: SliceKind): void {
    const next = round.outstanding(w);
    const took = this.deadlines.answered(w, next && { kind, examples: next.indices.length, joining: false });
    if (took?.kind === 'step') this.status.sliceDone(w, took.seconds, took.examples);
  }

  /** What the coordinator's data plane calls: tickets and drops are membership's, gradient frames go straight to the step. */
  get dataPlaneHost(): DataPlaneHost {
    return {
      tickets: this.tickets, metrics: this.metrics, stallSeconds: this.stallSeconds,
      drop: (w, err) => this.drop(w, err),
      gradientTarget: (w, h) => this.steps.gradientTarget(w, h),
      gradientLanded: (w, h) => this.steps.gradientLanded(w, h),
    };
  }

  // ---- Compute: what the training loop needs ---------------------------------

  gradients(step: number, indices: Uint32Array, epochs: Uint32Array) {
    this.status.stepping(step);
    return this.steps.run(step, this.version, indices, epochs);
  }

  evaluate(): Promise<EvalResult> {
    return this.evaluations.run(this.version, this.job.data.val.labels.length);
  }

  paramsChanged(): void {
    this.version++;
  }

  // ---- ShardHost: what the shards report --------------------------------------

  uploaded(w: string, step: number, version: number, index: number): void {
    if (!this.sessions.get(w)?.alive) return; // its session ended while the report was on its way
    try {
      this.steps.shardUploaded(w, step, version, index);
    } catch (err) {
      this.drop(w, err as Error);
    }
  }

  /** Worker `w` says its connection to a shard stalled: the shard set judges the shard (shard-set.ts). */
  onShardTrouble(w: string, msg: ShardTrouble): void {
    if (!this.shards) throw new WireInvalid('a ShardTrouble in a job without shards', 'unexpected');
    this.shards.troubled(msg.slot, w, msg.details, this.live().length);
  }

  workerLost(w: string, err: WireInvalid | ConnectionLost): void {
    if (this.sessions.get(w)?.alive) this.drop(w, err);
  }

  /** Nothing can step until every slot is taken again: stop the rounds in progress; the coordinator rewinds. */
  shardLost(err: ShardLost): void {
    if (this.finished) return;
    this.shardLoss ??= err;
    for (const round of this.rounds) round.abort(err);
  }

  /**
   * Go back to a checkpoint after a shard was lost: every worker session ends
   * (they join again, and connect to the shards of the new Welcome), the
   * shards are waited for, `restore` puts the job's state back, and every
   * shard is loaded afresh with it at a version never used before.
   */
  async rewind(lost: ShardLost, restore: () => Promise<void>): Promise<void> {
    this.shardLoss = null; // one lost while this rewind waits is caught by the next step, which rewinds again
    this.shards!.beginRewind();
    for (const id of this.live()) this.drop(id, new ConnectionLost(`${lost.message}; the job goes back to its last checkpoint: join again`));
    await this.shards!.allJoined();
    await restore();
    this.ledger.restore(this.job.ledger);
    this.version++;
    this.shards!.reload();
  }

  liveWorkers(): number {
    return this.live().length;
  }

  ledgerEntries(): LedgerEntry[] {
    return this.ledger.snapshot();
  }

  /** The coordinator stops before the job is over: every session ends with `err` (workers join again, with backoff). */
  stop(err: ConnectionLost): void {
    this.finished = true;
    for (const s of this.sessions.values()) if (s.alive) s.fail(err);
  }

  finish(reason: string): void {
    this.finished = true;
    for (const s of this.sessions.values()) {
      if (!s.alive) continue;
      void s.send({ kind: { $case: 'finish', value: { reason } } }).then(() => s.end());
    }
  }
}
