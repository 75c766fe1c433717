// Training events: one discriminated union on `type`. The training loop and
// the coordinator emit them into an EventBus; subscribers (the live progress
// view, the NATS publisher) receive them in order. A subscriber that throws is
// logged and never stops training.
import { logger } from './log';

interface Base {
  job: string;
  time: string; // ISO 8601, set by the bus
}

export type TrainingEvent = Base & (
  | { type: 'job.started'; backend: string; iterations: number; startIteration: number; batchSize: number; trainExamples: number }
  | { type: 'job.finished'; iteration: number; valAccuracy: number | null; seconds: number }
  | { type: 'job.failed'; error: string }
  | { type: 'worker.joined'; worker: string; backend: string; live: number }
  | { type: 'worker.left'; worker: string; reason: string; live: number }
  | { type: 'worker.lost'; worker: string; reason: string; live: number }
  | { type: 'progress'; iteration: number; iterations: number; loss: number; lr: number; examplesPerSec: number }
  | { type: 'evaluation'; iteration: number; valAccuracy: number; valLoss: number; trainLoss: number; wallSeconds: number; evalSeconds: number }
  | { type: 'checkpoint.written'; iteration: number; dir: string; bytes: number; seconds: number }
  | { type: 'lr.changed'; iteration: number; lr: number }
  | { type: 'shard.joined'; shard: number; address: string; live: number }
  | { type: 'shard.lost'; shard: number; reason: string; live: number }
  | { type: 'job.rewound'; iteration: number; reason: string }
  | { type: 'step.skipped'; iteration: number; gradNorm: number; medianNorm: number }
  | { type: 'target.reached'; iteration: number; valAccuracy: number; target: number; wallSeconds: number }
);

export type EventType = TrainingEvent['type'];
// Keyed by every EventType, so the compiler refuses a new event type until it
// is listed here too (and with it in the tests that iterate EVENT_TYPES).
const EVERY_TYPE: Record<EventType, true> = {
  'job.started': true, 'job.finished': true, 'job.failed': true, 'worker.joined': true, 'worker.left': true, 'worker.lost': true,
  'progress': true, 'evaluation': true, 'checkpoint.written': true, 'lr.changed': true, 'step.skipped': true, 'target.reached': true,
  'shard.joined': true, 'shard.lost': true, 'job.rewound': true,
};
export const EVENT_TYPES = Object.keys(EVERY_TYPE) as EventType[];

/** An event as emitted: the bus adds `job` and `time`. */
export type EventInput = TrainingEvent extends infer E ? (E extends TrainingEvent ? Omit<E, 'job' | 'time'> : never) : never;

const log = logger('events');

export class EventBus {
  private readonly subscribers: ((e: TrainingEvent) => void)[] = [];

  constructor(public job = '') {}

  subscribe(fn: (e: TrainingEvent) => void): () => void {
    this.subscribers.push(fn);
    return () => { const i = this.subscribers.indexOf(fn); if (i >= 0) this.subscribers.splice(i, 1); };
  }

  emit(e: EventInput): void {
    const event = { ...e, job: this.job, time: new Date().toISOString() } as TrainingEvent;
    for (const fn of this.subscribers) {
      try {
        fn(event);
      } catch (err) {
        log.warn('event subscriber failed', { type: event.type, error: (err as Error).message });
      }
    }
  }
}
