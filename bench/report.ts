// Shared plumbing for `npm run bench*`: timing, markdown tables, result files.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { machine } from '../cli/markdown';
import { JobConfig } from '../core/job/config';
import { Metrics, Phase } from '../core/observe/metrics';

export { markdownTable } from '../cli/markdown';
import { join } from 'node:path';

/** Median wall time of `fn` in ms over `reps` runs, after `warmup` unmeasured runs. */
export async function medianMs(fn: () => unknown, reps = 7, warmup = 2): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

/** Write bench/results/<name>.json and <name>.md, and print the table. */
export function writeBenchResult(name: string, data: object, table: string): void {
  const dir = join(__dirname, '..', '..', 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const when = new Date().toISOString();
  writeFileSync(join(dir, `${name}.json`), JSON.stringify({ name, when, machine: machine(), ...data }, null, 2) + '\n');
  const md = `Measured ${when} on ${machine()}.\n\n${table}\n`;
  writeFileSync(join(dir, `${name}.md`), md);
  process.stdout.write(md);
}

/** A job with its metrics endpoints off: benchmark runs serve nothing. */
export function quiet(cfg: JobConfig): JobConfig {
  return { ...cfg, metrics: { ...cfg.metrics, port: null, workerPort: null } };
}

export function tempDirBench(): string {
  return mkdtempSync(join(tmpdir(), 'tunefleet-bench-'));
}

/** Seconds recorded so far in each step phase (tunefleet_step_phase_seconds sums) of a coordinator's metrics. */
export async function phaseSums(metrics: Metrics): Promise<Partial<Record<Phase, number>>> {
  const values = (await metrics.registry.getSingleMetric('tunefleet_step_phase_seconds')!.get()).values as { metricName?: string; labels: Record<string, unknown>; value: number }[];
  const sums: Partial<Record<Phase, number>> = {};
  for (const v of values) if (v.metricName === 'tunefleet_step_phase_seconds_sum') sums[v.labels.phase as Phase] = v.value;
  return sums;
}
