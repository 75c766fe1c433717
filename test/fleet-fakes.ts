// Fakes for the coordinator's transport-free modules: a worker whose Channel is an array and whose behaviour in a step
// is one of the fault modes, and a tiny job (two trainable tensors, eight
// 1×1×1 examples) to build a Cluster on without tfjs or gRPC.
import { Clock } from '../coordinator/clock';
import { FakeClock } from './fake-clock';
import { Cluster } from '../coordinator/cluster';
import { Channel, WorkerSession } from '../coordinator/session';
import { Dataset } from '../core/data/dataset';
import { parseJob } from '../core/job/config';
import { resolveMultipliers } from '../core/train/lr-rules';
import { EventBus } from '../core/observe/events';
import { Metrics } from '../core/observe/metrics';
import { Sgd } from '../core/train/optimizer';
import { FrameKind } from '../core/wire/frames';
import { chunksOf } from '../core/wire/tensors';
import { CoordinatorMessage, DType, Eval, Step } from '../proto/gen/tunefleet/v1/tunefleet';

export const SPECS = [{ name: 'dense/kernel', shape: [2] }, { name: 'dense/bias', shape: [1] }];

/**
 * A worker's mean gradient over its slice, a function of the examples alone
 * (kernel: [mean k, mean k²], bias: [mean (10 − k)] for example indices k), so
 * the step's mean over the global batch can be computed by hand whoever
 * computed which slice.
 */
export function sliceGradient(indices: number[]): Map<string, Float32Array> {
  const mean = (f: (k: number) => number) => indices.reduce((a, k) => a + f(k), 0) / indices.length;
  return new Map([
    ['dense/kernel', Float32Array.of(mean((k) => k), mean((k) => k * k))],
    ['dense/bias', Float32Array.of(mean((k) => 10 - k))],
  ]);
}

/** What a worker does with a step assignment. */
export type Behaviour =
  | 'ok'
  | 'fail-before-sending' // its session ends as the assignment arrives
  | 'fail-mid-gradient' // one chunk, then its session ends
  | 'fail-after-done' // answers, then its session ends
  | 'straggle' // never answers
  | 'nan-gradient' // sends a NaN (a bad message)
  | 'poison'; // sends a finite but absurd gradient (every value 3e38)

export class FakeWorker implements Channel {
  readonly inbox: CoordinatorMessage[] = [];
  failedWith: Error | null = null;
  private handled = 0;

  constructor(readonly id: string, private readonly cluster: Cluster, public behaviour: Behaviour = 'ok') {}

  async write(msg: CoordinatorMessage): Promise<void> {
    this.inbox.push(msg);
  }

  end(): void {}

  fail(err: Error): void {
    this.failedWith = err;
  }

  /** Set by joinWorker. */
  session: WorkerSession | null = null;

  get gone(): boolean {
    return !this.session?.alive;
  }

  /** Step and Eval assignments received and not acted on yet. */
  private pending(): (Step | Eval)[] {
    const tasks = this.inbox.flatMap((m) => (m.kind?.$case === 'step' || m.kind?.$case === 'eval' ? [m.kind.value] : []));
    return tasks.slice(this.handled);
  }

  /**
   * On the data plane (joinDataWorker), in which order this worker's frames
   * and StepDones reach the coordinator when it answers everything pending:
   * every slice's frames before any StepDone (a later upload overtakes an
   * earlier StepDone), or every StepDone before any frame.
   */
  order: 'frames-first' | 'stepdone-first' | null = null;

  /** Act on every new assignment as the behaviour says, as server.ts would deliver it; true if anything happened. */
  act(): boolean {
    const todo = this.gone ? [] : this.pending();
    if (this.order) return this.answerOnDataPlane(todo as Step[]);
    for (const task of todo) {
      if (this.gone) break;
      this.handled++;
      if ('evalId' in task) this.evaluate(task);
      else this.answer(task);
    }
    return todo.length > 0;
  }

  /** An evaluation slice: "correct" on even example indices, loss k for example k. */
  private evaluate(e: Eval): void {
    const b = this.behaviour;
    if (b === 'straggle') return;
    if (b !== 'ok' && b !== 'fail-after-done') return this.cluster.leave(this.id, 'stream ended');
    const correct = e.indices.filter((k) => k % 2 === 0).length;
    this.cluster.evaluations.onEvalDone(this.id, { evalId: e.evalId, examples: e.indices.length, correct, lossSum: e.indices.reduce((a, k) => a + k, 0) });
    if (b === 'fail-after-done') this.cluster.leave(this.id, 'stream ended');
  }

