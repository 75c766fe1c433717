// A worker's connections to the parameter shards (Welcome.shards, with
// cluster.shards > 0): one data connection per shard, each opened with the
// ticket the Welcome gave for it. Every shard sends the values of its pieces
// (core/train/partition.ts) straight into views of the worker's parameter
// buffers, then PARAMS_END; parameters of a version are complete when every
// shard has sent its PARAMS_END. A gradient is cut the same way: each piece
// goes to the shard that holds it, all shards' connections busy at once,
// and the worker counts Σ g² of what it sent each shard for its StepDone
// (shard_squares: the coordinator checks each shard's report against it).
import { ConnectionLost, DeadlineExceeded } from '../core/errors';
import { Metrics } from '../core/observe/metrics';
import { ParamSpec } from '../core/model/params';
import { partition, pieceName, piecesByVariable, pieceViews } from '../core/train/partition';
import { sumOfSquares } from '../core/train/spike-guard';
import { fromFloat16 } from '../core/wire/fp16';
import { product } from '../core/util/numbers';
import { TensorAssembler, wireBytes } from '../core/wire/tensors';
import { DType, Welcome } from '../proto/gen/tunefleet/v1/tunefleet';
import { DataLink, Dialing } from './data-link';

/** Shard `slot`'s connection stalled (cluster.stallSeconds, either way): the worker tells the coordinator which (ShardTrouble), as the shard may be at fault. */
export class ShardLinkFailed extends ConnectionLost {
  constructor(readonly slot: number, cause: Error) {
    super(`parameter shard ${slot}: ${cause.message}`, { cause });
  }
}

/** `work` on shard `slot`'s link, a stall named for that shard (a closed connection is the shard's decision, and it says why itself). */
const onShard = <T>(slot: number, work: Promise<T>): Promise<T> => work.catch((err: Error) => { throw err instanceof DeadlineExceeded ? new ShardLinkFailed(slot, err) : err; });

export class ShardLinks {
  /** Per link, the gradient frames queued on it (each link sends in order; the links run side by side). */
  private queues: Promise<void>[];
  /** Per link, Σ g² of the gradient sent on it since the last flushed(). */
  private squares: number[];

  private constructor(private readonly links: DataLink[], private readonly routes: ReturnType<typeof piecesByVariable>, private readonly variable: Map<string, number>) {
    this.queues = links.map(() => Promise.resolve());
    this.squares = links.map(() => 0);
  }

  /** Connect to every shard of `w`; parameters land in `params` (the worker's buffers, whole variables). */
  static async open(w: Welcome, specs: ParamSpec[], params: Map<string, Float32Array>, dialing: Dialing, metrics: Metrics): Promise<ShardLinks> {
    const layout = partition(specs.map((s) => product(s.shape)), w.shards.length, w.partitionBytes);
    const links: DataLink[] = [];
    try {
      for (const [i, shard] of w.shards.entries()) {
        const sink = {
          params: TensorAssembler.over(pieceViews(layout[i], specs, params)),
          names: layout[i].map((_, k) => pieceName(k)),
          received: (bytes: number) => metrics.traffic('received', 'parameters', bytes, 'tcp'),
          completed: () => {},
        };
        const unreachable = (err: Error) => new ConnectionLost(`cannot reach parameter shard ${i} at ${shard.host}:${shard.port}: ${err.message}`);
        links.push(await DataLink.open(shard.host, shard.port, shard.ticket, dialing, sink, unreachable));
      }
    } catch (err) {
      for (const link of links) link.close();
      throw err;
    }
    return new ShardLinks(links, piecesByVariable(layout, specs.length), new Map(specs.map((s, i) => [s.name, i])));
  }

  /** Resolves once every shard has sent its part of `version`. */
  async paramsAt(version: number): Promise<void> {
    await Promise.all(this.links.map((l, slot) => onShard(slot, l.paramsAt(version))));
  }

  /** Queue gradient `name` for the shards holding its pieces (as `dtype`); flushed() waits for every queued frame. */
  sendGradient(step: number, version: number, name: string, g: Float32Array, dtype: DType, metrics: Metrics): void {
    for (const { shard, index, piece } of this.routes[this.variable.get(name)!]) {
      const values = g.subarray(piece.start, piece.start + piece.count);
      const bytes = wireBytes(values, dtype);
      // Over the values the shard will decode (float16 rounds), so an honest shard's sum is the same.
      this.squares[shard] += sumOfSquares(dtype === DType.FLOAT16 ? fromFloat16(new Uint16Array(bytes.buffer, bytes.byteOffset, values.length)) : values);
      metrics.traffic('sent', 'gradients', bytes.length, 'tcp');
      const next = this.queues[shard].then(() => this.links[shard].sendGradient(step, version, index, dtype, bytes));
      next.catch(() => {}); // flushed() reports it; until then it must not count as unhandled
      this.queues[shard] = next;
    }
  }

  /** Every queued gradient frame has been handed to its connection (a connection that failed rejects); resolves with Σ g² sent to each shard. */
  async flushed(): Promise<number[]> {
    const queues = this.queues, squares = this.squares;
    this.queues = this.links.map(() => Promise.resolve());
    this.squares = this.links.map(() => 0);
    await Promise.all(queues.map((q, slot) => onShard(slot, q)));
    return squares;
  }

  close(): void {
    for (const link of this.links) link.close();
  }
}
