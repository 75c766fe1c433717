// The parameter shards as the coordinator sees them (cluster.shards = k > 0;
// docs/distributed.md). The coordinator keeps the control plane — who is in
// a step, which uploads are accepted and in what order, the learning rate,
// checkpoints — and the shards keep the parameters: each holds slot i of the
// layout (core/train/partition.ts), takes the workers' gradients for its
// pieces and applies the step to them.
//
// Failure policy: a shard whose stream ends is lost, and so is one that does
// not answer a request — Expect, Average, Snapshot, or the Ping sent every
// third of cluster.shardDeadlineSeconds — within that deadline (a SIGSTOPped,
// hung or partitioned shard keeps its stream open). Its slot is free for the
// next shard to join; until every slot is taken again nothing can step, so
// the cluster aborts the round in progress (ShardLost) and the job goes back
// to its last checkpoint (coordinator.ts) — every shard is loaded afresh from
// it, exactly as a restarted coordinator resumes.
//
// A shard's numbers are checked against the workers': each StepDone says
// what Σ g² the worker sent each shard (it computed those bytes), and a shard
// whose Uploaded disagrees, or whose Averaged exceeds the bound its folded
// uploads allow (‖Σ wᵢgᵢ‖² ≤ Σ wᵢ‖gᵢ‖² for weights summing to 1), is dropped
// as the faulty peer: it is lost as above, and no worker is struck or the job
// taken for diverged. No transport here: server.ts turns a Shards stream
// into a ShardChannel.
import { randomBytes } from 'node:crypto';
import { ConnectionLost, DeadlineExceeded, JobFailed, REJECT_REASONS, RejectReason, ShardLost, WireInvalid } from '../core/errors';
import { logger } from '../core/observe/log';
import { EventBus } from '../core/observe/events';
import { Tensors } from '../core/util/tensors';
import { Layout, partition, pieceName, pieceViews } from '../core/train/partition';
import { product } from '../core/util/numbers';
import { redactJob } from '../core/util/redact';
import { chunksOf, TensorAssembler } from '../core/wire/tensors';
import { TICKET_BYTES } from '../core/wire/frames';
import { ShardCommand, ShardEndpoint, ShardJoin, ShardMessage, ShardStatus } from '../proto/gen/tunefleet/v1/tunefleet';
import { JobSetup } from '../core/job/setup';
import { partitionBytesOf } from '../core/job/config';
import { Clock, systemClock } from './clock';

const log = logger('shards');
const DATA_HOST = /^[A-Za-z0-9.:-]{0,253}$/;

export interface ShardChannel {
  write(cmd: ShardCommand): Promise<void>;
  /** End the stream because of `err` (the shard sees it as a status, and joins again). */
  fail(err: Error): void;
  /** The job is over: close the stream (the shard exits). */
  end(): void;
}

/** How far above the bound of its folded uploads an honest shard's Averaged Σ g² can be: its mean is rounded to float32. */
const MEAN_SLACK = 1e-6;

/** Do a worker's Σ g² and a shard's report of it agree (the same float64 sums in the same order, so equal; the slack is for rounding)? */
function agree(claimed: number, reported: number): boolean {
  if (!Number.isFinite(claimed) || !Number.isFinite(reported)) return Object.is(claimed, reported); // NaN is NaN, ∞ is ∞
  return Math.abs(claimed - reported) <= 1e-9 * Math.max(Math.abs(claimed), Math.abs(reported));
}

/** What the shard set tells the cluster. */
export interface ShardHost {
  /** Worker `w`'s gradient for one shard's pieces is complete; `index`: how many of w's uploads that shard already had waiting. */
  uploaded(w: string, step: number, version: number, index: number): void;
  /** A shard refused (WireInvalid) or lost (ConnectionLost) a worker's data connection. */
  workerLost(w: string, err: WireInvalid | ConnectionLost): void;
  shardLost(err: ShardLost): void;
}

type Waiter<T> = { resolve: (v: T) => void; reject: (err: Error) => void };

/** One shard's session. */
export class ShardPeer {
  alive = true;
  private sending: Promise<void> = Promise.resolve();
  readonly expecting = new Map<string, Waiter<void>>();
  averaged: Waiter<number> | null = null;
  snapshot: { params: TensorAssembler; velocity: TensorAssembler; done: Waiter<void> } | null = null;

