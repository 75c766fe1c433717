// `tunefleet compare`: the experiment tunefleet exists for. Pretrain on the
// source task once (reused when unchanged, unless --fresh), then run every arm
// for every seed on the target task — each a real distributed run with N
// local workers — and write results.json, report.md, accuracy.svg/.png.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { JobConfig } from '../core/job/config';
import { EventBus } from '../core/observe/events';
import { armJob, Experiment } from '../core/job/experiment';
import { ensurePretrained } from '../core/job/stages';
import { TrainResult } from '../core/train/loop';
import { ArmResult, armResult, buildResults, reportMarkdown, Results, runResult } from './compare-report';
import { runLocal } from './local';
import { renderAccuracy } from './plot';
import { ProgressLine } from './progress';

export interface CompareOptions {
  workers: number;
  out: string;
  fresh?: boolean;
  backend?: string;
}

export async function runCompare(exp: Experiment, opts: CompareOptions): Promise<Results> {
  const { job, compare } = exp;
  const progress = new ProgressLine();
  const events = new EventBus();
  events.subscribe(progress.onEvent);
  const run = (cfg: JobConfig): Promise<TrainResult> => runLocal(cfg, opts.workers, { backend: opts.backend, events });
  const total = compare.arms.length * compare.seeds.length;
  let n = 0;
  try {
    let pretrained: string | null = null, sourceAccuracy: number | null = null;
    if (compare.arms.some((a) => a.init === 'pretrained')) {
      progress.begin(`pretrain ${job.name} (source task)`);
      ({ model: pretrained, sourceAccuracy } = await ensurePretrained(job, run, { fresh: opts.fresh, outDir: join(opts.out, 'pretrain') }));
    }
    const arms: ArmResult[] = [];
    let backend = '';
    for (const arm of compare.arms) {
      const runs = [];
      const configs = compare.seeds.map((seed) => armJob(job, arm, seed, pretrained, opts.out));
      for (const [i, seed] of compare.seeds.entries()) {
        progress.begin(`run ${++n}/${total}: ${arm.name} seed ${seed}`);
        const result = await run(configs[i]);
        backend = result.backend;
        runs.push(runResult(seed, result.backend, opts.workers, result.curve, compare.thresholds));
      }
      arms.push(armResult(arm, configs[0], runs, compare.thresholds));
    }
    const results = buildResults(job.name, compare, arms, backend, opts.workers, sourceAccuracy);
    await writeOutputs(results, exp, opts.out);
    return results;
  } finally {
    progress.end();
  }
}

async function writeOutputs(r: Results, exp: Experiment, out: string): Promise<void> {
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'results.json'), JSON.stringify(r, null, 1) + '\n');
  // The configuration as the runs used it: the worker count is the command's (--workers), not the file's.
  const job = { ...exp.job, cluster: { ...exp.job.cluster, workers: r.workers } };
  writeFileSync(join(out, 'report.md'), reportMarkdown(r, stringify({ ...job, compare: exp.compare })));
  const rows = r.arms.flatMap((a) => a.runs.flatMap((run) => run.curve.map((p) => ({ arm: a.label, seed: run.seed, iteration: p.iteration, valAccuracy: p.valAccuracy }))));
  const { svg, png } = await renderAccuracy(rows, `${r.experiment}: validation accuracy`, r.thresholds);
  writeFileSync(join(out, 'accuracy.svg'), svg);
  writeFileSync(join(out, 'accuracy.png'), png);
}
