// One worker's session, as the coordinator sees it: what the worker already
// holds (parameter version, cached examples), the gradient chunks of its
// current upload, and the Channel its messages go out on. Only the Channel
// knows the transport: server.ts implements it over a gRPC stream, the unit
// tests over an array.
import { CoordinatorMessage, DType, Split } from '../proto/gen/tunefleet/v1/tunefleet';
import { ParamSpec } from '../core/model/params';
import { TensorAssembler } from '../core/wire/tensors';

export interface Channel {
  /** Write one message; resolves once the transport has accepted it (waits while its buffer is full). */
  write(msg: CoordinatorMessage): Promise<void>;
  /** Close our side; the transport then reports the worker as left. */
  end(): void;
  /** End the session because of `err` (the transport turns it into a status the worker sees). */
  fail(err: Error): void;
}

export class WorkerSession {
  /** Parameter version the worker holds; -1 = none yet (it needs every variable). */
  version = -1;
  alive = true;
  private sending: Promise<void> = Promise.resolve();
  private handing: Promise<void> = Promise.resolve();
  private assembler: TensorAssembler | null = null;
  private bitmaps: Record<Split.TRAIN | Split.VALIDATION, Uint8Array> | null = null;

  constructor(
    readonly id: string,
    readonly backend: string,
    private readonly channel: Channel,
    private readonly trainable: ParamSpec[],
    private readonly gradientDtypes: DType[],
    private readonly sizes: { train: number; val: number },
  ) {}

  // Both made on first use, so a session that joins and leaves (or a flood of
  // them) costs neither model-sized nor dataset-sized buffers.

  /** The gradient upload in progress. */
  get uploads(): TensorAssembler {
    this.assembler ??= new TensorAssembler(this.trainable, this.gradientDtypes);
    return this.assembler;
  }

  /** Which examples of each split the worker has cached (1 = sent). */
  get cached(): Record<Split.TRAIN | Split.VALIDATION, Uint8Array> {
    this.bitmaps ??= { [Split.TRAIN]: new Uint8Array(this.sizes.train), [Split.VALIDATION]: new Uint8Array(this.sizes.val) };
    return this.bitmaps;
  }

  /** Queue a message; resolves once the channel has accepted it. Messages go out in call order. */
  send(msg: CoordinatorMessage): Promise<void> {
    this.sending = this.sending.then(async () => {
      if (this.alive) await this.channel.write(msg);
    });
    return this.sending;
  }

  /**
   * Run `handOut` once every earlier hand-out to this worker has finished.
   * A hand-out brings the worker up to date and then sends its assignment;
   * two at once (slices reassigned to it together) would each send the
   * parameters and could put an assignment between another's parameter chunks.
   */
  serially(handOut: () => Promise<void>): Promise<void> {
    const run = this.handing.catch(() => undefined).then(handOut);
    this.handing = run;
    return run;
  }

  end(): void {
    this.channel.end();
  }

  fail(err: Error): void {
    this.alive = false;
    this.channel.fail(err);
  }
}
