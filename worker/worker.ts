// A worker: joins the coordinator, then does what it is told, in order, until
// told to finish. Welcome → build the model and open the data connection
// (data-link.ts) when it names a data port; parameters (frames there, or
// chunks on the stream) → update variables; examples → cache; Step → wait for
// the parameters of its version, then gradients of the mean loss over the
// slice, each sent as soon as it is read back (float32 or float16, as Welcome
// says), then StepDone; Eval → BatchNorm statistics estimated at its version
// when it names examples for them, then accuracy and loss over the slice. A session that ends without Finish is
// joined again with backoff (core/wire/reconnect.ts). Only the coordinator logs
// progress; a worker logs joining, leaving and reconnecting.
import * as tf from '@tensorflow/tfjs';
import * as grpc from '@grpc/grpc-js';
import { hostname } from 'node:os';
import { BackendName, initBackend } from '../core/backend/backends';
import { DEFAULT_KEEPALIVE_SECONDS, keepalive, writeWithBackpressure } from '../core/wire/backpressure';
import { fitsFloat16 } from '../core/wire/fp16';
import { JobConfig, parseJob } from '../core/job/config';
import { ConnectionLost, JobFailed } from '../core/errors';
import { evaluateRange, makeBatch, streamGradients } from '../core/train/gradients';
import { prepareData } from '../core/job/data';
import { startHttpServer } from '../core/observe/http-server';
import { logger, setLogContext } from '../core/observe/log';
import { cleartextTokenWarning, clientCredentials, ClientTls, tokenMetadata } from '../core/wire/security';
import { Metrics } from '../core/observe/metrics';
import { estimateStatistics, freezeStatistics, statisticsBatches } from '../core/model/batch-norm';
import { paramSpecs, writeParams } from '../core/model/params';
import { CHUNK_BYTES, chunksOf, MAX_MESSAGE_BYTES, TensorAssembler, wireBytes } from '../core/wire/tensors';
import { CoordinatorClient, CoordinatorMessage, DType, Eval, Split, Step, Welcome, WorkerMessage } from '../proto/gen/tunefleet/v1/tunefleet';
import { DataLink, Dialing, ParamSink } from './data-link';
import { ShardLinkFailed, ShardLinks } from './shard-links';
import { ExampleCache } from './example-cache';
import { keepJoining } from '../core/wire/reconnect';

const log = logger('worker');

type Call = grpc.ClientDuplexStream<WorkerMessage, CoordinatorMessage>;

export class WorkerJob {
  /** Each variable's shape, by name (looked up per gradient tensor, so built once). */
  private readonly shapes: Map<string, number[]>;
  /** How gradient frames name a variable: its index in Welcome.trainable. */
  private readonly trainableIndex: Map<string, number>;
  /** With shards: the parameter version last written into the model (-1: none yet, so every variable). */
  private written = -1;
  /** The version BatchNorm statistics were last estimated at (-1: not since the last step, whose forward pass moved tfjs's averages). */
  private statisticsAt = -1;

  private constructor(
    readonly model: tf.LayersModel,
    readonly welcome: Welcome,
    /** The job's config as the Welcome carries it (credentials redacted). */
    readonly cfg: JobConfig,
    readonly params: TensorAssembler,
    readonly train: ExampleCache,
    readonly val: ExampleCache,
  ) {
    this.shapes = new Map(paramSpecs(model).map((p) => [p.name, p.shape]));
    this.trainableIndex = new Map(welcome.trainable.map((name, i) => [name, i]));
  }

  static async create(w: Welcome): Promise<WorkerJob> {
    const model = await tf.models.modelFromJSON({ modelTopology: JSON.parse(w.modelTopologyJson) } as tf.io.ModelJSON);
    freezeStatistics(model, w.frozenStatistics);
    const shape = w.exampleShape as [number, number, number];
    const cfg = parseJob(JSON.parse(w.jobConfigJson));
    let train = new ExampleCache(w.trainSize, shape), val = new ExampleCache(w.valSize, shape);
    if (w.localData) {
      const data = await prepareData(cfg);
      train = ExampleCache.full(data.train);
      val = ExampleCache.full(data.val);
    }
    return new WorkerJob(model, w, cfg, new TensorAssembler(paramSpecs(model)), train, val);
  }

  /** The job of a new session's Welcome; the previous session's model is freed first (tfjs tensors are not garbage collected). */
  static async replace(previous: WorkerJob | null, w: Welcome): Promise<WorkerJob> {
    previous?.dispose();
    return WorkerJob.create(w);
  }

