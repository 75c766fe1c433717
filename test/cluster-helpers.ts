// Helpers for tests that run a real coordinator (in this process, gRPC on a
// loopback port) with real worker processes.
import { ChildProcess, spawn } from 'node:child_process';
import { createServer, AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { EventBus } from '../core/observe/events';
import { JobConfig } from '../core/job/config';
import { runCoordinator } from '../coordinator/coordinator';
import { Cluster } from '../coordinator/cluster';
import { Tensors } from '../core/util/tensors';

export const CLI = join(__dirname, '..', 'cli', 'main.js');

export function spawnWorker(port: number, id: string, metricsPort: number | 'off' = 'off', extra: string[] = [], host = '127.0.0.1'): ChildProcess {
  const backend = extra.includes('--backend') ? [] : ['--backend', 'wasm']; // wasm unless the test names one
  const args = [CLI, 'worker', '--coordinator', `${host}:${port}`, '--id', id, ...backend, '--metrics-port', String(metricsPort), ...extra];
  return spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A `tunefleet coordinator` process for the job file `file` (its log on stderr, piped). */
export function spawnCoordinator(file: string, resume: boolean): ChildProcess {
  return spawn(process.execPath, [CLI, 'coordinator', '--config', file, ...(resume ? ['--resume'] : [])], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A parameter shard process for the coordinator at `port` (data port: any free one, on loopback). */
export function spawnShard(port: number, metricsPort: number | 'off' = 'off'): ChildProcess {
  const args = [CLI, 'shard', '--coordinator', `127.0.0.1:${port}`, '--host', '127.0.0.1', '--data-port', '0', '--metrics-port', String(metricsPort)];
  return spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

export const running = (p: ChildProcess) => p.exitCode === null && p.signalCode === null;

/** The exit code of `p` (null when a signal ended it), waiting if it still runs. */
export const exitOf = (p: ChildProcess) => new Promise<number | null>((r) => (running(p) ? p.once('exit', (code) => r(code)) : r(p.exitCode)));

/** A TCP port that was free a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  await new Promise((r) => server.close(r));
  return port;
}

export interface RunOptions {
  /** Worker i serves its metrics on workerMetricsPorts[i] (absent: off); likewise shards. */
  workerMetricsPorts?: number[];
  shardMetricsPorts?: number[];
  events?: EventBus;
  resume?: boolean;
  /** The workers' --backend (default wasm). */
  workerBackend?: string;
}

/** Run `cfg` with `workers` worker processes (and cluster.shards shard processes); `onCluster` sees the cluster once it listens. */
export async function runJob(cfg: JobConfig, workers: number, onCluster?: (c: Cluster, port: number, procs: ChildProcess[], shards: ChildProcess[]) => void, opts: RunOptions = {}) {
  const { workerMetricsPorts = [], shardMetricsPorts = [], events, resume = false, workerBackend = 'wasm' } = opts;
  const procs: ChildProcess[] = [];
  const shards: ChildProcess[] = [];
  const job = { ...cfg, cluster: { ...cfg.cluster, workers, host: '127.0.0.1', port: 0 } };
  const result = await runCoordinator(job, {
    events,
    resume,
    onListening: (port, cluster) => {
      for (let i = 0; i < cfg.cluster.shards; i++) shards.push(spawnShard(port, shardMetricsPorts[i] ?? 'off'));
      for (let i = 0; i < workers; i++) procs.push(spawnWorker(port, `w${i}`, workerMetricsPorts[i] ?? 'off', ['--backend', workerBackend]));
      onCluster?.(cluster, port, procs, shards);
    },
  });
  procs.push(...shards); // they exit when the coordinator ends their streams
  // A worker the job lost may still be waiting to join again (for up to
  // --reconnect-for, 300 s) when the job ends: give the workers a few seconds
  // to exit on their own, then stop the rest.
  const exited = Promise.all(procs.map(exitOf));
  if (await Promise.race([exited.then(() => true), sleep(10_000, false, { ref: false })]) === false) {
    for (const p of procs) if (running(p)) p.kill('SIGTERM');
  }
  await exited;
  return { ...result, procs, shards };
}

/** The first element where two sets of parameters differ, or null when every bit is the same. */
export function firstDifference(a: Tensors, b: Tensors): string | null {
  for (const [name, x] of b) {
    const y = a.get(name)!;
    for (let i = 0; i < x.length; i++) if (!Object.is(x[i], y[i])) return `${name}[${i}]: ${y[i]} vs ${x[i]}`;
  }
  return null;
}
