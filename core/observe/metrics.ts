// Prometheus metrics. The only module that imports prom-client. Each process
// (coordinator, worker, shard) has its own registry and serves it at
// /metrics. A series is exported only by the roles that own it (OWNERS): a
// worker has no validation accuracy to report, and exporting the
// coordinator's gauges as 0 drew a flat line per worker on every panel.
// Naming: one `tunefleet_` prefix, base units (seconds, bytes), `_total` for
// counters; labels are bounded (job, phase, kind, reason, worker id, layer
// group) — never an example index or a step number.
import * as client from 'prom-client';
import { TrainingEvent } from './events';
import { RejectReason } from '../errors';

const STEP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export const PHASES = ['compute', 'upload', 'aggregate_update', 'broadcast', 'wait_slowest'] as const;
export type Phase = (typeof PHASES)[number];
export type TrafficKind = 'parameters' | 'gradients' | 'data';

type Role = 'coordinator' | 'worker' | 'shard';
const COORDINATOR: Role[] = ['coordinator'];
/** Who exports what; anything not listed is the coordinator's. */
const OWNERS: Record<string, Role[]> = {
  tunefleet_examples_trained_total: ['coordinator', 'worker'],
  tunefleet_sent_bytes_total: ['coordinator', 'worker', 'shard'],
  tunefleet_received_bytes_total: ['coordinator', 'worker', 'shard'],
  tunefleet_rejected_messages_total: ['coordinator', 'shard'],
  tunefleet_worker_compute_seconds: ['coordinator', 'worker'],
  tunefleet_worker_examples_per_second: ['coordinator', 'worker'],
  tunefleet_shard_seconds: ['shard'],
};

export class Metrics {
  readonly registry = new client.Registry();
  private readonly m;
  /** The backend each live worker's tunefleet_worker_info series is labelled with. */
  private readonly backends = new Map<string, string>();

