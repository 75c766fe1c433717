// `tunefleet watch --nats URL [--job NAME]`: a live view of running jobs from
// their NATS event stream. On a terminal, progress rewrites one status line
// and every other event prints above it; elsewhere, one line per event.
import { TrainingEvent } from '../core/observe/events';
import { watchEvents } from '../core/observe/nats';

const pct = (v: number | null) => (v === null ? '—' : `${(100 * v).toFixed(2)}%`);

export function describeEvent(e: TrainingEvent): string {
  switch (e.type) {
    case 'job.started': return `started on ${e.backend}: ${e.iterations} iterations of batch ${e.batchSize} over ${e.trainExamples} examples`;
    case 'job.finished': return `finished after ${e.iteration} iterations in ${e.seconds.toFixed(0)} s, validation accuracy ${pct(e.valAccuracy)}`;
    case 'job.failed': return `FAILED: ${e.error}`;
    case 'worker.joined': return `worker ${e.worker} joined (${e.backend}); ${e.live} live`;
    case 'worker.left': return `worker ${e.worker} left (${e.reason}); ${e.live} live`;
    case 'worker.lost': return `worker ${e.worker} LOST (${e.reason}); ${e.live} live`;
    case 'progress': return `iteration ${e.iteration}/${e.iterations}  loss ${e.loss.toFixed(4)}  lr ${e.lr}  ${e.examplesPerSec} examples/s`;
    case 'evaluation': return `iteration ${e.iteration}: validation accuracy ${pct(e.valAccuracy)}, loss ${e.valLoss.toFixed(4)}`;
    case 'checkpoint.written': return `checkpoint at iteration ${e.iteration}: ${e.dir} (${(e.bytes / 2 ** 20).toFixed(1)} MiB, ${e.seconds.toFixed(2)} s)`;
    case 'shard.joined': return `parameter shard ${e.shard} joined (${e.address}); ${e.live} live`;
    case 'shard.lost': return `parameter shard ${e.shard} LOST (${e.reason}); ${e.live} live`;
    case 'job.rewound': return `REWOUND to iteration ${e.iteration}: ${e.reason}`;
    case 'lr.changed': return `learning rate ${e.lr} from iteration ${e.iteration}`;
    case 'step.skipped': return `step ${e.iteration} SKIPPED: gradient norm ${e.gradNorm.toPrecision(3)} against a recent median of ${e.medianNorm.toPrecision(3)}`;
    case 'target.reached': return `TARGET ${pct(e.target)} reached at iteration ${e.iteration} (${pct(e.valAccuracy)}) after ${e.wallSeconds.toFixed(0)} s`;
  }
}

export async function runWatch(url: string, job?: string): Promise<void> {
  const tty = Boolean(process.stdout.isTTY);
  process.stderr.write(`watching ${job ? `job ${job}` : 'every job'} on ${url} (Ctrl-C to stop)\n`);
  await watchEvents(url, job, (e) => {
    const line = `${e.time.slice(11, 19)} ${e.job}: ${describeEvent(e)}`;
    if (tty && e.type === 'progress') process.stdout.write(`\r\x1b[2K${line}`);
    else process.stdout.write(`${tty ? '\r\x1b[2K' : ''}${line}\n`);
  }, (trouble) => process.stderr.write(`${trouble}\n`));
}
