// Turns a job's `data` section into the training and validation sets and the
// normalisation to apply: load the named dataset, keep the chosen classes,
// limit the training set, choose the validation set, compute the statistics.
import { JobConfig } from './config';
import { Dataset, Normalization } from '../data/dataset';
import { loadNamedDataset } from '../data/resolve';
import { channelStats, holdOut, limitExamples, selectClasses } from '../data/transforms';
import { ConfigInvalid } from '../errors';

export interface JobData {
  train: Dataset;
  val: Dataset;
  norm: Normalization;
}

export async function prepareData(cfg: JobConfig): Promise<JobData> {
  const d = cfg.data;
  const splits = await loadNamedDataset(d.dataset, { path: d.path ?? undefined, download: d.download, cifar100Labels: d.cifar100Labels });
  const keep = (ds: Dataset) => (d.classes ? selectClasses(ds, d.classes) : ds);
  let train = keep(splits.train);
  let val = keep(splits.test);
  if (d.validation !== 'test') ({ train, val } = holdOut(train, d.validation, cfg.seed));
  if (d.limitPerClass !== null || d.limitTotal !== null) {
    train = limitExamples(train, { perClass: d.limitPerClass ?? undefined, total: d.limitTotal ?? undefined }, cfg.seed);
  }
  return { train, val, norm: normalization(cfg, train) };
}

function normalization(cfg: JobConfig, train: Dataset): Normalization {
  const n = cfg.data.normalize;
  const channels = train.shape[2];
  if (n === 'auto') return channelStats(train);
  if (n === 'none') return { mean: new Array(channels).fill(0), std: new Array(channels).fill(1) };
  if (n.mean.length !== channels || n.std.length !== channels) {
    throw new ConfigInvalid(`data.normalize: mean and std need ${channels} values (one per channel), got ${n.mean.length} and ${n.std.length}`);
  }
  return n;
}
