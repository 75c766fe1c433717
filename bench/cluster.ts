// npm run bench:cluster — parameter shards on a simulated multi-host cluster
// (netns.ts: one network namespace per host, every link rate-limited). The
// coordinator, each shard and each worker run as real `tunefleet` processes
// on hosts of their own; the model is one wide dense layer of ~25 MiB and
// batches are tiny, so a step is its communication. For n = 1, 2, 4, 8
// workers, with k = 0 shards (the coordinator holds the parameters) and with
// k = n, it reports the median step time against 2·S/B (one worker's link
// carrying the model out and its gradient in). The same model under PyTorch
// DDP (gloo, one rank per host) runs on the same links. Then the links are
// unlimited and n = 1 and n = 8 run again: those times are this machine's own
// floor (every process shares its cores), which must be well under the
// limited ones, or the cores, not the links, were the limit. Set the rate
// with TUNEFLEET_BENCH_MBIT (default 100).
// Not part of `npm test`; needs root (CAP_NET_ADMIN): it says so and skips.
import { ChildProcess, spawnSync } from 'node:child_process';
import { createWriteStream, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { saveWideModel, writeIdxSet } from '../test/fixtures';
import { markdownTable, tempDirBench, writeBenchResult } from './report';
import { SimulatedCluster, unavailable } from './netns';

const MIB = 25;
const MBIT = Number(process.env.TUNEFLEET_BENCH_MBIT ?? 100); // low enough that the links, not 17 processes on 2 cores, are what a step waits for (the unlimited runs show the cores' share)
const WORKERS = [1, 2, 4, 8];
const STEPS = 6;
const WARMUP = 2;
const CLI = join(__dirname, '..', 'cli', 'main.js');
const PYTHON = '/usr/bin/python3';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

interface Run { n: number; k: number; stepSeconds: number }

/** One tunefleet job on the cluster: coordinator on `coord`, k shards, n workers; the median seconds per step after warm-up. */
async function tunefleetRun(c: SimulatedCluster, dir: string, modelPath: string, n: number, k: number, links = `${MBIT}mbit`): Promise<number> {
  const coord = c.host('coord');
  const name = `${n}-${k}-${links}`;
  const config = join(dir, `job-${name}.yaml`);
  writeFileSync(config, stringify({
    name: `cluster-${n}-${k}`, backend: 'wasm',
    data: { path: dir, download: false, validation: 8 },
    model: { from: modelPath, replaceHead: false },
    train: { iterations: WARMUP + STEPS, batchSize: 2 * n, logEvery: 1, evalEvery: 10_000, checkpointEvery: 10_000, outDir: join(dir, `run-${name}`) },
    cluster: { workers: n, shards: k, host: '0.0.0.0', port: 7070, workerData: 'local' },
    metrics: { port: null },
  }));
  const env = { ...process.env, TUNEFLEET_LOG: 'json', TUNEFLEET_DEBUG: 'shard,shards,worker' };
  const coordinator = c.spawn(coord, process.execPath, [CLI, 'coordinator', '--config', config], { env });
  const address = `${coord.ip}:7070`;
  const others = [
    ...Array.from({ length: k }, (_, i) => c.spawn(c.host(`s${i}`), process.execPath, [CLI, 'shard', '--coordinator', address, '--metrics-port', 'off'], { env })),
    ...Array.from({ length: n }, (_, i) => c.spawn(c.host(`w${i}`), process.execPath, [CLI, 'worker', '--coordinator', address, '--id', `w${i}`, '--backend', 'wasm', '--metrics-port', 'off'], { env })),
  ];
  const logs = [coordinator, ...others].map((p, i) => keepLog(p, join(dir, `log-${name}-${i === 0 ? 'coordinator' : i <= k ? `s${i - 1}` : `w${i - k - 1}`}.log`)));
  const times: number[] = [];
  let tail = '';
  coordinator.stderr!.on('data', (chunk: Buffer) => {
    const lines = (tail + chunk.toString()).split('\n');
    tail = lines.pop()!;
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      const e = JSON.parse(line);
      if (e.module === 'trainer' && e.event === 'progress') times.push(Date.parse(e.time));
      if (e.level === 'warn') process.stderr.write(`  coordinator: ${line}\n`);
    }
  });
  const limit = setTimeout(() => coordinator.kill('SIGTERM'), 600_000);
  const code = await new Promise<number | null>((resolve) => coordinator.once('exit', resolve));
  clearTimeout(limit);
  await Promise.all(others.map(stop));
  if (code !== 0) throw new Error(`coordinator (n=${n}, k=${k}) exited with ${code}; the logs: ${logs.join(' ')}`);
  const steps = times.slice(1).map((t, i) => (t - times[i]) / 1000).slice(WARMUP - 1);
  return median(steps);
}

/** Keep `p`'s output in `path` (stdout and stderr), for when a run goes wrong. */
function keepLog(p: ChildProcess, path: string): string {
  const file = createWriteStream(path);
  p.stdout!.pipe(file);
  p.stderr!.pipe(file);
  return path;
}

