// What `tunefleet status` shows (the GetStatus RPC): the job's progress, kept
// current from its events, and each live worker's recent training slices —
// how many, how long per example (from being handed out to the answer, as
// the slice deadline measures them), when last heard of. A worker over twice
// the other workers' median time per example is marked a straggler: the same
// facts as the metrics, without needing Prometheus.
import { TrainingEvent } from '../core/observe/events';
import { median } from '../core/util/numbers';
import { JobStatus, ShardStatus, WorkerStatus } from '../proto/gen/tunefleet/v1/tunefleet';
import { Clock } from './clock';

const RECENT = 20; // slices per worker the median is over
const STRAGGLER = 2; // × the other workers' median seconds per example

interface WorkerRecord {
  backend: string;
  device: string;
  slices: number;
  perExample: number[];
  seen: number; // clock ms
}

export class StatusBoard {
  private readonly job;
  private readonly workers = new Map<string, WorkerRecord>();

  /** `plan`: the job's length and where it starts (known before the first step); `shards`: every slot's state, with cluster.shards. */
  constructor(private readonly name: string, private readonly clock: Clock, plan = { iterations: 0, startIteration: 0 }, private readonly shards: () => ShardStatus[] = () => []) {
    this.job = { state: 'waiting for workers', iteration: plan.startIteration, iterations: plan.iterations, batchSize: 0, examplesPerSecond: 0, valAccuracy: null as number | null };
  }

  /** Step `iteration` (0-based) starts: that many are done. Progress events come every logEvery steps only. */
  stepping(iteration: number): void {
    this.job.iteration = iteration;
  }

  /** Subscribe this to the job's EventBus. */
  readonly onEvent = (e: TrainingEvent): void => {
    const job = this.job;
    switch (e.type) {
      case 'job.started': Object.assign(job, { state: 'training', iterations: e.iterations, iteration: e.startIteration, batchSize: e.batchSize }); break;
      case 'progress': Object.assign(job, { iteration: e.iteration, examplesPerSecond: e.examplesPerSec }); break;
      case 'evaluation': Object.assign(job, { iteration: e.iteration, valAccuracy: e.valAccuracy }); break;
      case 'job.finished': Object.assign(job, { state: 'finished', iteration: e.iteration }); break;
      case 'job.failed': job.state = 'failed'; break;
      case 'shard.lost': if (job.state === 'training') job.state = 'waiting for a shard'; break; // nothing steps until the slot is taken again
      case 'job.rewound': job.state = 'training'; Object.assign(job, { iteration: e.iteration }); break;
      default: break;
    }
  };

  joined(worker: string, backend: string, device: string): void {
    this.workers.set(worker, { backend, device, slices: 0, perExample: [], seen: this.clock.now() });
  }

  left(worker: string): void {
    this.workers.delete(worker);
  }

  /** `worker` answered a training slice of `examples` examples after `seconds`. */
  sliceDone(worker: string, seconds: number, examples: number): void {
    const w = this.workers.get(worker);
    if (!w) return;
    w.slices++;
    w.perExample.push(seconds / examples);
    if (w.perExample.length > RECENT) w.perExample.shift();
    w.seen = this.clock.now();
  }

  /** The state as status shows it: training with no live worker is waiting for workers. */
  private get state(): string {
    return this.job.state === 'training' && this.workers.size === 0 ? 'waiting for workers' : this.job.state;
  }

  /** Why the job cannot make progress now (/healthz answers 503 with it), or null. */
  unhealthy(): string | null {
    const { state } = this;
    if (state === 'waiting for a shard') return 'waiting for a shard: nothing steps until every cluster.shards slot is taken again (tunefleet status, shard.lost events)';
    if (state === 'failed') return 'the job failed (see the coordinator log)';
    if (state === 'waiting for workers' && this.job.state === 'training') return 'no live worker: the job waits for one to join';
    return null;
  }

  report(): JobStatus {
    const { job } = this;
    const left = (job.iterations - job.iteration) * job.batchSize;
    const rows = [...this.workers].map(([id, w]) => ({ id, w, perExample: median(w.perExample) }));
    const measured = rows.filter((r) => r.w.perExample.length > 0);
    const workers: WorkerStatus[] = rows.map(({ id, w, perExample }) => {
      const others = median(measured.filter((r) => r.id !== id).map((r) => r.perExample));
      return {
        workerId: id, backend: w.backend, device: w.device, slicesDone: w.slices,
        medianSecondsPerExample: perExample,
        secondsSinceSeen: (this.clock.now() - w.seen) / 1000,
        straggler: others > 0 && perExample > STRAGGLER * others,
      };
    });
    const state = this.state;
    return {
      job: this.name, state, iteration: job.iteration, iterations: job.iterations,
      examplesPerSecond: job.examplesPerSecond,
      etaSeconds: job.examplesPerSecond > 0 && state === 'training' ? left / job.examplesPerSecond : 0,
      evaluated: job.valAccuracy !== null, validationAccuracy: job.valAccuracy ?? 0,
      workers, shards: this.shards(),
    };
  }
}