  dispose(): void {
    this.model.dispose();
  }

  get norm() {
    return { mean: this.welcome.normMean, std: this.welcome.normStd };
  }

  onParam(chunk: Parameters<TensorAssembler['add']>[0]): void {
    const done = this.params.add(chunk);
    if (done) this.onParamComplete(done);
  }

  private onParamComplete(name: string): void {
    writeParams(this.model, new Map([[name, this.params.tensors.get(name)!]]));
  }

  /** Where this job's parameter frames land (data plane). */
  paramSink(metrics: Metrics): ParamSink {
    return {
      params: this.params, names: [...this.shapes.keys()],
      received: (bytes) => metrics.traffic('received', 'parameters', bytes, 'tcp'),
      completed: (name) => this.onParamComplete(name),
    };
  }

  /** How the job's data connections are opened: `tls`, and the job's cluster.stallSeconds for every write. */
  dialing(tls: ClientTls): Dialing {
    return { tls, stallSeconds: this.cfg.cluster.stallSeconds };
  }

  /** Open a connection to every parameter shard the Welcome names. */
  openShards(tls: ClientTls, metrics: Metrics): Promise<ShardLinks> {
    return ShardLinks.open(this.welcome, paramSpecs(this.model), this.params.tensors, this.dialing(tls), metrics);
  }

  /** Wait until the parameters of `version` are here: from the shards (then written into the model), on the data connection, or (gRPC) already. */
  private async paramsAt(version: number, { link, shards }: Links): Promise<void> {
    if (shards) {
      await shards.paramsAt(version);
      if (this.written === version) return;
      const trainable = new Map(this.welcome.trainable.map((name) => [name, this.params.tensors.get(name)!]));
      writeParams(this.model, this.written < 0 ? this.params.tensors : trainable);
      this.written = version;
    } else if (link) {
      await link.paramsAt(version);
    } else {
      this.params.reset(); // on the stream every parameter of this version arrived before its Step
    }
  }

  /** Compute the slice's gradients and send them, each as soon as it is read back: to the shards, as frames on the data connection, or as chunks on the gRPC stream. */
  async step(s: Step, send: (m: WorkerMessage) => Promise<void>, metrics: Metrics, links: Links): Promise<void> {
    await this.paramsAt(s.version, links);
    this.statisticsAt = -1;
    log.debug('step', { step: s.step, version: s.version, examples: s.indices.length });
    const { link, shards } = links;
    const started = process.hrtime.bigint();
    const { loss, grads } = await streamGradients(this.model, this.welcome.trainable, makeBatch(this.train.ds, s.indices, this.norm));
    let computeSeconds = secondsSince(started);
    for await (const [name, g] of timed(grads, (seconds) => { computeSeconds += seconds; })) {
      const dtype = this.welcome.gradientDtype === DType.FLOAT16 && !fitsFloat16(g) ? DType.FLOAT32 : this.welcome.gradientDtype;
      if (shards) {
        shards.sendGradient(s.step, s.version, name, g, dtype, metrics);
        continue;
      }
      if (link) {
        const bytes = wireBytes(g, dtype);
        metrics.traffic('sent', 'gradients', bytes.length, 'tcp');
        await link.sendGradient(s.step, s.version, this.trainableIndex.get(name)!, dtype, bytes);
        continue;
      }
      for (const chunk of chunksOf(name, this.shapes.get(name)!, g, CHUNK_BYTES, dtype)) {
        metrics.traffic('sent', 'gradients', chunk.data.length);
        await send({ kind: { $case: 'gradient', value: chunk } });
      }
    }
    const shardSquares = (await shards?.flushed()) ?? [];
    metrics.examplesComputed(s.indices.length);
    metrics.workerCompute(this.welcome.workerId, computeSeconds, s.indices.length);
    await send({ kind: { $case: 'stepDone', value: { step: s.step, version: s.version, examples: s.indices.length, loss, computeSeconds, shardSquares } } });
  }

  async eval(e: Eval, links: Links): Promise<WorkerMessage> {
    await this.paramsAt(e.version, links);
    if (e.statisticsIndices.length > 0 && this.statisticsAt !== e.version) {
      const batches = statisticsBatches(this.train.ds, Uint32Array.from(e.statisticsIndices), this.cfg.train.batchSize, this.norm);
      await estimateStatistics(this.model, batches, this.welcome.frozenStatistics);
      this.statisticsAt = e.version;
    }
    const r = await evaluateRange(this.model, this.val.ds, e.indices, this.norm);
    return { kind: { $case: 'evalDone', value: { evalId: e.evalId, examples: r.count, correct: r.correct, lossSum: r.loss * r.count } } };
  }
}

