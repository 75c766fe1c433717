// `tunefleet status --coordinator HOST:PORT`: a running job at a glance, from
// the coordinator's GetStatus RPC (token and TLS as for a worker): progress,
// rate, ETA, the last validation accuracy, and each worker with stragglers
// marked. `--json` prints the reply as it came.
import * as grpc from '@grpc/grpc-js';
import { JobFailed } from '../core/errors';
import { clientCredentials, ClientTls, tokenMetadata } from '../core/wire/security';
import { CoordinatorClient, JobStatus } from '../proto/gen/tunefleet/v1/tunefleet';
import { markdownTable } from './markdown';

export function fetchStatus(address: string, token: string | null, tls: ClientTls): Promise<JobStatus> {
  const client = new CoordinatorClient(address, clientCredentials(tls));
  return new Promise<JobStatus>((resolve, reject) => {
    client.getStatus({}, tokenMetadata(token), { deadline: Date.now() + 10_000 }, (err, status) => {
      client.close();
      if (!err) return resolve(status);
      const hint = err.code === grpc.status.UNAUTHENTICATED ? 'pass the job\'s token with --token-file (or TUNEFLEET_TOKEN)' : 'is it running, and is --coordinator HOST:PORT right?';
      reject(new JobFailed(`no status from the coordinator at ${address}: ${err.details || err.message}; ${hint}`, { cause: err }));
    });
  });
}

const duration = (s: number) => (s >= 3600 ? `${(s / 3600).toFixed(1)} h` : s >= 60 ? `${Math.round(s / 60)} min` : `${Math.round(s)} s`);

export function statusText(s: JobStatus): string {
  const parts = [
    `${s.state}, iteration ${s.iteration}/${s.iterations}`,
    s.examplesPerSecond > 0 ? `${Math.round(s.examplesPerSecond)} examples/s` : null,
    s.etaSeconds > 0 ? `ETA ${duration(s.etaSeconds)}` : null,
    s.evaluated ? `validation accuracy ${(100 * s.validationAccuracy).toFixed(2)}%` : null,
  ].filter(Boolean);
  const rows = s.workers.map((w) => [
    w.straggler ? `${w.workerId} (STRAGGLER)` : w.workerId, w.backend, w.device, w.slicesDone,
    w.medianSecondsPerExample ? `${(1000 * w.medianSecondsPerExample).toFixed(2)} ms` : '—', `${w.secondsSinceSeen.toFixed(1)} s ago`,
  ]);
  const table = rows.length ? markdownTable(['worker', 'backend', 'device', 'slices', 'per example', 'last seen'], rows) : 'no live workers';
  const shards = s.shards.map((h) => [h.slot, h.live ? h.address : '(free: waiting for a shard)', `${(Number(h.parameterBytes) / 2 ** 20).toFixed(1)} MiB`, h.live ? `${h.secondsSinceHeard.toFixed(1)} s ago` : '—']);
  const shardTable = shards.length ? `\n${markdownTable(['shard', 'address', 'parameters', 'last heard'], shards)}\n` : '';
  return `job ${s.job}: ${parts.join(', ')}\n\n${table}\n${shardTable}`;
}
