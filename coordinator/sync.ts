// Bringing a worker up to date before it gets a slice: the parameters it
// lacks (everything on join; afterwards only the trainable tensors, once per
// version — frozen ones are never re-sent) and the examples it has not cached.
//
// Parameters go as frames on the session's data connection (data plane), or
// as chunks on its gRPC stream. Either way they are views into the
// optimizer's master copy, not copies. That is safe because the optimizer
// only updates after a round completes, and a round completes only after
// every worker in it has answered — which it can only do after receiving the
// parameters its assignment names (on the data plane it waits for their
// PARAMS_END frame). A session that ends first has its connection destroyed,
// and with it any write still queued.
import { JobData } from '../core/job/data';
import { ParamSpec } from '../core/model/params';
import { Metrics } from '../core/observe/metrics';
import { Tensors } from '../core/util/tensors';
import { FRAME_BYTES } from '../core/wire/frames';
import { CHUNK_BYTES, chunksOf, piecesOf, wireBytes } from '../core/wire/tensors';
import { DType, Split } from '../proto/gen/tunefleet/v1/tunefleet';
import { WorkerSession } from './session';

export interface Traffic {
  paramBytes: Map<string, number>; // by variable
  dataBytes: number;
  gradientBytes: number;
}

export class WorkerSync {
  readonly traffic: Traffic = { paramBytes: new Map(), dataBytes: 0, gradientBytes: 0 };
  /** Each variable's index in the model's variables: how PARAM frames name it. */
  private readonly index: Map<string, number>;

  constructor(
    private readonly params: Tensors,
    private readonly specs: { all: ParamSpec[]; trainable: ParamSpec[] },
    private readonly data: JobData | null, // null: workers load the dataset themselves
    private readonly metrics: Metrics,
  ) {
    this.index = new Map(specs.all.map((spec, i) => [spec.name, i]));
  }

  /** Send `s` the parameters it lacks to hold `version`. */
  async sendParams(s: WorkerSession, version: number): Promise<void> {
    if (s.version === version) return;
    const link = s.dataPlane ? await s.linked() : null;
    if (s.dataPlane && !link) return; // the session ended first; the round hears of it from the cluster
    for (const spec of s.version < 0 ? this.specs.all : this.specs.trainable) {
      const values = this.params.get(spec.name)!;
      if (link) {
        for (const { offset, data } of piecesOf(wireBytes(values, DType.FLOAT32), FRAME_BYTES)) {
          this.count(spec.name, data.length, 'tcp');
          await link.sendParam(this.index.get(spec.name)!, version, offset, data);
        }
        continue;
      }
      for (const chunk of chunksOf(spec.name, spec.shape, values)) {
        this.count(spec.name, chunk.data.length);
        await s.send({ kind: { $case: 'param', value: chunk } });
      }
    }
    await link?.paramsDone(version);
    s.version = version;
  }

  private count(name: string, bytes: number, plane: 'tcp' | 'grpc' = 'grpc'): void {
    this.traffic.paramBytes.set(name, (this.traffic.paramBytes.get(name) ?? 0) + bytes);
    this.metrics.traffic('sent', 'parameters', bytes, plane);
  }

  /** Send `s` the examples of `split` at `indices` it has not cached yet. */
  async sendExamples(s: WorkerSession, split: Split.TRAIN | Split.VALIDATION, indices: Uint32Array): Promise<void> {
    if (!this.data) return;
    const ds = split === Split.TRAIN ? this.data.train : this.data.val;
    const cached = s.cached[split];
    const missing = Array.from(indices).filter((i) => !cached[i]);
    const size = ds.shape[0] * ds.shape[1] * ds.shape[2];
    const perMessage = Math.max(1, Math.floor(CHUNK_BYTES / size));
    for (let at = 0; at < missing.length; at += perMessage) {
      const batch = missing.slice(at, at + perMessage);
      const images = new Uint8Array(batch.length * size);
      batch.forEach((idx, k) => images.set(ds.images.subarray(idx * size, (idx + 1) * size), k * size));
      this.traffic.dataBytes += images.length;
      this.metrics.traffic('sent', 'data', images.length);
      await s.send({ kind: { $case: 'examples', value: { split, indices: batch, images, labels: batch.map((i) => ds.labels[i]) } } });
      for (const i of batch) cached[i] = 1;
    }
  }
}
