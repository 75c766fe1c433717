// Time to accuracy (DAWNBench's measure) on the fashion-transfer preset, with
// its seed CNN and with the cifar-cnn (compute-bound) in its place: wall
// seconds from the start of training to the first evaluation at >= 90%,
// evaluations included (the curve's wallSeconds), for the fine-tune arm —
// tunefleet in one process and with 2 local workers, against the same recipe
// in plain PyTorch, single process, at 1 and 2 threads (bench/transfer.py).
// Every run is a fresh process; the four are interleaved per seed so a slow
// moment of the machine hits all of them; medians over the seeds. Each row
// also says where the seconds went: start-up (spawn to first step, not in the
// measure), training steps and evaluation.
//
//     npm run bench:tta      (also part of npm run bench)
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { ModelName } from '../core/model/zoo';
import { ensurePretrained } from '../core/job/stages';
import { median } from '../core/util/numbers';
import { runLocal } from '../cli/local';
import { hasPyTorch, KEEP_FREED_MEMORY, lastJsonLine } from './anchors';
import { markdownTable, quiet, tempDirBench, writeBenchResult } from './report';
import { presetFor, TARGET } from './time-to-accuracy-run';
import { CurvePoint } from '../core/train/loop';

const ROOT = join(__dirname, '..', '..');

export interface TtaRun { model: ModelName; setup: string; seed: number; iteration: number | null; seconds: number | null; evalSeconds: number; startupSeconds: number }
export interface TtaRow { model: ModelName; setup: string; seconds: number | null; evalSeconds: number; startupSeconds: number; iterations: (number | null)[]; ofPyTorch2: number | null }

/** The preset's seed CNN (little compute per step: overheads and evaluation dominate) and the cifar-cnn (compute-bound). */
const MODELS: ModelName[] = ['seed-cnn', 'cifar-cnn'];

const SETUPS = ['tunefleet, 1 process', 'tunefleet, 2 workers', 'PyTorch, 1 thread', 'PyTorch, 2 threads'] as const;

/** A timed run: the child counts its start-up from BENCH_SPAWNED_AT. */
function spawnJson(cmd: string, args: string[], env: Record<string, string> = {}): Record<string, unknown> {
  return lastJsonLine(cmd, args, { ...env, BENCH_SPAWNED_AT: String(Date.now()) });
}

function ours(model: ModelName, setup: string, seed: number, out: string): TtaRun {
  const mode = setup.endsWith('2 workers') ? ['local', '2'] : ['train'];
  const r = spawnJson(process.execPath, ['dist/bench/time-to-accuracy-run.js', ...mode, model, String(seed), join(out, `${model}-${mode[0]}-${seed}`)]) as { curve: CurvePoint[]; startupSeconds: number };
  const hit = r.curve.find((p) => p.valAccuracy >= TARGET);
  return { model, setup, seed, iteration: hit?.iteration ?? null, seconds: hit?.wallSeconds ?? null, evalSeconds: hit?.evalSeconds ?? 0, startupSeconds: r.startupSeconds };
}

function pytorch(model: ModelName, setup: string, seed: number, weights: string): TtaRun {
  const threads = setup.endsWith('2 threads') ? 2 : 1;
  const r = spawnJson('/usr/bin/python3', ['bench/transfer.py', '--time-to-target', weights, '--arch', model, '--seed', String(seed), '--threads', String(threads)], KEEP_FREED_MEMORY) as Omit<TtaRun, 'model' | 'setup' | 'seed'>;
  return { model, setup, seed, ...r };
}

export async function benchTimeToAccuracy(models = MODELS): Promise<{ runs: TtaRun[]; rows: TtaRow[] }> {
  const out = tempDirBench();
  const torch = hasPyTorch();
  const runs: TtaRun[] = [];
  for (const model of models) {
    const { job, compare } = presetFor(model);
    // The pretrained models, once, untimed: ours in the folder `npm start` uses (reused when there), PyTorch's saved beside the results.
    await ensurePretrained(job, (cfg) => runLocal(quiet(cfg), 2), { outDir: join('runs', job.name, 'pretrain') });
    const weights = join(out, `pytorch-${model}.pt`);
    if (torch) execFileSync('/usr/bin/python3', ['bench/transfer.py', '--save-pretrained', weights, '--arch', model], { cwd: ROOT, stdio: 'ignore' });
    for (const seed of compare.seeds) {
      for (const setup of SETUPS) {
        if (setup.startsWith('PyTorch') && !torch) continue;
        runs.push(setup.startsWith('PyTorch') ? pytorch(model, setup, seed, weights) : ours(model, setup, seed, out));
        console.log(JSON.stringify(runs[runs.length - 1]));
      }
    }
  }
  return { runs, rows: models.flatMap((model) => rowsOf(runs.filter((r) => r.model === model))) };
}

function rowsOf(runs: TtaRun[]): TtaRow[] {
  const med = (xs: (number | null)[]) => (xs.some((x) => x === null) ? null : median(xs as number[]));
  const rows = SETUPS.filter((s) => runs.some((r) => r.setup === s)).map((setup) => {
    const of = runs.filter((r) => r.setup === setup);
    return { model: of[0].model, setup, seconds: med(of.map((r) => r.seconds)), evalSeconds: median(of.map((r) => r.evalSeconds)), startupSeconds: median(of.map((r) => r.startupSeconds)), iterations: of.map((r) => r.iteration), ofPyTorch2: null as number | null };
  });
  const anchor = rows.find((r) => r.setup === 'PyTorch, 2 threads')?.seconds ?? null;
  for (const r of rows) r.ofPyTorch2 = r.seconds !== null && anchor ? r.seconds / anchor : null;
  return rows;
}

export function ttaTable(rows: TtaRow[]): string {
  const s = (x: number | null) => (x === null ? 'never' : x.toFixed(1));
  return markdownTable(['model', 'setup', `seconds to ${100 * TARGET}% (median)`, 'of which training steps', 'of which evaluation', 'start-up (not counted)', 'iteration per seed', '÷ PyTorch 2 threads'], rows.map((r) => [
    r.model, r.setup, s(r.seconds), r.seconds === null ? 'n/a' : (r.seconds - r.evalSeconds).toFixed(1), r.evalSeconds.toFixed(1), r.startupSeconds.toFixed(1), r.iterations.map((i) => i ?? 'never').join('/'), r.ofPyTorch2 === null ? 'n/a' : `${r.ofPyTorch2.toFixed(2)}×`,
  ]));
}

if (require.main === module) {
  benchTimeToAccuracy().then(({ runs, rows }) => writeBenchResult('time-to-accuracy', { runs, rows }, ttaTable(rows)), (err) => { console.error(err); process.exit(1); });
}
