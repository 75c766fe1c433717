// `tunefleet coordinator`: set the job up, serve gRPC, wait for the first
// workers (and the parameter shards, with cluster.shards > 0), then run the
// shared training loop with the fleet as its Compute. A lost shard sends the
// loop back to the last checkpoint (restore-point.ts) once a shard has taken
// its slot again. With optimizer.unfreeze the job runs in stages, one per
// release (core/train/unfreeze.ts): each ends the sessions as a SIGTERM would,
// and the next serves on the same ports from the release's checkpoint with the
// new trainable set; workers and shards join it again with backoff.
import * as grpc from '@grpc/grpc-js';
import { ConfigInvalid, ConnectionLost, describeError, JobStopped, ShardLost } from '../core/errors';
import { logger } from '../core/observe/log';
import { dataPortOf, JobConfig } from '../core/job/config';
import { EventBus } from '../core/observe/events';
import { startHttpServer } from '../core/observe/http-server';
import { setupJob } from '../core/job/setup';
import { openAccessProblem, readToken } from '../core/wire/security';
import { runTraining, StageOptions, throughReleases, TrainResult } from '../core/train/loop';
import { Cluster } from './cluster';
import { startDataPlane } from '../core/wire/data-plane';
import { RestorePoint } from './restore-point';
import { startServer } from './server';

const log = logger('coordinator');

export interface CoordinatorOptions {
  resume?: boolean;
  events?: EventBus;
  /** Called once the server listens, with the bound port (useful with port 0). */
  onListening?: (port: number, cluster: Cluster) => void;
  /** True once the coordinator should stop (SIGTERM): after the step under way it checkpoints and ends with JobStopped. */
  stopRequested?: () => boolean;
}

export async function runCoordinator(cfg: JobConfig, opts: CoordinatorOptions = {}): Promise<TrainResult & { cluster: Cluster }> {
  let stage = cfg;
  let last: Cluster | null = null;
  const result = await throughReleases(async (resume, carried) => {
    const r = await runStage(stage, { ...opts, resume, onListening: last ? undefined : opts.onListening }, carried);
    // A next stage listens where this one did: the workers and shards join again there.
    stage = { ...stage, cluster: { ...stage.cluster, port: r.port, dataPort: r.dataPort ?? stage.cluster.dataPort } };
    last = r.cluster;
    return r;
  }, opts.resume ?? false);
  return { ...result, cluster: last! };
}

/** One stage of the job (all of it, without optimizer.unfreeze): set up, serve, train, and end the sessions. */
async function runStage(cfg: JobConfig, opts: CoordinatorOptions, carried: StageOptions): Promise<TrainResult & { cluster: Cluster; port: number; dataPort: number | null }> {
  const c = cfg.cluster;
  const token = readToken(c.tokenFile);
  const open = openAccessProblem(token, c.host, c.insecure);
  if (open) throw new ConfigInvalid(open); // before anything is built or bound
  const job = await setupJob(cfg, opts.resume ?? false, opts.events);
  const cluster = new Cluster(job, { localData: cfg.cluster.workerData === 'local' });
  // The data plane listens first, so every session's Welcome can name it. With shards, tensors go to them instead.
  const data = c.dataPlane === 'tcp' && c.shards === 0
    ? await startDataPlane(cluster.dataPlaneHost, { host: c.host, port: dataPortOf(cfg), helloSeconds: c.joinTimeoutSeconds, cert: c.tlsCert, key: c.tlsKey, clientCa: c.tlsClientCa })
    : null;
  if (data) cluster.useDataPlane(data.port);
  const { server, port } = await startServer(cluster, {
    host: c.host, port: c.port, joinTimeoutSeconds: c.joinTimeoutSeconds, keepaliveSeconds: c.keepaliveSeconds,
    token, cert: c.tlsCert, key: c.tlsKey, clientCa: c.tlsClientCa,
  }).catch((err) => { data?.server.close(); throw err; });
  const http = cfg.metrics.port === null ? null : await startHttpServer(job.metrics, cfg.metrics.host, cfg.metrics.port, { ready: () => true, unhealthy: () => cluster.status.unhealthy() });
  opts.onListening?.(port, cluster);
  let ending: 'finish' | 'stop' = 'finish';
  let reason = 'job finished';
  try {
    const restorePoint = cluster.shards ? new RestorePoint(job) : null;
    await cluster.shards?.ready();
    await cluster.waitForWorkers(cfg.cluster.workers);
    for (;;) {
      try {
        const result = await runTraining(job, cluster, { ...carried, stopRequested: opts.stopRequested });
        if (result.releasedAt !== undefined) {
          ending = 'stop';
          reason = `iteration ${result.releasedAt} releases frozen variables (optimizer.unfreeze): join again for the new trainable set`;
        }
        return { ...result, cluster, port, dataPort: data?.port ?? null };
      } catch (err) {
        if (!(err instanceof ShardLost) || !restorePoint) throw err;
        log.warn('waiting for a shard to take the lost one\'s slot', { error: err.message });
        await cluster.rewind(err, async () => {
          const iteration = await restorePoint.restore();
          log.info('rewound', { iteration });
          job.events.emit({ type: 'job.rewound', iteration, reason: err.message });
        });
        await cluster.waitForWorkers(cfg.cluster.workers); // as at the start: the steps redone are split as they were
      }
    }
  } catch (err) {
    if (err instanceof JobStopped) [ending, reason] = ['stop', 'the coordinator stopped (SIGTERM) after a checkpoint: join it again when it is back'];
    else reason = `job failed: ${describeError(err)}`;
    throw err;
  } finally {
    if (ending === 'finish') {
      cluster.finish(reason);
      cluster.shards?.finish();
    } else {
      // Stopped, not over: workers and shards are not told to finish, so they join the coordinator that resumes (or the next stage).
      const gone = new ConnectionLost(reason);
      cluster.stop(gone);
      cluster.shards?.stop(gone);
    }
    await shutdown(server);
    data?.server.close(); // its connections close with their sessions
    http?.close();
    await job.close(); // after the workers' leave events
  }
}

function shutdown(server: grpc.Server): Promise<void> {
  // Give workers a moment to read Finish, then cut whatever is left.
  const force = setTimeout(() => server.forceShutdown(), 2000);
  return new Promise((resolve) => server.tryShutdown(() => { clearTimeout(force); resolve(); }));
}
