// `tunefleet config --explain job.yaml`: which multipliers each of the job's
// variables gets, before anything trains. It builds the job's model (so it
// reads the dataset for its shape and classes, and `model.from`) and prints
// the resolution the job will use (with the iteration optimizer.unfreeze
// releases each variable at), then what is wrong with the rules, if
// anything: the table shows the names a mistyped glob should have matched.
import { initBackend } from '../core/backend/backends';
import { JobConfig } from '../core/job/config';
import { prepareData } from '../core/job/data';
import { initialModel } from '../core/job/model';
import { paramSpecs } from '../core/model/params';
import { multiplierRows, MULTIPLIER_COLUMNS, ruleProblems } from '../core/train/lr-rules';
import { releaseIterations, schedule, unfreezeProblems } from '../core/train/unfreeze';
import { markdownTable } from './markdown';

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