/** Where a session's tensors travel besides its gRPC stream. */
interface Links {
  /** The coordinator's data connection; null: tensors on the gRPC stream, or shards. */
  link: DataLink | null;
  /** The parameter shards' connections; null: the job has none. */
  shards: ShardLinks | null;
}

const secondsSince = (t: bigint) => Number(process.hrtime.bigint() - t) / 1e9;

/** `items`, adding the time each takes to produce to `add` (a gradient's read-back is compute; sending it is not). */
async function* timed<T>(items: AsyncGenerator<T>, add: (seconds: number) => void): AsyncGenerator<T> {
  try {
    for (;;) {
      const t = process.hrtime.bigint();
      const next = await items.next();
      add(secondsSince(t));
      if (next.done) return;
      yield next.value;
    }
  } finally {
    await items.return(undefined);
  }
}

export interface WorkerOptions {
  backend?: BackendName;
  id?: string;
  /** Port for /metrics, /healthz, /readyz; null = off. */
  metricsPort?: number | null;
  /** Address that server binds (default every interface). */
  metricsHost?: string;
  /** The shared token (see core/wire/security.ts); null = none. */
  token?: string | null;
  tls?: ClientTls;
  /** Keep trying to (re)join for this long after losing the coordinator; 0 = give up at once. */
  reconnectSeconds?: number;
  /** gRPC keepalive: a coordinator that does not answer a ping within this long is lost (the worker joins again). */
  keepaliveSeconds?: number;
}

/**
 * Run one worker until the coordinator says the job is finished. A lost
 * session is joined again with backoff (core/wire/reconnect.ts) under the same worker
 * id, for up to `reconnectSeconds` without a successful join.
 */
export async function runWorker(address: string, opts: WorkerOptions = {}): Promise<void> {
  const backend = await initBackend(opts.backend);
  const metrics = new Metrics('', 'worker');
  const state: SessionState = { id: opts.id ?? '', job: null, link: null, shards: null, leaving: false, leave: null };
  // SIGTERM (a scale-down, a drained node): finish the slice under way, say Leave, exit 0. A second one does not wait.
  const onTerm = () => {
    if (state.leaving) process.exit(143);
    state.leaving = true;
    log.info('leaving', { worker: state.id, reason: 'SIGTERM', after: 'the slice under way' });
    state.leave?.();
  };
  process.on('SIGTERM', onTerm);
  const http = opts.metricsPort === null || opts.metricsPort === undefined ? null : await startHttpServer(metrics, opts.metricsHost ?? '0.0.0.0', opts.metricsPort, { ready: () => state.job !== null });
  const client = new CoordinatorClient(address, clientCredentials(opts.tls ?? {}), {
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES, 'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    ...keepalive(opts.keepaliveSeconds ?? DEFAULT_KEEPALIVE_SECONDS),
  });
  const cleartext = cleartextTokenWarning(opts.token ?? null, Boolean(opts.tls?.ca || opts.tls?.cert), 'worker');
  if (cleartext) log.warn('INSECURE', { problem: cleartext });
  try {
    await keepJoining(address, opts.reconnectSeconds ?? 300, log, async (joined) => {
      const call = client.session(tokenMetadata(opts.token ?? null));
      try {
        await runSession(call, state, { address, backend, metrics, tls: opts.tls ?? {}, joined });
      } catch (err) {
        call.cancel(); // the session is over on our side too, whatever ended it
        state.job?.dispose();
        state.job = null;
        closeLinks(state);
        throw err;
      }
    });
  } finally {
    process.off('SIGTERM', onTerm);
    client.close();
    http?.close();
  }
}

interface SessionState extends Links {
  id: string; // '' until the coordinator assigns one; reused when joining again
  job: WorkerJob | null;
  /** SIGTERM came: leave once the slice under way is done. */
  leaving: boolean;
  /** Say Leave now, if no slice is under way (set while a session runs). */
  leave: (() => void) | null;
}

function closeLinks(state: SessionState): void {
  state.link?.close();
  state.link = null;
  state.shards?.close();
  state.shards = null;
}

interface SessionContext {
  address: string;
  backend: string;
  metrics: Metrics;
  tls: ClientTls;
  /** The coordinator welcomed this session (core/wire/reconnect.ts counts the give-up time from its end). */
  joined: () => void;
}

