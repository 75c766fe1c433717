// `tunefleet config --explain job.yaml`: which multipliers each of the job's
// variables gets, before anything trains. It builds the job's model (so it
// reads the dataset for its shape and classes, and `model.from`) and prints
// the resolution the job will use (with the iteration optimizer.unfreeze
// releases each variable at), then what is wrong with the rules, if
// anything: the table shows the names a mistyped glob should have matched.
// For an experiment file, one table per arm.
import { tmpdir } from 'node:os';
import { initBackend } from '../core/backend/backends';
import { JobConfig, parseJob, readYaml } from '../core/job/config';
import { armJob, loadExperiment } from '../core/job/experiment';
import { prepareData } from '../core/job/data';
import { initialModel } from '../core/job/model';
import { paramSpecs } from '../core/model/params';
import { multiplierRows, MULTIPLIER_COLUMNS, resolveMultipliers, ruleProblems } from '../core/train/lr-rules';
import { releaseIterations, schedule, unfreezeProblems } from '../core/train/unfreeze';
import { markdownTable } from './markdown';

/**
 * The table for the job at `path`, `withFlags` applying the command line's
 * --backend/--data. An experiment file (`tunefleet compare`) is explained arm
 * by arm over one network built from scratch: every arm has the same
 * variables (a pretrained arm's model is the pretrain stage's, of the same
 * arch, head replaced), so it is built once.
 */
export async function explainFile(path: string, withFlags: (cfg: JobConfig) => JobConfig): Promise<{ text: string; problems: string[] }> {
  const raw = readYaml(path) as Record<string, unknown> | null;
  if (!raw || !('compare' in raw)) {
    const cfg = withFlags(parseJob(raw, path));
    return explainRules(await variableNames(cfg), cfg.optimizer);
  }
  const { job, compare } = loadExperiment(path);
  const names = await variableNames(withFlags({ ...job, pretrain: null, model: { ...job.model, from: null } }));
  const parts = compare.arms.map((arm) => {
    const r = explainRules(names, armJob(job, arm, job.seed, null, tmpdir()).optimizer);
    return { text: `arm ${arm.name}:\n${r.text}`, problems: r.problems.map((p) => `compare.arms ${arm.name}: ${p}`) };
  });
  return { text: parts.map((p) => p.text).join('\n'), problems: parts.flatMap((p) => p.problems) };
}

/** The job's variables in the model's order: the model built as the job builds it (its data read for shape and classes). */
async function variableNames(cfg: JobConfig): Promise<string[]> {
  await initBackend(cfg.backend);
  const data = await prepareData(cfg);
  const model = await initialModel(cfg, data.train.shape, data.train.numClasses);
  const names = paramSpecs(model).map((s) => s.name);
  model.dispose();
  return names;
}

function explainRules(names: string[], optimizer: JobConfig['optimizer']): { text: string; problems: string[] } {
  const { lr, layers, layerDecay, unfreeze, headWarmup } = optimizer;
  const entries = schedule(unfreeze, headWarmup);
  const rows = multiplierRows(resolveMultipliers(names, layers, layerDecay), layers, releaseIterations(names, entries));
  const rates = rows.map((r) => [...r.slice(0, 4), String(+(lr * Number(r[3])).toPrecision(6)), ...r.slice(4)]);
  const header = [...MULTIPLIER_COLUMNS.slice(0, 4), `rate at lr ${lr}`, ...MULTIPLIER_COLUMNS.slice(4)];
  return { text: `${markdownTable(header, rates)}\n`, problems: [...ruleProblems(names, layers), ...unfreezeProblems(names, entries)] };
}
