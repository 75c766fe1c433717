// A parameter shard's state and what it does with the coordinator's commands
// and the workers' frames (cluster.shards > 0; docs/distributed.md). It holds
// its pieces of the model (core/train/partition.ts) and their momentum, and:
//
//   - serves them to every worker on its data port: all pieces when a worker
//     connects, the trainable ones after every step, then PARAMS_END;
//   - takes each worker's gradient for its pieces (GRADIENT frames, checked as
//     the coordinator checks its own: core/wire/uploads.ts), reports each
//     complete upload with its Σ g², and folds it into the mean only when the
//     coordinator says so (Fold: in the order it accepted the StepDones);
//   - closes the mean (Average) and applies the step (Apply) with the same
//     functions the coordinator uses without shards (shard-optimizer.ts).
//
// No transport here: commands come in through handle(), reports go out
// through `report`, frames come from the data plane (DataPlaneHost).
import { WireInvalid } from '../core/errors';
import { logger, setLogContext } from '../core/observe/log';
import { Metrics } from '../core/observe/metrics';
import { parseJob, partitionBytesOf } from '../core/job/config';
import { isFrozen } from '../core/train/lr-rules';
import { partition, pieceIndex, pieceName } from '../core/train/partition';
import { ShardOptimizer } from '../core/train/shard-optimizer';
import { sumOfSquares } from '../core/train/spike-guard';
import { product } from '../core/util/numbers';
import { DEFAULT_STALL_SECONDS } from '../core/wire/backpressure';
import { FrameHeader, FRAME_BYTES } from '../core/wire/frames';
import { chunksOf, piecesOf, TensorAssembler, wireBytes } from '../core/wire/tensors';
import { DType, ShardCommand, ShardMessage, ShardWelcome } from '../proto/gen/tunefleet/v1/tunefleet';
import { DataPlaneHost, TensorLink, TicketHolder, Tickets } from '../core/wire/data-plane';
import { Uploads } from '../core/wire/uploads';

const log = logger('shard');

/** A worker as this shard knows it: its data connection and its gradient uploads. */
class Peer implements TicketHolder {
  alive = true;
  link: TensorLink | null = null;
  /** The step of the upload under way (every frame of one upload names the same). */
  step: number | null = null;

  /** `session`: the coordinator's number for this session of the worker, echoed in every report about it. */
  constructor(readonly id: string, readonly session: number, readonly uploads: Uploads, private readonly attached: (p: Peer) => void) {}

  attach(link: TensorLink): void {
    this.link = link;
    this.attached(this);
  }
}

/** What the shard holds once the coordinator has welcomed it. */
interface Held {
  optimizer: ShardOptimizer;
  /** cluster.stallSeconds of the job: a worker that stops reading its parameters is cut off after this long. */
  stallSeconds: number;
  dtypes: DType[];
  /** The starting state as it arrives (until Hold). */
  loading: { params: TensorAssembler; velocity: TensorAssembler } | null;
}

export class Shard implements DataPlaneHost {
  readonly tickets = new Tickets();
  private readonly peers = new Map<string, Peer>();
  private held: Held | null = null;
  private version = -1;
  /** Parameter pushes still being written (each holds views of the values it sends). */
  private readonly pushing = new Set<Promise<void>>();
  /** Seconds spent folding this step's uploads so far (observed once per step, at Average). */
  private folding = 0;

  constructor(readonly metrics: Metrics, private readonly report: (m: ShardMessage) => Promise<void>) {}

  get stallSeconds(): number {
    return this.held?.stallSeconds ?? DEFAULT_STALL_SECONDS;
  }

  /** One command from the coordinator; commands are handled one at a time, in order. */
  async handle(cmd: ShardCommand): Promise<void> {
    const kind = cmd.kind;
    const v = kind?.value as { workerId?: string; step?: number; version?: number } | undefined; // never the ticket: it is a secret
    if (kind?.$case !== 'param' && kind?.$case !== 'velocity') log.debug('command', { kind: kind?.$case, worker: v?.workerId, step: v?.step, version: v?.version });
    if (kind?.$case === 'welcome') return this.welcome(kind.value);
    const held = this.held;
    if (!held) throw new WireInvalid(`coordinator sent ${kind?.$case} before welcoming this shard`, 'unexpected');
    switch (kind?.$case) {
      case 'param': held.loading!.params.add(kind.value); return;
      case 'velocity': held.loading!.velocity.add(kind.value); return;
      case 'hold': return this.hold(held, kind.value.version);
      case 'expect': return this.expect(held, kind.value.workerId, kind.value.session, kind.value.ticket);
      case 'forget': return this.forget(kind.value.workerId);
      case 'fold': return this.fold(held, kind.value.workerId, kind.value.examples);
      case 'average': return this.average(held, kind.value.step);
      case 'apply': return this.apply(held, kind.value.version, kind.value.lr);
      case 'snapshot': return this.snapshot(held);
      case 'ping': return this.report({ kind: { $case: 'pong', value: kind.value } }); // commands are handled in order: every one before it is done
      default: throw new WireInvalid('an empty command', 'unexpected');
    }
  }

