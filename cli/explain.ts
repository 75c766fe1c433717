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
import { multiplierRows, MULTIPLIER_COLUMNS, ruleProblems } from '../core/train/lr-rules';
import { releaseIterations, schedule, unfreezeProblems } from '../core/train/unfreeze';
import { markdownTable } from './markdown';

/**
 * An experiment file (`tunefleet compare`) is explained arm by arm, each with
 * the network built from scratch: a pretrained arm's variables have the same
 * names (its model is the pretrain stage's, of the same arch, head replaced).
 */
export async function explainFile(path: string, overrides: { backend?: JobConfig['backend']; data?: string }): Promise<{ text: string; problems: string[] }> {
  const raw = readYaml(path) as Record<string, unknown> | null;
  const apply = (cfg: JobConfig): JobConfig => ({ ...cfg, backend: overrides.backend ?? cfg.backend, data: { ...cfg.data, path: overrides.data ?? cfg.data.path } });
  if (!raw || !('compare' in raw)) return explainJob(apply(parseJob(raw, path)));
  const { job, compare } = loadExperiment(path);
  const parts = [];
  for (const arm of compare.arms) {
    const cfg = armJob(job, arm, job.seed, null, tmpdir());
    const r = await explainJob(apply({ ...cfg, model: { ...cfg.model, from: null } }));
    parts.push({ text: `arm ${arm.name}:\n${r.text}`, problems: r.problems.map((p) => `compare.arms ${arm.name}: ${p}`) });
  }
  return { text: parts.map((p) => p.text).join('\n'), problems: parts.flatMap((p) => p.problems) };
}

export async function explainJob(cfg: JobConfig): Promise<{ text: string; problems: string[] }> {
  await initBackend(cfg.backend);
  const data = await prepareData(cfg);
  const model = await initialModel(cfg, data.train.shape, data.train.numClasses);
  const names = paramSpecs(model).map((s) => s.name);
  model.dispose();
  const { lr, layers, layerDecay, unfreeze, headWarmup } = cfg.optimizer;
  const entries = schedule(unfreeze, headWarmup);
  const rows = multiplierRows(names, layers, layerDecay, releaseIterations(names, entries));
  const rates = rows.map((r) => [...r.slice(0, 4), String(+(lr * Number(r[3])).toPrecision(6)), ...r.slice(4)]);
  const header = [...MULTIPLIER_COLUMNS.slice(0, 4), `rate at lr ${lr}`, ...MULTIPLIER_COLUMNS.slice(4)];
  return { text: `${markdownTable(header, rates)}\n`, problems: [...ruleProblems(names, layers), ...unfreezeProblems(names, entries)] };
}