/** The host part of a `host:port` address (`[::1]:7070` → `::1`). */
export function hostOf(address: string): string {
  return address.slice(0, address.lastIndexOf(':')).replace(/^\[(.*)\]$/, '$1');
}

/** `work`, whose failure on a shard's link the coordinator is told of (which shard, and how) before the session ends as any failure ends it. */
async function namingShard<T>(work: Promise<T>, send: (m: WorkerMessage) => Promise<void>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    if (err instanceof ShardLinkFailed) await send({ kind: { $case: 'shardTrouble', value: { slot: err.slot, details: err.message } } }).catch(() => {});
    throw err;
  }
}

/** One session: join, then do what the coordinator says until Finish (resolves) or the stream ends (throws). */
async function runSession(call: Call, state: SessionState, { address, backend, metrics, tls, joined }: SessionContext): Promise<void> {
  // A write waiting for 'drain' must not outlive the call: when the
  // coordinator ends it (a deadline, a restart) no 'drain' comes, and the
  // process would otherwise go quiet and exit 0 with the session abandoned.
  const ended = new Promise<never>((_, reject) => call.once('error', reject));
  ended.catch(() => {}); // surfaced by whichever await loses the race, or by the read loop
  // Bounded by the job's cluster.stallSeconds once a Welcome said it (the Join by the default).
  const send = (m: WorkerMessage) => Promise.race([writeWithBackpressure(call, m, state.job?.cfg.cluster.stallSeconds), ended]);
  let busy = false, said = false;
  const leave = () => {
    if (said) return;
    said = true;
    void send({ kind: { $case: 'leave', value: { reason: 'SIGTERM' } } }).then(() => call.end(), () => {});
  };
  state.leave = () => { if (!busy) leave(); };
  if (state.leaving) return; // SIGTERM between sessions: nothing to leave
  await send({ kind: { $case: 'join', value: { workerId: state.id, backend, device: `${hostname()}/${backend}`, capacity: 1 } } });
  for await (const msg of call as AsyncIterable<CoordinatorMessage>) {
    if (said) continue; // after Leave nothing more is done: the coordinator hands what it sent since to others, then ends the stream
    busy = true;
    if (await handle(msg)) return; // Finish: the job is over
    busy = false;
    if (state.leaving) leave(); // the coordinator ends the stream when it has taken the Leave
  }
  if (state.leaving) return log.info('left', { worker: state.id, coordinator: address });
  throw new ConnectionLost(`coordinator ${address} closed the session without finishing the job`);

  /** One message from the coordinator; true when it says the job is finished. */
  async function handle(msg: CoordinatorMessage): Promise<boolean> {
    const kind = msg.kind;
    if (kind?.$case === 'welcome') {
      const w = kind.value;
      state.job = await WorkerJob.replace(state.job, w);
      closeLinks(state);
      const host = hostOf(address);
      state.link = w.dataPort ? await DataLink.open(host, w.dataPort, w.dataTicket, state.job.dialing(tls), state.job.paramSink(metrics), DataLink.coordinatorUnreachable(host, w.dataPort)) : null;
      state.shards = w.shards.length > 0 ? await state.job.openShards(tls, metrics) : null;
      state.id = kind.value.workerId;
      setLogContext({ id: state.id });
      joined();
      metrics.setJob(kind.value.job);
      log.info('joined', { worker: kind.value.workerId, job: kind.value.job, coordinator: address, backend });
      return false;
    }
    if (kind?.$case === 'finish') {
      log.info('finished', { reason: kind.value.reason });
      closeLinks(state);
      call.end();
      return true;
    }
    const job = state.job;
    if (!job) throw new JobFailed(`coordinator sent ${kind?.$case} before Welcome`);
    switch (kind?.$case) {
      case 'param': metrics.traffic('received', 'parameters', kind.value.data.length); job.onParam(kind.value); break;
      case 'examples': metrics.traffic('received', 'data', kind.value.images.length); (kind.value.split === Split.TRAIN ? job.train : job.val).add(kind.value); break;
      // Raced with the session's end: a step waiting on a stalled shard (or a
      // data connection) must not outlive the session the coordinator ended.
      case 'step': await namingShard(Promise.race([job.step(kind.value, send, metrics, state), ended]), send); break;
      case 'eval': await send(await namingShard(Promise.race([job.eval(kind.value, state), ended]), send)); break;
    }
    return false;
  }
}
