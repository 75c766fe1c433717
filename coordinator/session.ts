// One worker's session, as the coordinator sees it: what the worker already
// holds (parameter version, cached examples), the gradient chunks of its
// current upload, the Channel its messages go out on, and (with the data
// plane on) the TensorLink its parameters go out on. Only those two know the
// transport: server.ts implements the Channel over a gRPC stream,
// core/wire/data-plane.ts the TensorLink over a TCP connection, the unit tests both
// over arrays.
import { CoordinatorMessage, DType, Split } from '../proto/gen/tunefleet/v1/tunefleet';
import { ParamSpec } from '../core/model/params';
import { TensorLink } from '../core/wire/data-plane';
import { Uploads } from '../core/wire/uploads';

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
  private gradientUploads: Uploads | null = null;
  private bitmaps: Record<Split.TRAIN | Split.VALIDATION, Uint8Array> | null = null;
  private link: TensorLink | null = null;
  private linkWaiters: ((link: TensorLink | null) => void)[] = [];
  /** StepDones that arrived over gRPC before the last of their gradient frames (data plane), oldest first: each runs when an upload is sealed. */
  readonly pendingDones: (() => void)[] = [];

  constructor(
    readonly id: string,
    readonly backend: string,
    private readonly channel: Channel,
    private readonly trainable: ParamSpec[],
    private readonly gradientDtypes: DType[],
    private readonly sizes: { train: number; val: number },
    /** True: its tensors travel on a data connection (opened or still to come). */
    readonly dataPlane = false,
  ) {}

  // Both made on first use, so a session that joins and leaves (or a flood of
  // them) costs neither model-sized nor dataset-sized buffers.

  /** Its gradient uploads: the one under way, and complete ones waiting for their StepDone. */
  get uploads(): Uploads {
    this.gradientUploads ??= new Uploads(this.trainable, this.gradientDtypes);
    return this.gradientUploads;
  }

  /** Which examples of each split the worker has cached (1 = sent). */
  get cached(): Record<Split.TRAIN | Split.VALIDATION, Uint8Array> {
    this.bitmaps ??= { [Split.TRAIN]: new Uint8Array(this.sizes.train), [Split.VALIDATION]: new Uint8Array(this.sizes.val) };
    return this.bitmaps;
  }

  /** Queue a message (or one still being made: a Welcome waits for the parameter shards); resolves once the channel has accepted it. Messages go out in call order. */
  send(msg: CoordinatorMessage | Promise<CoordinatorMessage>): Promise<void> {
    this.sending = this.sending.then(async () => {
      const m = await msg;
      if (this.alive) await this.channel.write(m);
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

  /** The worker opened its data connection. */
  attach(link: TensorLink): void {
    this.link = link;
    for (const wake of this.linkWaiters.splice(0)) wake(link);
  }

  get attached(): boolean {
    return this.link !== null;
  }

  /** The data connection, once the worker has opened it; null if the session ends first. */
  linked(): Promise<TensorLink | null> {
    if (this.link || !this.alive) return Promise.resolve(this.link);
    return new Promise((resolve) => this.linkWaiters.push(resolve));
  }

  end(): void {
    this.channel.end();
    this.release();
  }

  fail(err: Error): void {
    this.alive = false;
    this.channel.fail(err);
    this.release();
  }

  /** The session is over: close its data connection (or stop waiting for it). */
  release(): void {
    this.link?.close();
    for (const wake of this.linkWaiters.splice(0)) wake(null);
  }
}
