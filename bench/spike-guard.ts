// The spike guard's false-positive rate on real runs: reads training logs
// written with TUNEFLEET_DEBUG=trainer (one `gradient norm` line per step) on
// stdin, and replays train.spikeGuard over each run's norm series at several
// factors. On healthy runs every step it would skip is a false positive.
//
//   TUNEFLEET_DEBUG=trainer npx tunefleet train --config examples/fashion-mnist.yaml 2> run.log
//   node dist/bench/spike-guard.js < run.log
import { readFileSync } from 'node:fs';
import { parseJob } from '../core/job/config';
import { NormHistory } from '../core/train/spike-guard';
import { markdownTable } from '../cli/markdown';

const FACTORS = [5, 10, 30, 100];

function runs(log: string): number[][] {
  const out: number[][] = [];
  let last = Infinity;
  for (const m of log.matchAll(/gradient norm iteration=(\d+) gradNorm=(\S+)/g)) {
    const it = Number(m[1]);
    if (it <= last) out.push([]);
    out[out.length - 1].push(Number(m[2]));
    last = it;
  }
  return out;
}

function main(): void {
  const series = runs(readFileSync(0, 'utf8'));
  const { window, warmup } = parseJob({}).train.spikeGuard;
  const steps = series.reduce((a, s) => a + s.length, 0);
  const rows = FACTORS.map((factor) => {
    let skipped = 0;
    for (const norms of series) {
      const guard = new NormHistory({ factor, window, warmup });
      for (const n of norms) if (guard.judge(n).spike) skipped++;
    }
    return [String(factor), String(skipped), `${((100 * skipped) / steps).toFixed(3)}%`];
  });
  let worst = 0;
  for (const norms of series) {
    const watch = new NormHistory({ factor: null, window, warmup });
    norms.forEach((n, i) => {
      const { median } = watch.judge(n);
      if (i >= warmup) worst = Math.max(worst, n / median);
    });
  }
  console.log(JSON.stringify({ runs: series.length, steps, worstRatio: +worst.toFixed(2), rows }));
  console.log(markdownTable(['factor', 'steps it would skip', 'false-positive rate'], rows));
  console.log(`${series.length} runs, ${steps} steps; largest norm ÷ median of the previous ${window} (once ${warmup} are known): ${worst.toFixed(2)}`);
}

main();
