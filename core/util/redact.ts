// Credentials that can sit inside a job config: a NATS URL with user:password,
// a signed model.from URL (its query string is the credential). They are
// masked wherever the config leaves the coordinator (the Welcome every worker
// gets) or is logged, since workers and log collectors need neither.
import { JobConfig } from '../job/config';

/** `url` with its user info and every query value replaced by ***; text that is not a URL comes back as it is. */
export function redactUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return url;
  }
  if (!u.username && !u.password && !u.search) return url;
  if (u.username) u.username = '***';
  if (u.password) u.password = '***';
  for (const key of [...u.searchParams.keys()]) u.searchParams.set(key, '***');
  return u.toString().replace(/%2A%2A%2A/g, '***');
}

/** The job config as it may leave the coordinator: every URL that can carry credentials redacted. */
export function redactJob(cfg: JobConfig): JobConfig {
  const copy = structuredClone(cfg);
  if (copy.metrics.nats) copy.metrics.nats = redactUrl(copy.metrics.nats);
  if (copy.model.from) copy.model.from = redactUrl(copy.model.from);
  const pretrainModel = copy.pretrain?.model as { from?: unknown } | undefined;
  if (typeof pretrainModel?.from === 'string') pretrainModel.from = redactUrl(pretrainModel.from);
  return copy;
}
