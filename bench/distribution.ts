// Section 2: distribution overhead. The same job (seed CNN, Fashion-MNIST,
// global batch 64) as (a) plain single-process training, (b) tunefleet with
// one worker process, (c) with two; examples/s in steady state (the median of
// the progress windows after the first, which includes start-up and the first
// data transfer). Each run is a real `tunefleet train` / `tunefleet local`.
// For the distributed runs, where a step's time went: the coordinator's step
// phases, in ms per step (means over every step).
import { Cluster } from '../coordinator/cluster';
import { parseJob } from '../core/job/config';
import { Phase, PHASES } from '../core/observe/metrics';
import { EventBus } from '../core/observe/events';
import { median } from '../core/util/numbers';
import { train } from '../core/train/trainer';
import { runLocal } from '../cli/local';
import { phaseSums, tempDirBench } from './report';

export interface DistributionRow { setup: string; examplesPerSec: number; ratioToPlain: number; phasesMs?: Partial<Record<Phase, number>> }

export function job(iterations: number) {
  return parseJob({
    name: 'bench-dist', backend: 'wasm', data: { dataset: 'fashion-mnist', download: false },
    train: { iterations, batchSize: 64, evalEvery: iterations, logEvery: 25, checkpointEvery: iterations, outDir: tempDirBench() },
    metrics: { port: null, workerPort: null },
  });
}

export async function steadyRate<R>(run: (events: EventBus) => Promise<R>): Promise<{ rate: number; result: R }> {
  const events = new EventBus();
  const rates: number[] = [];
  events.subscribe((e) => { if (e.type === 'progress') rates.push(e.examplesPerSec); });
  const result = await run(events);
  return { rate: median(rates.slice(1)), result };
}

async function phasesMs(cluster: Cluster, iterations: number): Promise<Partial<Record<Phase, number>>> {
  const sums = await phaseSums(cluster.metrics);
  return Object.fromEntries(PHASES.map((p) => [p, (1000 * (sums[p] ?? 0)) / iterations]));
}

/**
 * (a) and (b) run alternately `pairs` times (a, b, a, b, …), so a slow moment
 * of the machine hits both; b/a is the median of the pairs' ratios. (c) runs
 * once, against the median of (a).
 */
export async function benchDistribution(iterations = 200, pairs = 5): Promise<DistributionRow[]> {
  const plain: number[] = [], one: number[] = [], ratios: number[] = [];
  let last: Cluster | null = null;
  for (let i = 0; i < pairs; i++) {
    plain.push((await steadyRate((events) => train(job(iterations), { events }))).rate);
    const run = await steadyRate((events) => runLocal(job(iterations), 1, { events }));
    one.push(run.rate);
    ratios.push(run.rate / plain[i]);
    last = run.result.cluster;
  }
  const two = await steadyRate((events) => runLocal(job(iterations), 2, { events }));
  const a = median(plain);
  return [
    { setup: `(a) single process (median of ${pairs})`, examplesPerSec: a, ratioToPlain: 1 },
    { setup: `(b) tunefleet, 1 worker (median of ${pairs}, interleaved with a)`, examplesPerSec: median(one), ratioToPlain: median(ratios), phasesMs: await phasesMs(last!, iterations) },
    { setup: '(c) tunefleet, 2 workers', examplesPerSec: two.rate, ratioToPlain: two.rate / a, phasesMs: await phasesMs(two.result.cluster, iterations) },
  ];
}