  /** Pings waiting for their Pong, by sequence number. */
  readonly pings = new Map<number, Waiter<void>>();
  /** When its last message came (clock ms). */
  lastHeard = 0;
  /** Workers whose connection to this shard stalled (ShardTrouble), with when they said so and how. */
  readonly troubles = new Map<string, { at: number; details: string }>();
  lastPing = 0;

  /** `failed`: a write that could not be made (the stream stalled: cluster.stallSeconds). */
  constructor(readonly slot: number, readonly endpoint: { host: string; port: number }, readonly channel: ShardChannel, private readonly failed: (err: Error) => void) {}

  /** Queue `cmd`; resolves once it has been written (commands go out in call order). */
  send(cmd: ShardCommand): Promise<void> {
    this.sending = this.sending.then(() => (this.alive ? this.channel.write(cmd) : undefined)).catch((err) => this.failed(err));
    return this.sending;
  }

  end(): void {
    void this.sending.then(() => this.channel.end());
  }

  /** Every request in flight fails with `err`. */
  failPending(err: Error): void {
    for (const w of this.expecting.values()) w.reject(err);
    this.expecting.clear();
    this.averaged?.reject(err);
    this.averaged = null;
    this.snapshot?.done.reject(err);
    this.snapshot = null;
    for (const p of this.pings.values()) p.reject(err);
    this.pings.clear();
  }
}

export class ShardSet {
  private readonly slots: (ShardPeer | null)[];
  readonly layout: Layout;
  /** Slots holding trainable pieces: where workers send gradients, and which fold and average. */
  private readonly gradientSlots: number[];
  /** Per worker, per slot: Σ g² of each complete upload not yet claimed by a StepDone, oldest first. */
  private readonly queues = new Map<string, number[][]>();
  /** This step's folded uploads: their examples, Σ examples × loss, and per slot Σ examples × Σ g² (what bounds each shard's Averaged). */
  private folded = { examples: 0, loss: 0, bound: [] as number[] };
  /**
   * Each worker's current session, as numbered in its Expect. A worker that
   * joins again gets a new number, so a shard's late report about its
   * previous session (sent before the shard heard of the Forget) is ignored.
   */
  private readonly sessions = new Map<string, number>();
  private lastSession = 0;
  /** Waiting for every slot to be taken; for that and the shards loaded (not rewinding). */
  private readonly joinWaiters: (() => void)[] = [];
  private readonly readyWaiters: (() => void)[] = [];
  /** Set while the job goes back to a checkpoint: shards that join then are loaded by reload(). */
  private rewinding = false;
  private finished = false;

  constructor(
    private readonly job: Pick<JobSetup, 'cfg' | 'specs' | 'trainable' | 'multipliers' | 'params' | 'sgd'>,
    private readonly host: ShardHost,
    private readonly events: EventBus,
    private readonly version: () => number,
    private readonly clock: Clock = systemClock,
  ) {
    const k = job.cfg.cluster.shards;
    this.slots = new Array(k).fill(null);
    this.layout = partition(job.specs.map((s) => product(s.shape)), k, partitionBytesOf(job.cfg));
    const trainable = new Set(job.trainable);
    this.gradientSlots = this.layout.flatMap((pieces, slot) => (pieces.some((p) => trainable.has(job.specs[p.variable].name)) ? [slot] : []));
    this.resetFolded();
  }

  /** Every slot as `tunefleet status` shows it. */
  status(): ShardStatus[] {
    return this.slots.map((peer, slot) => ({
      slot, live: peer !== null,
      address: peer ? `${peer.endpoint.host}:${peer.endpoint.port}` : '',
      parameterBytes: 4 * this.layout[slot].reduce((a, p) => a + p.count, 0),
      secondsSinceHeard: peer ? (this.clock.now() - peer.lastHeard) / 1000 : 0,
    }));
  }

  /** How many shards the job has (cluster.shards): a StepDone's shard_squares has one sum per slot. */
  get count(): number {
    return this.slots.length;
  }

  get live(): number {
    return this.slots.filter(Boolean).length;
  }

  get partitionBytes(): number {
    return partitionBytesOf(this.job.cfg);
  }