  private answer(step: Step): void {
    const c = this.cluster;
    const b = this.behaviour;
    if (b === 'straggle') return;
    if (b === 'fail-before-sending') return c.leave(this.id, 'stream ended');
    const grads = sliceGradient(step.indices);
    if (b === 'nan-gradient') grads.get('dense/bias')![0] = NaN;
    if (b === 'poison') for (const g of grads.values()) g.fill(3e38);
    const chunks = SPECS.flatMap((s) => [...chunksOf(s.name, s.shape, grads.get(s.name)!, 4, DType.FLOAT32)]);
    for (const chunk of chunks) {
      if (!this.deliver(() => c.steps.onGradient(this.id, chunk))) return;
      if (b === 'fail-mid-gradient') return c.leave(this.id, 'stream ended');
    }
    const loss = sliceGradient(step.indices).get('dense/kernel')![0];
    if (!this.deliver(() => c.steps.onStepDone(this.id, { step: step.step, version: step.version, examples: step.indices.length, loss, computeSeconds: 0.01, shardSquares: [] }))) return;
    if (b === 'fail-after-done') c.leave(this.id, 'stream ended');
  }

  /** Every pending slice answered 'ok', its gradient as frames (as core/wire/data-plane.ts delivers them), in `order`. */
  private answerOnDataPlane(steps: Step[]): boolean {
    const c = this.cluster;
    this.handled += steps.length;
    const frames = steps.map((step) => () => SPECS.forEach((s, tensor) => {
      for (const chunk of chunksOf(s.name, s.shape, sliceGradient(step.indices).get(s.name)!, 4, DType.FLOAT32)) {
        const h = { kind: FrameKind.GRADIENT, dtype: DType.FLOAT32, tensor, step: step.step, version: step.version, offset: chunk.offset, length: chunk.data.length };
        this.deliver(() => { c.steps.gradientTarget(this.id, h).set(chunk.data); c.steps.gradientLanded(this.id, h); });
      }
    }));
    const dones = steps.map((step) => () => this.deliver(() => c.steps.onStepDone(this.id, {
      step: step.step, version: step.version, examples: step.indices.length, loss: sliceGradient(step.indices).get('dense/kernel')![0], computeSeconds: 0.01, shardSquares: [],
    })));
    for (const send of this.order === 'frames-first' ? [...frames, ...dones] : [...dones, ...frames]) send();
    return steps.length > 0;
  }

  /** Hand one message to the cluster as server.ts does: a throw ends this session. False if it did. */
  private deliver(handle: () => void): boolean {
    try {
      handle();
      return true;
    } catch (err) {
      this.cluster.drop(this.id, err as Error);
      return false;
    }
  }

  /** How many times each parameter's bytes were sent to this worker. */
  paramSends(): Map<string, number> {
    const out = new Map<string, number>();
    for (const m of this.inbox) if (m.kind?.$case === 'param' && m.kind.value.offset === 0) out.set(m.kind.value.name, (out.get(m.kind.value.name) ?? 0) + 1);
    return out;
  }
}

/** A Cluster over eight 1×1×1 training examples (`valSize` for validation) and two trainable tensors. */
export function fakeCluster(clock: Clock = new FakeClock(), valSize = 8, job: { cluster?: object; metrics?: object; train?: object } = {}): Cluster {
  const ds = (n: number): Dataset => ({ images: Uint8Array.from({ length: n }, (_, i) => i), labels: Int32Array.from({ length: n }, (_, i) => i % 2), shape: [1, 1, 1], numClasses: 2 });
  const cfg = parseJob({ name: 'fake', cluster: { sliceDeadline: { seconds: 10 }, ...job.cluster }, metrics: { port: null, ...job.metrics }, train: job.train });
  return new Cluster({
    cfg,
    data: { train: ds(8), val: ds(valSize), norm: { mean: [0], std: [1] } },
    specs: SPECS,
    trainable: SPECS.map((s) => s.name),
    multipliers: resolveMultipliers(SPECS.map((s) => s.name), cfg.optimizer.layers),
    statistics: { frozen: [], indices: new Uint32Array(0) },
    startIteration: 0,
    params: new Map(SPECS.map((s) => [s.name, new Float32Array(s.shape[0])])),
    sgd: new Sgd(cfg.optimizer, new Map()),
    ledger: [],
    events: new EventBus('fake'),
    metrics: new Metrics('fake', 'coordinator'),
    model: { toJSON: () => ({}) as never },
  }, { localData: false, clock });
}

export function joinWorker(cluster: Cluster, id: string, behaviour: Behaviour = 'ok'): FakeWorker {
  const w = new FakeWorker(id, cluster, behaviour);
  w.session = cluster.join({ workerId: id, backend: 'fake', device: 'fake', capacity: 1 }, w);
  return w;
}

/** A worker whose tensors travel on a data connection (a fake TensorLink), answering in `order`. */
export function joinDataWorker(cluster: Cluster, id: string, order: 'frames-first' | 'stepdone-first'): FakeWorker {
  if (cluster.dataPlanePort === null) cluster.useDataPlane(7071);
  const w = joinWorker(cluster, id);
  w.order = order;
  w.session!.attach({ sendParam: async () => {}, paramsDone: async () => {}, flushed: async () => {}, close: () => {} });
  return w;
}

/** Let queued hand-outs (promise chains) run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise<void>((r) => setImmediate(r));
}