  constructor(job: string, private readonly role: Role) {
    this.registry.setDefaultLabels({ job_name: job, role });
    client.collectDefaultMetrics({ register: this.registry, prefix: 'tunefleet_process_' });
    // prom-client names three of its gauges `*_total`, which Prometheus
    // reserves for counters (promtool flags them); leave those out.
    for (const name of ['active_handles_total', 'active_requests_total', 'active_resources_total']) {
      this.registry.removeSingleMetric(`tunefleet_process_nodejs_${name}`);
    }
    // A metric another role owns still exists (updating it costs nothing) but is in no registry.
    const registers = (name: string) => ((OWNERS[name] ?? COORDINATOR).includes(role) ? [this.registry] : []);
    const counter = (name: string, help: string, labelNames: string[] = []) => new client.Counter({ name, help, labelNames, registers: registers(name) });
    const gauge = (name: string, help: string, labelNames: string[] = []) => new client.Gauge({ name, help, labelNames, registers: registers(name) });
    this.m = {
      examples: counter('tunefleet_examples_trained_total', 'Training examples whose gradients were applied (coordinator) or computed (worker).'),
      throughput: gauge('tunefleet_examples_per_second', 'Training throughput over the last logging window.'),
      iteration: gauge('tunefleet_iteration', 'Optimizer steps completed.'),
      epoch: gauge('tunefleet_epoch', 'Current epoch of the training set (0-based).'),
      stepPhase: new client.Histogram({ name: 'tunefleet_step_phase_seconds', help: 'Time per training step spent in each phase: compute (slowest worker), upload (gradients, slowest worker), aggregate_update (averaging and SGD), broadcast (parameters and data to workers), wait_slowest (first to last worker done).', labelNames: ['phase'], buckets: STEP_BUCKETS, registers: registers('tunefleet_step_phase_seconds') }),
      step: new client.Histogram({ name: 'tunefleet_step_seconds', help: 'Wall time of one whole training step.', buckets: STEP_BUCKETS, registers: registers('tunefleet_step_seconds') }),
      trainLoss: gauge('tunefleet_train_loss', 'Mean training loss over the last logging window.'),
      valAccuracy: gauge('tunefleet_validation_accuracy_ratio', 'Validation accuracy (0..1) at the last evaluation.'),
      valLoss: gauge('tunefleet_validation_loss', 'Validation loss at the last evaluation.'),
      targetIteration: gauge('tunefleet_target_reached_iteration', 'Iteration at which train.targetAccuracy was first reached (absent until then).'),
      targetSeconds: gauge('tunefleet_target_reached_seconds', 'Wall seconds from job start until train.targetAccuracy was first reached.'),
      lr: gauge('tunefleet_learning_rate', 'Effective learning rate per layer group (base rate × lr_mult; group = the matching rule).', ['group']),
      gradNorm: gauge('tunefleet_gradient_norm', 'L2 norm of the averaged gradient of the last step.'),
      skipped: counter('tunefleet_steps_skipped_total', 'Steps not applied because their gradient norm was a spike (train.spikeGuard).'),
      workersLive: gauge('tunefleet_workers_live', 'Workers with an open session.'),
      joins: counter('tunefleet_worker_joins_total', 'Workers that joined.'),
      leaves: counter('tunefleet_worker_leaves_total', 'Workers that left on purpose: told to stop (SIGTERM, Leave) or when the job finished.'),
      losses: counter('tunefleet_worker_losses_total', 'Workers lost mid-job (stream ended, crashed, rejected).'),
      sent: counter('tunefleet_sent_bytes_total', 'Bytes sent, by kind and plane (tcp: the data plane; grpc: the gRPC stream).', ['kind', 'plane']),
      received: counter('tunefleet_received_bytes_total', 'Bytes received, by kind and plane (tcp: the data plane; grpc: the gRPC stream).', ['kind', 'plane']),
      rejected: counter('tunefleet_rejected_messages_total', 'Messages rejected, by reason.', ['reason']),
      ckptSeconds: new client.Histogram({ name: 'tunefleet_checkpoint_seconds', help: 'Time to write a checkpoint.', buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60], registers: registers('tunefleet_checkpoint_seconds') }),
      ckptBytes: gauge('tunefleet_checkpoint_bytes', 'Size of the last checkpoint.'),
      workerCompute: new client.Histogram({ name: 'tunefleet_worker_compute_seconds', help: 'Per worker: gradient computation time per slice.', labelNames: ['worker'], buckets: STEP_BUCKETS, registers: registers('tunefleet_worker_compute_seconds') }),
      workerThroughput: gauge('tunefleet_worker_examples_per_second', 'Per worker: examples per second of gradient computation.', ['worker']),
      workerInfo: gauge('tunefleet_worker_info', 'Per worker: 1, labelled with its compute backend.', ['worker', 'backend']),
      shardsLive: gauge('tunefleet_shards_live', 'Parameter shards holding their slot (cluster.shards).'),
      rewinds: counter('tunefleet_rewinds_total', 'Times the job went back to its last checkpoint because a parameter shard was lost.'),
      shardSeconds: new client.Histogram({ name: 'tunefleet_shard_seconds', help: 'Parameter shard: time per step folding workers\' gradients into the mean (aggregate) and applying SGD to its pieces (update).', labelNames: ['phase'], buckets: STEP_BUCKETS, registers: registers('tunefleet_shard_seconds') }),
      eventsDropped: counter('tunefleet_events_dropped_total', 'Events that could not be published to NATS.'),
    };
  }

  /** Keep the event-driven metrics current: subscribe this to the job's EventBus. */
  readonly onEvent = (e: TrainingEvent): void => {
    const m = this.m;
    switch (e.type) {
      case 'progress': m.throughput.set(e.examplesPerSec); m.trainLoss.set(e.loss); break;
      case 'evaluation': m.valAccuracy.set(e.valAccuracy); m.valLoss.set(e.valLoss); break;
      case 'target.reached': m.targetIteration.set(e.iteration); m.targetSeconds.set(e.wallSeconds); break;
      case 'checkpoint.written': m.ckptSeconds.observe(e.seconds); m.ckptBytes.set(e.bytes); break;
      case 'step.skipped': m.skipped.inc(); break;
      case 'worker.joined': m.joins.inc(); m.workersLive.set(e.live); m.workerInfo.set({ worker: e.worker, backend: e.backend }, 1); this.backends.set(e.worker, e.backend); break;
      case 'worker.left': m.leaves.inc(); m.workersLive.set(e.live); this.forgetWorker(e.worker); break;
      case 'worker.lost': m.losses.inc(); m.workersLive.set(e.live); this.forgetWorker(e.worker); break;
      case 'shard.joined': case 'shard.lost': m.shardsLive.set(e.live); break;
      case 'job.rewound': m.rewinds.inc(); break;
      default: break;
    }
  };

  /**
   * Drop a gone worker's series, so a coordinator that sees thousands of
   * sessions over a job (or a flood of hostile ones) keeps only the live
   * workers' (Prometheus keeps their history).
   */
  private forgetWorker(worker: string): void {
    const m = this.m;
    m.workerCompute.remove({ worker });
    m.workerThroughput.remove({ worker });
    const backend = this.backends.get(worker);
    if (backend !== undefined) m.workerInfo.remove({ worker, backend });
    this.backends.delete(worker);
  }

  stepDone(iteration: number, epoch: number, examples: number, seconds: number, gradNorm: number): void {
    this.m.iteration.set(iteration);
    this.m.epoch.set(epoch);
    this.m.examples.inc(examples);
    this.m.step.observe(seconds);
    this.m.gradNorm.set(gradNorm);
  }

  phase(phase: Phase, seconds: number): void {
    this.m.stepPhase.observe({ phase }, seconds);
  }

  learningRates(byGroup: Map<string, number>): void {
    for (const [group, lr] of byGroup) this.m.lr.set({ group }, lr);
  }

  /** Bytes moved; `plane`: on the data plane's connection ('tcp') or the gRPC stream. */
  traffic(direction: 'sent' | 'received', kind: TrafficKind, bytes: number, plane: 'tcp' | 'grpc' = 'grpc'): void {
    this.m[direction].inc({ kind, plane }, bytes);
  }

  rejected(reason: RejectReason): void {
    this.m.rejected.inc({ reason });
  }

  /** A worker computed gradients over `examples` examples. */
  examplesComputed(examples: number): void {
    this.m.examples.inc(examples);
  }

  workerCompute(worker: string, seconds: number, examples: number): void {
    this.m.workerCompute.observe({ worker }, seconds);
    if (seconds > 0) this.m.workerThroughput.set({ worker }, examples / seconds);
  }

  shardWork(phase: 'aggregate' | 'update', seconds: number): void {
    this.m.shardSeconds.observe({ phase }, seconds);
  }

  eventDropped(): void {
    this.m.eventsDropped.inc();
  }

  /** Workers and shards learn their job's name only on joining. */
  setJob(job: string): void {
    this.registry.setDefaultLabels({ job_name: job, role: this.role });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
