// Section 3: communication. One step's parameter broadcast plus gradient
// collection for models of 1-400 MiB with 1, 2 and 4 workers on loopback, on
// the data plane and on the gRPC fallback, beside the raw-TCP ceiling for the
// same traffic measured in the same run (rawTcpStep).
// The model is one wide dense layer, trained on one example per worker so the
// compute is small; the bytes a step moves are what the coordinator counted
// (parameters sent + gradients received), and its communication time is the
// mean of the `broadcast` and `upload` step phases the coordinator records
// (tunefleet_step_phase_seconds), both over the steps after the first (which
// also carries joining and model building). Beside it, two ceilings measured
// in the same run: raw TCP with the step's pattern, and gRPC itself streaming
// 1 MiB chunks between two fresh processes.
import { fork } from 'node:child_process';
import { AddressInfo, createServer, Socket } from 'node:net';
import { join } from 'node:path';
import { parseJob } from '../core/job/config';
import { runLocal } from '../cli/local';
import { Cluster } from '../coordinator/cluster';
import { EventBus } from '../core/observe/events';
import { withOnread } from '../core/wire/data-socket';
import { median } from '../core/util/numbers';
import { phaseSums, tempDirBench } from './report';
import { saveWideModel } from '../test/fixtures';

const MiB = 2 ** 20;

