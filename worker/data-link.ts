// A worker's data connection (cluster.dataPlane: tcp): opened with the
// session's ticket right after its Welcome, to the coordinator's host at the
// Welcome's data port, TLS when the worker talks TLS to gRPC. Parameter
// frames are read straight into the worker's parameter buffers (net's
// `onread`; with TLS one copy), and a Step waits for the PARAMS_END of the
// version it names before computing. Gradients go out as frames written from
// the gradient arrays themselves.
import { connect, Socket } from 'node:net';
import * as tls from 'node:tls';
import { ConnectionLost, JobFailed, WireInvalid } from '../core/errors';
import { arriving } from '../core/wire/backpressure';
import { feedFrames, FrameWriter, onreadInto } from '../core/wire/data-socket';
import { FrameHandler, FrameHeader, FrameKind, FrameReader, FRAME_BYTES } from '../core/wire/frames';
import { ClientTls, dataPlaneClientTls } from '../core/wire/security';
import { piecesOf, TensorAssembler } from '../core/wire/tensors';
import { DType } from '../proto/gen/tunefleet/v1/tunefleet';

/** Where a worker's parameters land: the buffers, the variables' names by index, and what to do with each piece and each completed tensor. */
export interface ParamSink {
  params: TensorAssembler;
  names: string[];
  received(bytes: number): void;
  completed(name: string): void;
}

/** How a data connection is opened and written: TLS files, and the job's cluster.stallSeconds (a peer that takes none of our bytes that long is cut off). */
export interface Dialing {
  tls: ClientTls;
  stallSeconds: number;
}

export class DataLink implements FrameHandler {
  private held = -1;
  private waiters: { version: number; resolve: () => void; reject: (err: Error) => void }[] = [];
  private failure: Error | null = null;
  private readonly writer: FrameWriter;

  private constructor(private readonly socket: Socket, private readonly sink: ParamSink, private readonly stallSeconds: number) {
    this.writer = new FrameWriter(socket, stallSeconds);
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new ConnectionLost('the data connection closed')));
  }

  /** Connect to `host`:`port` and present `ticket`; `unreachable` says what it means when that port cannot be reached. */
  static async open(host: string, port: number, ticket: Uint8Array, { tls: tlsFiles, stallSeconds }: Dialing, sink: ParamSink, unreachable: (err: Error) => Error): Promise<DataLink> {
    let link: DataLink | null = null;
    const reader = new FrameReader({ target: (h) => link!.target(h), landed: (h) => link!.landed(h) });
    const secure = dataPlaneClientTls(tlsFiles, host);
    const fail = (err: unknown) => link!.fail(err, true);
    const socket = secure ? feedFrames(tls.connect({ host, port, ...secure }), reader, fail) : connect({ host, port, onread: onreadInto(reader, fail) });
    await new Promise<void>((resolve, reject) => {
      socket.once(secure ? 'secureConnect' : 'connect', resolve);
      socket.once('error', (err) => reject(unreachable(err)));
    });
    socket.setNoDelay(true);
    link = new DataLink(socket, sink, stallSeconds);
    await link.writer.send({ kind: FrameKind.HELLO }, ticket);
    return link;
  }

  /**
   * Resolves once every parameter of `version` the peer sent has landed; a
   * peer that sends none of it for cluster.stallSeconds fails the wait and
   * the connection (it is not serving us).
   */
  paramsAt(version: number): Promise<void> {
    if (this.held === version) return Promise.resolve();
    if (this.failure) return Promise.reject(this.failure);
    const landed = new Promise<void>((resolve, reject) => this.waiters.push({ version, resolve, reject }));
    return arriving(landed, () => this.socket.bytesRead, this.stallSeconds, `version ${version}'s parameters`).catch((err) => {
      this.fail(err, true);
      throw err;
    });
  }

  /** Send gradient `tensor` (its index in Welcome.trainable), as `dtype` bytes, for `step` at `version`, in frames of FRAME_BYTES. */
  async sendGradient(step: number, version: number, tensor: number, dtype: DType, bytes: Uint8Array): Promise<void> {
    for (const { offset, data } of piecesOf(bytes, FRAME_BYTES)) {
      await this.writer.send({ kind: FrameKind.GRADIENT, dtype, tensor, step, version, offset }, data);
    }
  }

  close(): void {
    this.socket.destroy();
  }

  /** The coordinator's data port cannot be reached: retrying will not help (a firewall, a wrong port), so the worker stops with what to change. */
  static coordinatorUnreachable(host: string, port: number): (err: Error) => Error {
    return (err) => new JobFailed(`cannot reach the coordinator's data port ${host}:${port} (cluster.dataPort): ${err.message}; ` +
      'let workers reach that port, or set cluster.dataPlane: grpc to send tensors over the gRPC port', { cause: err });
  }

  target(h: FrameHeader): Uint8Array {
    if (h.kind === FrameKind.PARAMS_END) return new Uint8Array(0);
    const name = this.sink.names[h.tensor];
    if (h.kind !== FrameKind.PARAM || name === undefined) throw new WireInvalid(`unexpected ${FrameKind[h.kind]} frame for tensor ${h.tensor}`, 'unexpected');
    return this.sink.params.destination(name, h.dtype, h.offset, h.length);
  }

  landed(h: FrameHeader): void {
    if (h.kind === FrameKind.PARAM) {
      this.sink.received(h.length);
      const done = this.sink.params.landed();
      if (done) this.sink.completed(done);
      return;
    }
    this.held = h.version;
    this.sink.params.reset(); // the next version's frames start a new transfer
    for (const w of this.waiters.filter((w) => w.version === h.version)) w.resolve();
    this.waiters = this.waiters.filter((w) => w.version !== h.version);
  }

  private fail(err: unknown, close = false): void {
    this.failure ??= err instanceof Error ? err : new Error(String(err));
    for (const w of this.waiters.splice(0)) w.reject(this.failure);
    if (close) this.socket.destroy();
  }
}
