// Section 2: distribution overhead. The same job (seed CNN, Fashion-MNIST,
// global batch 64) as (a) plain single-process training, (b) tunefleet with
// one worker process, (c) with two; examples/s in steady state (the median of
// the progress windows after the first, which includes start-up and the first
// data transfer). Each run is a real `tunefleet train` / `tunefleet local`.
import { parseJob } from '../core/config';
import { EventBus } from '../core/events';
import { median } from '../core/results';
import { train } from '../core/trainer';
import { runLocal } from '../cli/local';
import { tempDirBench } from './report';

export interface DistributionRow { setup: string; examplesPerSec: number; ratioToPlain: number }

function job(iterations: number) {
  return parseJob({
    name: 'bench-dist', backend: 'wasm', data: { dataset: 'fashion-mnist', download: false },
    train: { iterations, batchSize: 64, evalEvery: iterations, logEvery: 25, checkpointEvery: iterations, outDir: tempDirBench() },
    metrics: { port: null, workerPort: null },
  });
}

async function steadyRate(run: (events: EventBus) => Promise<unknown>): Promise<number> {
  const events = new EventBus();
  const rates: number[] = [];
  events.subscribe((e) => { if (e.type === 'progress') rates.push(e.examplesPerSec); });
  await run(events);
  return median(rates.slice(1));
}

export async function benchDistribution(iterations = 200): Promise<DistributionRow[]> {
  const plain = await steadyRate((events) => train(job(iterations), { events }));
  const one = await steadyRate((events) => runLocal(job(iterations), 1, { events }));
  const two = await steadyRate((events) => runLocal(job(iterations), 2, { events }));
  return [
    { setup: '(a) single process', examplesPerSec: plain, ratioToPlain: 1 },
    { setup: '(b) tunefleet, 1 worker', examplesPerSec: one, ratioToPlain: one / plain },
    { setup: '(c) tunefleet, 2 workers', examplesPerSec: two, ratioToPlain: two / plain },
  ];
}
