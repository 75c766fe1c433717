// `tunefleet local --workers N`: the coordinator in this process and N worker
// processes on this machine, on loopback (like `torchrun --nproc-per-node`),
// and with cluster.shards = k, k parameter shard processes.
// Ctrl-C stops every worker before exiting. A worker that crashes is
// reported; the job goes on with the others (round.ts) and fails only when
// no worker is left.
import { ChildProcess } from 'node:child_process';
import { spawnTagged } from './child-output';
import { join } from 'node:path';
import { JobConfig } from '../core/job/config';
import { JobFailed } from '../core/errors';
import { EventBus } from '../core/observe/events';
import { logger } from '../core/observe/log';
import { Cluster } from '../coordinator/cluster';
import { runCoordinator } from '../coordinator/coordinator';

const log = logger('local');

export interface LocalOptions {
  resume?: boolean;
  backend?: string;
  events?: EventBus;
  /** Sees the cluster once the coordinator listens (benchmarks read its metrics). */
  onCluster?: (cluster: Cluster) => void;
}

export async function runLocal(cfg: JobConfig, workers: number, opts: LocalOptions = {}) {
  const job = { ...cfg, cluster: { ...cfg.cluster, workers, host: '127.0.0.1', port: 0 } };
  const children: ChildProcess[] = [];
  let finished = false;
  const release = stopOnSignal(children);

  const spawnShards = (port: number) => {
    for (let i = 0; i < cfg.cluster.shards; i++) {
      const args = [join(__dirname, 'main.js'), 'shard', '--coordinator', `127.0.0.1:${port}`, '--host', '127.0.0.1', '--data-port', '0', '--metrics-port', 'off'];
      if (cfg.cluster.tokenFile) args.push('--token-file', cfg.cluster.tokenFile);
      children.push(spawnTagged(`shard-${i}`, process.execPath, args));
    }
  };
  let allDead: (err: Error) => void = () => {};
  const workersGone = new Promise<never>((_, reject) => { allDead = reject; });
  const spawnWorkers = (port: number) => {
    for (let i = 0; i < workers; i++) {
      const args = [join(__dirname, 'main.js'), 'worker', '--coordinator', `127.0.0.1:${port}`, '--id', `worker-${i}`];
      if (cfg.cluster.tokenFile) args.push('--token-file', cfg.cluster.tokenFile);
      const metricsPort = cfg.metrics.workerPort === null ? 'off' : String(cfg.metrics.workerPort + i);
      args.push('--metrics-port', metricsPort, '--metrics-host', cfg.metrics.host);
      const backend = opts.backend ?? cfg.backend;
      if (backend !== 'auto') args.push('--backend', backend);
      const child = spawnTagged(`worker-${i}`, process.execPath, args);
      children.push(child);
      child.on('exit', (code, signal) => {
        if (finished) return;
        log.warn('worker process exited', { worker: `worker-${i}`, code, signal });
        if (children.slice(cfg.cluster.shards).every(exited)) allDead(new JobFailed('every worker process has exited; see the lines above for why'));
      });
    }
  };
  try {
    return await Promise.race([runCoordinator(job, { resume: opts.resume, events: opts.events, onListening: (port, cluster) => { opts.onCluster?.(cluster); spawnShards(port); spawnWorkers(port); } }), workersGone]);
  } finally {
    finished = true;
    release();
    await stopAll(children);
  }
}

const exited = (c: ChildProcess) => c.exitCode !== null || c.signalCode !== null;

/** Until the returned function is called, Ctrl-C or SIGTERM stops every child, then exits 130. */
export function stopOnSignal(children: ChildProcess[]): () => void {
  const interrupt = async (signal: NodeJS.Signals) => {
    log.info('interrupted: stopping workers', { signal });
    await stopAll(children);
    process.exit(130);
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  return () => {
    process.removeListener('SIGINT', interrupt);
    process.removeListener('SIGTERM', interrupt);
  };
}

/** SIGTERM every worker still running and wait until all have exited (SIGKILL after 5 s). */
async function stopAll(children: ChildProcess[]): Promise<void> {
  await Promise.all(children.filter((c) => !exited(c)).map((c) => new Promise<void>((resolve) => {
    const kill = setTimeout(() => c.kill('SIGKILL'), 5000);
    c.once('exit', () => { clearTimeout(kill); resolve(); });
    c.kill('SIGTERM');
  })));
}