/** SIGTERM `p` and wait until it has exited. */
function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => { p.once('exit', () => resolve()); p.kill('SIGTERM'); });
}

/** PyTorch DDP (gloo) with one rank on each of the first `n` worker hosts; median seconds per step. */
async function ddpRun(c: SimulatedCluster, units: number, n: number): Promise<number> {
  const master = c.host('w0');
  const ranks = Array.from({ length: n }, (_, rank) => c.spawn(c.host(`w${rank}`), PYTHON, [join(__dirname, '..', '..', 'bench', 'ddp_cluster.py'), String(units), String(STEPS), String(WARMUP)], {
    env: { ...process.env, RANK: String(rank), WORLD_SIZE: String(n), MASTER_ADDR: master.ip, MASTER_PORT: '29500', OMP_NUM_THREADS: '1', GLOO_SOCKET_IFNAME: 'eth0' }, // gloo picks its interface by the hostname otherwise, which is not in the namespace
  }));
  let out = '';
  ranks[0].stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  for (const r of ranks) r.stderr!.resume();
  const codes = await Promise.all(ranks.map((r) => new Promise<number | null>((resolve) => r.once('exit', resolve))));
  if (codes.some((code) => code !== 0)) throw new Error(`DDP with ${n} ranks: exit codes ${codes}`);
  return median(JSON.parse(out.trim().split('\n').pop()!).step_seconds);
}

async function main(): Promise<void> {
  const why = unavailable();
  if (why) {
    process.stdout.write(`\n*** bench:cluster SKIPPED: ${why} ***\n\n`);
    return;
  }
  const dir = tempDirBench();
  writeIdxSet(dir, 512, 16);
  const modelPath = await saveWideModel(join(dir, 'model'), MIB, 'zeros');
  const units = Math.max(1, Math.round((MIB * 2 ** 20) / 4 / 785));
  const bytes = (785 * units + 10 * units + 10) * 4;
  const ideal = (2 * bytes * 8) / (MBIT * 1e6); // 2·S/B: the model out and the gradient in, over one link
  const hasTorch = spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
  const names = ['coord', ...WORKERS.slice(-1).flatMap((n) => Array.from({ length: n }, (_, i) => [`s${i}`, `w${i}`]).flat())];
  const cluster = new SimulatedCluster(names, MBIT);
  const runs: Run[] = [];
  const ddp: Record<number, number> = {};
  const unlimited: Run[] = [];
  try {
    for (const n of WORKERS) {
      for (const k of [0, n]) {
        const stepSeconds = await tunefleetRun(cluster, dir, modelPath, n, k);
        runs.push({ n, k, stepSeconds });
        process.stdout.write(`n=${n} k=${k}: ${stepSeconds.toFixed(2)} s per step (2·S/B ${ideal.toFixed(2)} s)\n`);
      }
      if (hasTorch && n > 1) {
        ddp[n] = await ddpRun(cluster, units, n);
        process.stdout.write(`DDP n=${n}: ${ddp[n].toFixed(2)} s per step\n`);
      }
    }
    cluster.setRate(null);
    for (const [n, k] of [[1, 1], [8, 0], [8, 8]]) unlimited.push({ n, k, stepSeconds: await tunefleetRun(cluster, dir, modelPath, n, k, 'unlimited') });
  } finally {
    cluster.destroy();
  }
  const at = (n: number, k: number) => runs.find((r) => r.n === n && r.k === k)!.stepSeconds;
  const rows = WORKERS.map((n) => [
    String(n), at(n, 0).toFixed(2), at(n, n).toFixed(2), `${(at(n, n) / at(1, 1)).toFixed(2)}×`, `${(at(n, n) / ideal).toFixed(2)}×`,
    ddp[n] ? ddp[n].toFixed(2) : '—', ddp[n] ? `${(ddp[n] / at(n, n)).toFixed(2)}×` : '—',
  ]);
  const table = [
    `Links ${MBIT} Mbit/s each way (tbf), model ${(bytes / 2 ** 20).toFixed(1)} MiB (S), 2·S/B = ${ideal.toFixed(2)} s. Median seconds per step over ${STEPS} steps after ${WARMUP} of warm-up.`,
    '',
    markdownTable(['workers n', 'k = 0 (coordinator only)', 'k = n shards', 'k = n vs n = 1', 'k = n vs 2·S/B', 'PyTorch DDP (gloo)', 'DDP ÷ shards'], rows),
    '',
    `Unlimited links (this machine's own limit: every process shares its 2 cores), seconds per step: ${unlimited.map((r) => `n = ${r.n}, k = ${r.k}: ${r.stepSeconds.toFixed(2)}`).join('; ')}.`,
    hasTorch ? '' : 'PyTorch not installed (apt-get install python3-torch): no DDP anchor.',
  ].join('\n');
  writeBenchResult('cluster', { mbit: MBIT, modelBytes: bytes, idealSeconds: ideal, runs, ddp, unlimited }, table);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