  /** The coordinator session ended: drop every worker (a new session starts from a new Welcome). */
  reset(): void {
    for (const id of [...this.peers.keys()]) this.forget(id);
    this.held = null;
    this.version = -1;
  }

  private welcome(w: ShardWelcome): void {
    this.reset();
    const cfg = parseJob(JSON.parse(w.jobConfigJson), 'the coordinator\'s job');
    const variables = w.variables.map((v) => ({ name: v.name, shape: v.shape }));
    const layout = partition(variables.map((v) => product(v.shape)), w.shards, partitionBytesOf(cfg));
    // The coordinator's resolution of the rules, never our own; its trainable list must say the same.
    const multipliers = new Map(w.variables.map((v) => [v.name, { lrMult: v.lrMult, decayMult: v.decayMult }]));
    const trainable = w.variables.filter((v) => !isFrozen(v)).map((v) => v.name);
    if (trainable.join(',') !== w.trainable.join(',')) throw new WireInvalid(`a Welcome whose trainable variables (${w.trainable.length}) are not those its multipliers leave unfrozen (${trainable.length})`, 'unexpected');
    const optimizer = new ShardOptimizer(layout[w.index], variables, multipliers, cfg.optimizer);
    const dtypes = cfg.cluster.gradientDtype === 'float16' ? [DType.FLOAT16, DType.FLOAT32] : [DType.FLOAT32];
    this.held = { optimizer, dtypes, stallSeconds: cfg.cluster.stallSeconds, loading: { params: TensorAssembler.over(optimizer.params), velocity: TensorAssembler.over(optimizer.velocity) } };
    this.metrics.setJob(cfg.name);
    setLogContext({ id: `shard-${w.index}` });
    const bytes = [...optimizer.params.values()].reduce((a, p) => a + p.byteLength, 0);
    log.info('welcomed', { job: cfg.name, shard: w.index, of: w.shards, pieces: optimizer.params.size, mib: +(bytes / 2 ** 20).toFixed(2) });
  }

  private hold(held: Held, version: number): void {
    if (!held.loading?.params.complete()) throw new WireInvalid('Hold before every piece\'s starting values arrived', 'incomplete');
    held.loading = null;
    this.version = version;
    for (const peer of this.peers.values()) this.push(held, peer, true);
  }

  private async expect(held: Held, id: string, session: number, ticket: Uint8Array): Promise<void> {
    this.forget(id); // a worker that joined again: its old connection is over
    const peer = new Peer(id, session, new Uploads(held.optimizer.trainable, held.dtypes), (p) => this.version >= 0 && this.push(held, p, true));
    this.peers.set(id, peer);
    this.tickets.admit(peer, ticket);
    await this.report({ kind: { $case: 'expecting', value: { workerId: id } } });
  }

  private forget(id: string): void {
    const peer = this.peers.get(id);
    if (!peer) return;
    peer.alive = false;
    peer.link?.close();
    this.tickets.forget(peer);
    this.peers.delete(id);
  }

  private fold(held: Held, id: string, examples: number): void {
    const upload = this.peers.get(id)?.uploads.take();
    if (!upload) throw new WireInvalid(`Fold for ${id}, which has no complete upload here`, 'unexpected');
    const t = performance.now();
    held.optimizer.fold(upload.assembler.tensors, examples);
    this.folding += (performance.now() - t) / 1000;
    this.peers.get(id)!.uploads.recycle(upload);
  }

  private async average(held: Held, step: number): Promise<void> {
    const t = performance.now();
    const squares = held.optimizer.average();
    this.metrics.shardWork('aggregate', this.folding + (performance.now() - t) / 1000);
    this.folding = 0;
    await this.report({ kind: { $case: 'averaged', value: { step, squares } } });
  }