  /** A shard joined from `peerHost`: it takes the first free slot and is loaded with the current state. */
  join(msg: ShardJoin, peerHost: string, channel: ShardChannel): ShardPeer {
    const slot = this.slots.indexOf(null);
    if (slot < 0) throw new JobFailed(`the job already has its ${this.slots.length} shards (cluster.shards)`);
    if (!(msg.dataPort > 0 && msg.dataPort < 65536)) throw new WireInvalid(`a shard's data port must be 1-65535, not ${msg.dataPort}`, 'bad-join');
    // Workers dial it, and it goes into logs and events: a host name or address, nothing else.
    if (!DATA_HOST.test(msg.dataHost)) throw new WireInvalid(`a shard's data host of ${msg.dataHost.length} characters: at most 253, only [A-Za-z0-9.:-]`, 'bad-join');
    const peer: ShardPeer = new ShardPeer(slot, { host: msg.dataHost || peerHost, port: msg.dataPort }, channel, (err) => this.drop(peer, err));
    peer.lastHeard = this.clock.now(); // its Join
    this.slots[slot] = peer;
    this.keepPinging(peer);
    const address = `${peer.endpoint.host}:${peer.endpoint.port}`;
    log.info('shard joined', { shard: slot, address, live: this.live, of: this.slots.length });
    this.events.emit({ type: 'shard.joined', shard: slot, address, live: this.live });
    if (!this.rewinding) this.load(peer);
    this.wake();
    return peer;
  }

  /** The shard's stream ended. */
  left(peer: ShardPeer, reason: string): void {
    if (!peer.alive) return;
    peer.alive = false;
    this.slots[peer.slot] = null;
    if (this.finished) return; // the job is over: finish() closed it
    const err = new ShardLost(`parameter shard ${peer.slot} (${peer.endpoint.host}:${peer.endpoint.port}) was lost: ${reason}`);
    peer.failPending(err);
    log.warn('shard lost', { shard: peer.slot, reason, live: this.live });
    this.events.emit({ type: 'shard.lost', shard: peer.slot, reason, live: this.live });
    this.host.shardLost(err);
  }

  /** `peer` is at fault (no answer in time, a stream that takes no commands, a report no honest shard sends): it is lost, and its stream ended with `err` so it joins afresh. */
  private drop(peer: ShardPeer, err: Error): void {
    if (!peer.alive) return;
    this.left(peer, err.message);
    peer.channel.fail(err);
  }

  private get deadlineSeconds(): number {
    return this.job.cfg.cluster.shardDeadlineSeconds;
  }

