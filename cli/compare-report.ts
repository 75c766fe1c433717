// results.json and report.md for `tunefleet compare`.
import { Arm, CompareSpec } from '../core/job/experiment';
import { JobConfig } from '../core/job/config';
import { firstReached, medianOrNever, medianThresholds, speedups, Thresholds } from '../core/job/results';
import { CurvePoint } from '../core/train/loop';
import { execFileSync } from 'node:child_process';
import { machine, markdownTable } from './markdown';

export interface RunResult {
  seed: number;
  backend: string;
  workers: number;
  /** Wall seconds of the run's training, evaluations included (its last curve point's). */
  wallSeconds: number;
  curve: CurvePoint[];
  firstReached: Thresholds;
  finalAccuracy: number;
  bestAccuracy: number;
}

export interface ArmResult {
  name: string;
  /** The name with its per-layer multipliers, as tables and the plot show it: `fine-tune (head/* ×10, * ×0.1)`. */
  label: string;
  init: Arm['init'];
  config: JobConfig;
  runs: RunResult[];
  medianFirstReached: Thresholds;
  medianFinalAccuracy: number;
  medianBestAccuracy: number;
}

export interface Results {
  experiment: string;
  createdAt: string;
  /** The tunefleet commit that ran it (git, where the code is a checkout), or `unknown`. */
  commit: string;
  /** The pretrained model's validation accuracy on the source task; null when not known. */
  sourceAccuracy: number | null;
  machine: string;
  backend: string;
  workers: number;
  seeds: number[];
  thresholds: number[];
  baseline: string;
  arms: ArmResult[];
  /** arm → threshold → baseline iterations ÷ arm iterations (medians over seeds) */
  speedups: Record<string, Thresholds>;
}

export function runResult(seed: number, backend: string, workers: number, curve: CurvePoint[], thresholds: number[]): RunResult {
  const accs = curve.map((p) => p.valAccuracy);
  return { seed, backend, workers, wallSeconds: curve[curve.length - 1]?.wallSeconds ?? 0, curve, firstReached: firstReached(curve, thresholds), finalAccuracy: accs[accs.length - 1] ?? NaN, bestAccuracy: Math.max(...accs) };
}

export function armResult(arm: Arm, config: JobConfig, runs: RunResult[], thresholds: number[]): ArmResult {
  const { layers, layerDecay, unfreeze, headWarmup } = config.optimizer;
  const released = unfreeze.map((e) => `${e.match ?? `depth ≥ ${e.minDepth}`} from ${e.at}`);
  const rules = [...layers.map((r) => `${r.match} ×${r.lrMult}${r.freezeStats ? ' statistics frozen' : ''}`), ...(layerDecay === 1 ? [] : [`×${layerDecay}/layer below the head`]),
    ...released, ...(headWarmup ? [`head alone for ${headWarmup}`] : [])].join(', ');
  return {
    name: arm.name, label: arm.init === 'pretrained' && rules ? `${arm.name} (${rules})` : arm.name, init: arm.init, config, runs,
    medianFirstReached: medianThresholds(runs.map((r) => r.firstReached), thresholds),
    medianFinalAccuracy: medianOrNever(runs.map((r) => r.finalAccuracy))!,
    medianBestAccuracy: medianOrNever(runs.map((r) => r.bestAccuracy))!,
  };
}

export function buildResults(name: string, spec: CompareSpec, arms: ArmResult[], backend: string, workers: number, sourceAccuracy: number | null = null): Results {
  const baseline = arms.find((a) => a.init === 'scratch')!;
  return {
    experiment: name, createdAt: new Date().toISOString(), commit: commit(), sourceAccuracy, machine: machine(), backend, workers,
    seeds: spec.seeds, thresholds: spec.thresholds, baseline: baseline.name, arms,
    speedups: Object.fromEntries(arms.filter((a) => a !== baseline).map((a) => [a.name, speedups(a.medianFirstReached, baseline.medianFirstReached)])),
  };
}

function commit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: __dirname, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    return 'unknown';
  }
}

const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
const iter = (v: number | null) => (v === null ? 'never' : String(v));

/** The tables a user reads first; also printed by the command. */
export function summaryTables(r: Results): string {
  const reached = markdownTable(['arm', ...r.thresholds.map((t) => `first ≥ ${pct(t)}`), 'final', 'best'],
    r.arms.map((a) => [a.label, ...r.thresholds.map((t) => iter(a.medianFirstReached[String(t)])), pct(a.medianFinalAccuracy), pct(a.medianBestAccuracy)]));
  const speed = markdownTable(['arm', ...r.thresholds.map((t) => `speed-up at ${pct(t)}`)],
    Object.entries(r.speedups).map(([arm, s]) => [r.arms.find((a) => a.name === arm)!.label, ...r.thresholds.map((t) => {
      const v = s[String(t)];
      if (v !== null) return `${v.toFixed(2)}×`;
      return r.arms.find((a) => a.name === arm)!.medianFirstReached[String(t)] === null ? 'arm never reached' : `${r.baseline} never reached`;
    })]));
  const seeds = r.seeds.length > 1 ? ` (medians over seeds ${r.seeds.join(', ')})` : '';
  return `Iterations to first reach each validation accuracy${seeds}:\n\n${reached}\n\nSpeed-up over ${r.baseline} (its iterations ÷ the arm's):\n\n${speed}\n`;
}

export function reportMarkdown(r: Results, configYaml: string): string {
  const perSeed = markdownTable(['arm', 'seed', ...r.thresholds.map((t) => `first ≥ ${pct(t)}`), 'final', 'wall time'],
    r.arms.flatMap((a) => a.runs.map((run) => [a.label, String(run.seed), ...r.thresholds.map((t) => iter(run.firstReached[String(t)])), pct(run.finalAccuracy), `${run.wallSeconds.toFixed(1)} s`])));
  return `# ${r.experiment}: fine-tuning against training from scratch

Run ${r.createdAt} on ${r.machine} (tunefleet ${r.commit}); backend ${r.backend}, ${r.workers} worker process(es) per run.
The pretrained model's validation accuracy on the source task: ${r.sourceAccuracy === null ? 'not recorded (pretrained by an earlier version: --fresh measures it)' : pct(r.sourceAccuracy)}.

${summaryTables(r)}
Per seed:

${perSeed}

![validation accuracy against iteration](accuracy.png)

## Configuration

\`\`\`yaml
${configYaml.trim()}
\`\`\`
`;
}