/** A child process running `file` with `args`; `messages` yields what it sends the parent. */
function child(file: string, args: (string | number)[]) {
  const proc = fork(join(__dirname, file), args.map(String), { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const next = () => new Promise<unknown>((r) => proc.once('message', r));
  return { next, kill: () => proc.kill() };
}

/**
 * The raw-TCP ceiling for one step's traffic: this process (the coordinator's
 * place) sends `bytes` to each of `workers` child processes over one
 * connection each, all at once, and each sends `bytes` back, all at once —
 * the broadcast and the gather, with nothing else in the way. Both sides read
 * with onread into preallocated buffers (`receive: 'data events'`: the
 * parent reads with plain 'data' events and one copy instead, to measure what
 * that copy costs). Bytes moved per second, the median of `rounds` rounds.
 */
export async function rawTcpStep(workers: number, bytes: number, rounds = 5, receive: 'onread' | 'data events' = 'onread'): Promise<number> {
  const source = Buffer.alloc(bytes, 7);
  const sink = Buffer.alloc(4 << 20);
  let arrived: () => void = () => {};
  let got = 0;
  const sockets: Socket[] = [];
  const count = (n: number) => { got += n; if (got === workers * bytes) arrived(); return true; };
  const server = createServer({ pauseOnConnect: true }, (accepted) => {
    if (receive === 'onread') {
      sockets.push(withOnread(accepted, { buffer: () => sink, callback: count }));
    } else {
      // What a plain receiver does: node's own 64 KiB reads, each copied to where it belongs.
      sockets.push(accepted.on('data', (d: Buffer) => { sink.set(d.subarray(0, sink.length)); count(d.length); }).resume());
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const peers = Array.from({ length: workers }, () => child('tcp-peer.js', [port, bytes, rounds]));
  while (sockets.length < workers) await new Promise((r) => setTimeout(r, 10));
  const times: number[] = [];
  for (let round = 0; round < rounds; round++) {
    got = 0;
    const back = new Promise<void>((r) => { arrived = r; });
    const start = performance.now();
    for (const s of sockets) s.write(source);
    await back;
    times.push((performance.now() - start) / 1000);
  }
  for (const s of sockets) s.destroy();
  server.close();
  for (const p of peers) p.kill();
  return (2 * workers * bytes) / median(times);
}

/**
 * What gRPC itself moves here, bytes/s: a fresh child process streams 1 MiB
 * gradient chunks (the generated codec, backpressure respected) to a bare
 * server in another. tunefleet's gRPC plane cannot beat this.
 */
export async function rawGrpc(bytes = 512 * MiB): Promise<number> {
  const sink = child('grpc-sink.js', [bytes]);
  const port = Number(await sink.next());
  const done = sink.next();
  const source = child('grpc-source.js', [port, bytes]);
  await source.next();
  const start = performance.now();
  await done;
  const seconds = (performance.now() - start) / 1000;
  source.kill();
  sink.kill();
  return bytes / seconds;
}

const STEPS = 4;

/** Total broadcast + upload seconds recorded so far. */
async function commSeconds(cluster: Cluster): Promise<number> {
  const sums = await phaseSums(cluster.metrics);
  return (sums.broadcast ?? 0) + (sums.upload ?? 0);
}

export type Variant = 'fp32' | 'fp16' | 'frozen backbone';
export interface CommRow {
  modelMiB: number; workers: number; plane: 'tcp' | 'grpc'; variant: Variant; bytesPerStep: number; seconds: number; gbPerSec: number;
  /** The raw-TCP ceiling for this traffic (rawTcpStep), bytes/s, and this row's share of it. */
  ceiling: number; ofCeiling: number;
  /** Bytes of the `wide` layer (the backbone) moved per step: its parameters sent (a frozen one's gradients are never sent). */
  backboneBytesPerStep: number;
}

const bytesMoved = (c: Cluster) => [...c.traffic.paramBytes.values()].reduce((a, b) => a + b, 0) + c.traffic.gradientBytes;
const backboneParamBytes = (c: Cluster) => [...c.traffic.paramBytes].filter(([name]) => name.startsWith('wide/')).reduce((a, [, b]) => a + b, 0);

interface RowSpec { path: string; mib: number; workers: number; plane: 'tcp' | 'grpc'; variant: Variant; ceiling: number }

/** One row: `workers` local workers, `STEPS` steps of the wide model; the first step (joining, model building) is left out. */
async function commRow({ path, mib, workers, plane, variant, ceiling }: RowSpec): Promise<CommRow> {
  const cfg = parseJob({
    name: 'bench-comm', backend: 'wasm', data: { dataset: 'fashion-mnist', download: false, validation: 8 },
    model: { from: path, replaceHead: false },
    train: { iterations: STEPS, batchSize: workers, evalEvery: STEPS, logEvery: 1, checkpointEvery: 1000, outDir: tempDirBench() },
    optimizer: { layers: variant === 'frozen backbone' ? [{ match: 'wide/*', lrMult: 0 }] : [] },
    cluster: { workerData: 'local', dataPlane: plane, gradientDtype: variant === 'fp16' ? 'float16' : 'float32' }, metrics: { port: null, workerPort: null },
  });
  // Seconds and bytes as of the end of step 1 and of the last step (before the
  // final evaluation, whose parameter broadcast is not a step's).
  const events = new EventBus();
  let cluster: Cluster | null = null;
  const marks = new Map<number, Promise<[number, number, number]>>();
  events.subscribe((e) => {
    if (e.type === 'progress' && (e.iteration === 1 || e.iteration === STEPS) && cluster) {
      const bytes = bytesMoved(cluster), backbone = backboneParamBytes(cluster);
      marks.set(e.iteration, commSeconds(cluster).then((sec) => [sec, bytes, backbone]));
    }
  });
  await runLocal(cfg, workers, { events, onCluster: (c) => { cluster = c; } });
  const [[s0, b0, w0], [s1, b1, w1]] = await Promise.all([marks.get(1)!, marks.get(STEPS)!]);
  const seconds = (s1 - s0) / (STEPS - 1);
  const bytesPerStep = (b1 - b0) / (STEPS - 1);
  const backboneBytesPerStep = (w1 - w0) / (STEPS - 1);
  return { modelMiB: mib, workers, plane, variant, bytesPerStep, backboneBytesPerStep, seconds, gbPerSec: bytesPerStep / seconds / 1e9, ceiling, ofCeiling: bytesPerStep / seconds / ceiling };
}

/**
 * For each model size and worker count: the raw-TCP ceiling of that traffic,
 * then tunefleet on the data plane (tcp), and on the gRPC fallback where
 * `grpcSizes` says (it is slow at the largest sizes).
 */
export async function benchCommunication(sizes = [1, 16, 100, 400], workerCounts = [1, 2, 4], grpcSizes = [16, 100]): Promise<CommRow[]> {
  const rows: CommRow[] = [];
  for (const mib of sizes) {
    const path = await saveWideModel(join(tempDirBench(), 'model'), mib, 'zeros');
    for (const workers of workerCounts) {
      const ceiling = await rawTcpStep(workers, Math.round(mib * MiB));
      rows.push(await commRow({ path, mib, workers, plane: 'tcp', variant: 'fp32', ceiling }));
      if (grpcSizes.includes(mib)) rows.push(await commRow({ path, mib, workers, plane: 'grpc', variant: 'fp32', ceiling }));
      // At 100 MiB with 2 workers, also float16 gradients and a frozen backbone.
      if (mib === 100 && workers === 2) for (const variant of ['fp16', 'frozen backbone'] as const) rows.push(await commRow({ path, mib, workers, plane: 'tcp', variant, ceiling }));
    }
  }
  return rows;
}