  /** Send `cmd` to `peer`, whose answer must come within cluster.shardDeadlineSeconds; `register` keeps the waiter where its answer finds it. */
  private request<T>(peer: ShardPeer, what: string, cmd: ShardCommand, register: (w: Waiter<T>) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const seconds = this.deadlineSeconds;
      let settled = false;
      let cancel = () => {};
      register({ resolve: (v) => { settled = true; cancel(); resolve(v); }, reject: (err) => { settled = true; cancel(); reject(err); } });
      // The clock starts once the command is written, not while it waits behind others (a large model's load):
      // a stream that takes none of it is the stall bound's to find (cluster.stallSeconds).
      void peer.send(cmd).then(() => {
        if (!settled) cancel = this.clock.after(seconds * 1000, () => this.drop(peer, new DeadlineExceeded(`no answer to ${what} within ${seconds} s (cluster.shardDeadlineSeconds)`)));
      });
    });
  }

  /** Ping `peer`: resolves once it has handled every command sent before (rejects if it is lost first). */
  private ping(peer: ShardPeer): Promise<void> {
    const seq = ++peer.lastPing;
    return this.request<void>(peer, 'a Ping', { kind: { $case: 'ping', value: { seq } } }, (w) => peer.pings.set(seq, w));
  }

  /** While `peer` is live, a Ping every third of the deadline, so a shard that goes silent between requests is noticed too. */
  private keepPinging(peer: ShardPeer): void {
    const next = () => this.clock.after((this.deadlineSeconds * 1000) / 3, () => {
      if (!peer.alive || this.finished) return;
      this.ping(peer).then(next, () => {});
    });
    next();
  }

  /**
   * Worker `w` says its connection to shard `slot` stalled (ShardTrouble). A
   * shard that answers Pings but stops reading or serving its workers is
   * found only this way. It is dropped once two workers — or every live
   * worker, when fewer — have said so within cluster.shardDeadlineSeconds:
   * one worker alone may be the one whose network is bad, and then only its
   * own session ends (it joins again).
   */
  troubled(slot: number, w: string, details: string, liveWorkers: number): void {
    if (!(Number.isInteger(slot) && slot < this.slots.length)) throw new WireInvalid(`a ShardTrouble for shard ${slot}; the job has ${this.slots.length}`, 'unexpected');
    const peer = this.slots[slot];
    if (!peer) return;
    const now = this.clock.now();
    peer.troubles.set(w, { at: now, details: details.slice(0, 300) });
    for (const [id, t] of peer.troubles) if (now - t.at > this.deadlineSeconds * 1000) peer.troubles.delete(id);
    const needed = Math.min(2, Math.max(1, liveWorkers));
    log.warn('a worker reports a shard', { shard: slot, worker: w, details, reports: peer.troubles.size, needed });
    if (peer.troubles.size < needed) return;
    const who = [...peer.troubles.keys()].join(', ');
    this.drop(peer, new DeadlineExceeded(`its connections to workers ${who} stalled (${details})`));
  }

  /**
   * Is every shard answering? Pings them all now: true once each has
   * answered, false if a slot is empty or a shard is lost first. A worker
   * that misses its slice deadline is judged only after this: it may be late
   * because a shard stopped serving it, and then the shard is to blame.
   */
  async probe(): Promise<boolean> {
    const peers = this.slots;
    if (peers.some((p) => !p)) return false;
    return Promise.all((peers as ShardPeer[]).map((p) => this.ping(p))).then(() => true, () => false);
  }

  private get full(): boolean {
    return this.live === this.slots.length;
  }

  private wake(): void {
    if (this.full) for (const wake of this.joinWaiters.splice(0)) wake();
    if (this.full && !this.rewinding) for (const wake of this.readyWaiters.splice(0)) wake();
  }

  /** Every slot is taken. */
  allJoined(): Promise<void> {
    return this.full ? Promise.resolve() : new Promise((resolve) => this.joinWaiters.push(resolve));
  }

  /** Every slot is taken and loaded: workers can be told where the shards are. */
  ready(): Promise<void> {
    return this.full && !this.rewinding ? Promise.resolve() : new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  /** Going back to a checkpoint: hold off loading shards that join until reload(). */
  beginRewind(): void {
    this.rewinding = true;
  }

  /** Load every shard afresh from the job's state (after going back to a checkpoint). */
  reload(): void {
    this.rewinding = false;
    this.queues.clear();
    this.resetFolded();
    for (const peer of this.slots) if (peer) this.load(peer);
    this.wake();
  }

  /** Welcome `peer` and send it its pieces' values and momentum, then Hold at the current version. */
  private load(peer: ShardPeer): void {
    const { cfg, specs, trainable, multipliers, params, sgd } = this.job;
    const variables = specs.map((s) => ({ ...s, lrMult: multipliers.get(s.name)!.lrMult, decayMult: multipliers.get(s.name)!.decayMult }));
    peer.send({ kind: { $case: 'welcome', value: { index: peer.slot, shards: this.slots.length, jobConfigJson: JSON.stringify(redactJob(cfg)), variables, trainable } } });
    const pieces = this.layout[peer.slot];
    // Copies: the commands are written later, and these arrays change (a checkpoint gathers into them).
    for (const [name, view] of pieceViews(pieces, specs, params)) for (const c of chunksOf(name, [view.length], view)) peer.send({ kind: { $case: 'param', value: { ...c, data: c.data.slice() } } });
    // Momentum of trainable variables only: a checkpoint written with other lr_mult rules may hold some of a variable now frozen.
    const momentum = new Map([...sgd.velocity].filter(([name]) => trainable.includes(name)));
    for (const [name, view] of pieceViews(pieces, specs, momentum)) for (const c of chunksOf(name, [view.length], view)) peer.send({ kind: { $case: 'velocity', value: { ...c, data: c.data.slice() } } });
    peer.send({ kind: { $case: 'hold', value: { version: this.version() } } });
  }

  /** Tickets for worker `w`'s connections, once every shard is ready for them: the Welcome's `shards`. */
  async expect(w: string, alive: () => boolean): Promise<ShardEndpoint[]> {
    await this.ready();
    // A session that ended while the shards were not ready gets no Expect: no Forget would follow it.
    if (!alive()) throw new ConnectionLost('the session ended while it waited for the shards');
    const peers = this.slots as ShardPeer[];
    const tickets = peers.map(() => randomBytes(TICKET_BYTES));
    const session = ++this.lastSession;
    this.sessions.set(w, session);
    await Promise.all(peers.map((peer, i) =>
      this.request<void>(peer, `the Expect for ${w}`, { kind: { $case: 'expect', value: { workerId: w, ticket: tickets[i], session } } }, (waiter) => peer.expecting.set(w, waiter))));
    return peers.map((peer, i) => ({ host: peer.endpoint.host, port: peer.endpoint.port, ticket: tickets[i] }));
  }

  /** Worker `w`'s session is over: shards close its connection and drop its uploads. */
  forget(w: string): void {
    this.queues.delete(w);
    this.sessions.delete(w);
    for (const peer of this.slots) {
      if (!peer) continue;
      peer.expecting.get(w)?.reject(new ConnectionLost(`worker ${w}'s session ended`)); // its Welcome waits no more
      peer.expecting.delete(w);
      peer.send({ kind: { $case: 'forget', value: { workerId: w } } });
    }
  }

  /** A message on shard `peer`'s stream. */
  onMessage(peer: ShardPeer, msg: ShardMessage): void {
    peer.lastHeard = this.clock.now();
    const kind = msg.kind;
    switch (kind?.$case) {
      case 'expecting': peer.expecting.get(kind.value.workerId)?.resolve(); peer.expecting.delete(kind.value.workerId); return;
      case 'uploaded': {
        const { workerId, step, version, squares, session } = kind.value;
        // Checked against the worker's own sum when its StepDone claims the upload (takeUpload).
        if (session === this.sessions.get(workerId)) this.uploaded(peer, workerId, step, version, squares);
        return;
      }
      case 'averaged': {
        // The mean of accepted (finite) gradients has a finite, non-negative Σ g²: anything else is the shard's fault, not the model's.
        if (!(Number.isFinite(kind.value.squares) && kind.value.squares >= 0)) return this.drop(peer, new WireInvalid(`it reported Σ g² = ${kind.value.squares} for the mean of finite gradients`, 'non-finite'));
        peer.averaged?.resolve(kind.value.squares); peer.averaged = null; return;
      }
      case 'pong': peer.pings.get(kind.value.seq)?.resolve(); peer.pings.delete(kind.value.seq); return;
      case 'param': peer.snapshot?.params.add(kind.value); return;
      case 'velocity': peer.snapshot?.velocity.add(kind.value); return;
      case 'snapshotDone': peer.snapshot?.done.resolve(); peer.snapshot = null; return;
      case 'workerLost': {
        const { workerId, reason, details, session } = kind.value;
        if (session !== this.sessions.get(workerId)) return; // about a session that is already over
        const why = `shard ${peer.slot}: ${details}`;
        // A bad frame counts against the worker's id; a closed or cut connection (truncated) does not. An unknown reason is not a metric label.
        const refused = reason in REJECT_REASONS && reason !== 'truncated';
        return this.host.workerLost(workerId, refused ? new WireInvalid(why, reason as RejectReason) : new ConnectionLost(why));
      }
      default: throw new WireInvalid(`unexpected ${kind?.$case ?? 'empty'} message from a shard`, 'unexpected');
    }
  }

  private uploaded(peer: ShardPeer, w: string, step: number, version: number, squares: number): void {
    let perSlot = this.queues.get(w);
    if (!perSlot) this.queues.set(w, (perSlot = this.slots.map(() => [])));
    const queue = perSlot[peer.slot];
    queue.push(squares);
    log.debug('upload', { worker: w, shard: peer.slot, step, version, waiting: queue.length });
    this.host.uploaded(w, step, version, queue.length - 1);
  }

  /** Complete uploads of `w` on every gradient shard, not yet claimed by a StepDone. */
  uploadsReady(w: string): number {
    const perSlot = this.queues.get(w);
    return perSlot ? Math.min(...this.gradientSlots.map((s) => perSlot[s].length)) : 0;
  }

  /**
   * Claim `w`'s oldest complete upload, which the worker says had Σ g²
   * `claimed[slot]` on each shard: resolves with its Σ g² over every shard,
   * or null when a shard reported another sum — that shard is dropped (the
   * round aborts) and the worker is not to blame.
   */
  takeUpload(w: string, claimed: number[]): number | null {
    const perSlot = this.queues.get(w)!;
    let sum = 0;
    for (const s of this.gradientSlots) {
      const reported = perSlot[s].shift()!;
      const peer = this.slots[s];
      if (!agree(claimed[s], reported)) {
        if (peer) this.drop(peer, new WireInvalid(`it reported Σ g² = ${reported} for worker ${w}'s upload, which the worker sent with Σ g² = ${claimed[s]}`, 'non-finite'));
        return null;
      }
      sum += reported;
    }
    return sum;
  }

  /** Fold `w`'s oldest claimed upload (Σ g² `squares` per slot, its slice's mean `loss`) into the step's mean on every shard (in acceptance order, the same everywhere). */
  fold(w: string, examples: number, squares: number[], loss: number): void {
    this.folded.examples += examples;
    this.folded.loss += examples * loss;
    for (const s of this.gradientSlots) {
      this.folded.bound[s] += examples * squares[s];
      this.slots[s]?.send({ kind: { $case: 'fold', value: { workerId: w, examples } } });
    }
  }

  private resetFolded(): void {
    this.folded = { examples: 0, loss: 0, bound: this.slots.map(() => 0) };
  }

  /** Close the step's mean on every shard; resolves with its Σ g² (for the step's gradient norm) and the step's loss. */
  async average(step: number): Promise<{ squares: number; loss: number }> {
    const { examples, loss, bound } = this.folded;
    this.resetFolded();
    const parts = await Promise.all(this.gradientSlots.map((s) => {
      const peer = this.slots[s];
      if (!peer) return Promise.reject(new ShardLost(`parameter shard ${s} is not there`));
      return this.request<number>(peer, `Average for step ${step}`, { kind: { $case: 'average', value: { step } } }, (w) => { peer.averaged = w; }).then((squares) => {
        // The mean's Σ g² is at most the examples-weighted mean of its uploads' (convexity): more is no honest shard's report.
        const most = (bound[s] / examples) * (1 + MEAN_SLACK);
        if (!(squares > most)) return squares;
        const err = new WireInvalid(`it reported Σ g² = ${squares} for the mean of uploads that allow at most ${most}`, 'non-finite');
        this.drop(peer, err);
        throw new ShardLost(`parameter shard ${s} was lost: ${err.message}`);
      });
    }));
    return { squares: parts.reduce((a, b) => a + b, 0), loss: loss / examples };
  }

  /** Apply the step on every shard with base rate `lr`; they serve the result as `version`. */
  apply(version: number, lr: number): void {
    for (const peer of this.slots) peer?.send({ kind: { $case: 'apply', value: { version, lr } } });
  }

  /** Copy every shard's trainable pieces and their momentum into `params` and `velocity` (whole variables). */
  async gather(params: Tensors, velocity: Tensors): Promise<void> {
    for (const name of this.job.trainable) if (!velocity.has(name)) velocity.set(name, new Float32Array(params.get(name)!.length));
    const trainable = new Set(this.job.trainable);
    await Promise.all(this.slots.map((peer, slot) => new Promise<void>((resolve, reject) => {
      if (!peer) return reject(new ShardLost(`parameter shard ${slot} is not there`));
      // A shard sends its trainable pieces: the views of those, by piece name, are where they land.
      const names = new Set(this.layout[slot].flatMap((p, i) => (trainable.has(this.job.specs[p.variable].name) ? [pieceName(i)] : [])));
      const into = (whole: Tensors) => TensorAssembler.over(new Map([...pieceViews(this.layout[slot], this.job.specs, whole)].filter(([name]) => names.has(name))));
      const snapshot = { params: into(params), velocity: into(velocity) };
      const done = () => (snapshot.params.complete() && snapshot.velocity.complete() ? resolve() : reject(new ShardLost(`parameter shard ${slot} sent an incomplete snapshot`)));
      this.request<void>(peer, 'Snapshot', { kind: { $case: 'snapshot', value: {} } }, (w) => { peer.snapshot = { ...snapshot, done: w }; }).then(done, reject);
    })));
  }

  /** The coordinator stops before the job is over: every shard's stream ends with `err` (they join again). */
  stop(err: ConnectionLost): void {
    this.finished = true;
    for (const peer of this.slots) peer?.channel.fail(err);
  }

  /** The job is over: close every shard's stream. */
  finish(): void {
    this.finished = true;
    for (const peer of this.slots) peer?.end();
  }

}