  private apply(held: Held, version: number, lr: number): void {
    // Pushes still being written hold views of the current values. The update
    // goes into fresh copies instead of waiting for them: a worker that stopped
    // reading would otherwise hold up every command behind this Apply — the
    // Forget that ends its session too (cluster.stallSeconds ends its push).
    const { params, trainable } = held.optimizer;
    if (this.pushing.size > 0) for (const { name } of trainable) params.set(name, params.get(name)!.slice());
    const t = performance.now();
    if (held.optimizer.trainable.length > 0) held.optimizer.apply(lr);
    this.metrics.shardWork('update', (performance.now() - t) / 1000);
    this.version = version;
    for (const peer of this.peers.values()) this.push(held, peer, false);
  }

  /** Send the trainable pieces' values and momentum, then SnapshotDone (the coordinator writes them into a checkpoint). */
  private async snapshot(held: Held): Promise<void> {
    const { optimizer } = held;
    for (const { name } of optimizer.trainable) {
      for (const value of chunksOf(name, [optimizer.params.get(name)!.length], optimizer.params.get(name)!)) await this.report({ kind: { $case: 'param', value } });
      for (const value of chunksOf(name, [optimizer.velocity.get(name)!.length], optimizer.velocity.get(name)!)) await this.report({ kind: { $case: 'velocity', value } });
    }
    await this.report({ kind: { $case: 'snapshotDone', value: { version: this.version } } });
  }

  /** Send `peer` this version's pieces (all of them, or only the trainable ones it lacks), then PARAMS_END. */
  private push(held: Held, peer: Peer, all: boolean): void {
    const link = peer.link;
    if (!link || !peer.alive) return;
    const { optimizer } = held;
    const names = all ? [...optimizer.params.keys()] : optimizer.trainable.map((p) => p.name);
    const values = names.map((name) => [name, optimizer.params.get(name)!] as const); // this version's arrays: Apply gives later versions new ones
    const version = this.version;
    const sending = (async () => {
      for (const [name, piece] of values) {
        const index = pieceIndex(name);
        for (const { offset, data } of piecesOf(wireBytes(piece, DType.FLOAT32), FRAME_BYTES)) {
          this.metrics.traffic('sent', 'parameters', data.length, 'tcp');
          await link.sendParam(index, version, offset, data);
        }
      }
      await link.paramsDone(version);
      await link.flushed();
    })().catch(() => {}); // the connection closed: the data plane reports it (drop)
    this.pushing.add(sending);
    void sending.then(() => this.pushing.delete(sending));
  }

  // ---- DataPlaneHost: gradient frames from the workers ----------------------

  gradientTarget(w: string, h: FrameHeader): Uint8Array {
    const peer = this.peers.get(w)!;
    if (h.version !== this.version) throw new WireInvalid(`a gradient frame at version ${h.version}; this shard holds version ${this.version}`, 'stale');
    peer.step ??= h.step;
    if (h.step !== peer.step) throw new WireInvalid(`a gradient frame for step ${h.step} in an upload for step ${peer.step}`, 'stale');
    return peer.uploads.destination(pieceName(h.tensor), h.dtype, h.offset, h.length);
  }

  gradientLanded(w: string, h: FrameHeader): void {
    this.metrics.traffic('received', 'gradients', h.length, 'tcp');
    const peer = this.peers.get(w)!;
    const completed = peer.uploads.landed();
    if (!completed) return;
    peer.uploads.addSquares(sumOfSquares(peer.uploads.tensor(completed)));
    const sealed = peer.uploads.sealIfComplete();
    if (!sealed) return;
    const step = peer.step!;
    peer.step = null;
    log.debug('upload complete', { worker: w, step, version: h.version });
    void this.report({ kind: { $case: 'uploaded', value: { workerId: w, step, version: h.version, squares: sealed.squares, session: peer.session } } });
  }

  /** A worker's connection broke the contract or closed: the coordinator decides (its uploads stay until Forget: an accepted one may still be folded). */
  drop(w: string, err: Error): void {
    const peer = this.peers.get(w);
    if (!peer?.alive) return;
    peer.alive = false;
    peer.link?.close();
    const reason = err instanceof WireInvalid ? err.reason : ''; // empty: the connection closed
    if (reason) this.metrics.rejected(reason);
    void this.report({ kind: { $case: 'workerLost', value: { workerId: w, reason, details: err.message, session: peer.session } } });
  }
}
