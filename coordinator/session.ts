// One worker's session, as the coordinator sees it: the open gRPC stream (its
// lease), what it already holds (parameter version, cached examples), and the
// gradient chunks of its current upload. Sending respects the stream's
// backpressure, so a slow worker cannot make the coordinator buffer a whole
// model per step in memory.
import * as grpc from '@grpc/grpc-js';
import { CoordinatorMessage, DType, Split, WorkerMessage } from '../proto/gen/tunefleet/v1/tunefleet';
import { writeWithBackpressure } from '../core/wire/backpressure';
import { ParamSpec } from '../core/model/params';
import { TensorAssembler } from '../core/wire/tensors';

export type SessionCall = grpc.ServerDuplexStream<WorkerMessage, CoordinatorMessage>;

export class WorkerSession {
  /** Parameter version the worker holds; -1 = none yet (it needs every variable). */
  version = -1;
  /** Which examples of each split the worker has cached. */
  readonly cached: Record<Split.TRAIN | Split.VALIDATION, Uint8Array>;
  readonly uploads: TensorAssembler;
  alive = true;
  private sending: Promise<void> = Promise.resolve();

  constructor(readonly id: string, readonly backend: string, private readonly call: SessionCall, trainable: ParamSpec[], gradientDtypes: DType[], sizes: { train: number; val: number }) {
    this.uploads = new TensorAssembler(trainable, gradientDtypes);
    this.cached = { [Split.TRAIN]: new Uint8Array(sizes.train), [Split.VALIDATION]: new Uint8Array(sizes.val) };
  }

  /** Queue a message; resolves once the stream has accepted it (waits on 'drain' when full). */
  send(msg: CoordinatorMessage): Promise<void> {
    this.sending = this.sending.then(async () => {
      if (!this.alive) return;
      await writeWithBackpressure(this.call, msg);
    });
    return this.sending;
  }

  /** Close our side; the stream's close then reports the worker as left. */
  end(): void {
    this.call.end();
  }

  /** End the stream with this gRPC status (the worker sees it as the call's error). */
  fail(status: Partial<grpc.StatusObject>): void {
    this.alive = false;
    this.call.emit('error', status);
  }
}
