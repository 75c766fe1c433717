// Section 3: communication. One step's parameter broadcast plus gradient
// collection for models of 1-400 MiB with 1, 2 and 4 workers on loopback,
// beside raw TCP loopback throughput measured in the same run (the ceiling).
// The model is one wide dense layer, trained on one example per worker so the
// compute is small; the bytes a step moves are what the coordinator counted
// (parameters sent + gradients received), and its communication time is the
// mean of the `broadcast` and `upload` step phases the coordinator records
// (tunefleet_step_phase_seconds), both over the steps after the first (which
// also carries joining and model building). Beside it, two ceilings measured
// in the same run: raw TCP, and gRPC itself streaming 1 MiB chunks.
import * as grpc from '@grpc/grpc-js';
import { fork } from 'node:child_process';
import { connect } from 'node:net';
import { join } from 'node:path';
import { parseJob } from '../core/job/config';
import { runLocal } from '../cli/local';
import { Cluster } from '../coordinator/cluster';
import { EventBus } from '../core/observe/events';
import { writeWithBackpressure } from '../core/wire/backpressure';
import { CoordinatorClient, DType } from '../proto/gen/tunefleet/v1/tunefleet';
import { phaseSums, tempDirBench } from './report';
import { saveWideModel } from '../test/fixtures';

const MiB = 2 ** 20;

/** A counting child process (`tcp-sink` or `grpc-sink`): its port, and a promise for "every byte arrived". */
async function sink(file: string, bytes: number): Promise<{ port: number; arrived: Promise<unknown>; kill: () => void }> {
  const child = fork(join(__dirname, file), [String(bytes)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const port = await new Promise<number>((r) => child.once('message', (m) => r(Number(m))));
  return { port, arrived: new Promise((r) => child.once('message', r)), kill: () => child.kill() };
}

/** Raw TCP loopback throughput, bytes/s: this process sends to a child that counts. */
export async function rawTcp(bytes = 1024 * MiB): Promise<number> {
  const { port, arrived, kill } = await sink('tcp-sink.js', bytes);
  const chunk = Buffer.alloc(MiB, 7);
  const start = performance.now();
  const socket = connect(port, '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  for (let sent = 0; sent < bytes; sent += chunk.length) if (!socket.write(chunk)) await new Promise((r) => socket.once('drain', r));
  await arrived;
  const seconds = (performance.now() - start) / 1000;
  socket.destroy();
  kill();
  return bytes / seconds;
}

/**
 * What gRPC itself moves here, bytes/s: this process streams 1 MiB gradient
 * chunks (the generated codec, backpressure respected) to a bare server in a
 * child process. tunefleet's communication cannot beat this on its transport.
 */
export async function rawGrpc(bytes = 512 * MiB): Promise<number> {
  const { port, arrived, kill } = await sink('grpc-sink.js', bytes);
  const client = new CoordinatorClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const call = client.session();
  call.on('data', () => {});
  call.on('error', () => {});
  const data = new Uint8Array(MiB);
  const start = performance.now();
  for (let offset = 0; offset < bytes; offset += MiB) {
    await writeWithBackpressure(call, { kind: { $case: 'gradient', value: { name: 'w', dtype: DType.FLOAT32, shape: [bytes / 4], offset, data } } });
  }
  await arrived;
  const seconds = (performance.now() - start) / 1000;
  client.close();
  kill();
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
  modelMiB: number; workers: number; variant: Variant; bytesPerStep: number; seconds: number; gbPerSec: number; ofCeiling: number;
  /** Bytes of the `wide` layer (the backbone) moved per step: its parameters sent (a frozen one's gradients are never sent). */
  backboneBytesPerStep: number;
}

const bytesMoved = (c: Cluster) => [...c.traffic.paramBytes.values()].reduce((a, b) => a + b, 0) + c.traffic.gradientBytes;
const backboneParamBytes = (c: Cluster) => [...c.traffic.paramBytes].filter(([name]) => name.startsWith('wide/')).reduce((a, [, b]) => a + b, 0);

/** One row: `workers` local workers, `STEPS` steps of the wide model; the first step (joining, model building) is left out. */
async function commRow(path: string, mib: number, workers: number, variant: Variant, ceiling: number): Promise<CommRow> {
  const cfg = parseJob({
    name: 'bench-comm', backend: 'wasm', data: { dataset: 'fashion-mnist', download: false, validation: 8 },
    model: { from: path, replaceHead: false },
    train: { iterations: STEPS, batchSize: workers, evalEvery: STEPS, logEvery: 1, checkpointEvery: 1000, outDir: tempDirBench() },
    optimizer: { layers: variant === 'frozen backbone' ? [{ match: 'wide/*', lrMult: 0 }] : [] },
    cluster: { workerData: 'local', gradientDtype: variant === 'fp16' ? 'float16' : 'float32' }, metrics: { port: null, workerPort: null },
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
  return { modelMiB: mib, workers, variant, bytesPerStep, backboneBytesPerStep, seconds, gbPerSec: bytesPerStep / seconds / 1e9, ofCeiling: bytesPerStep / seconds / ceiling };
}

export async function benchCommunication(ceiling: number, sizes = [1, 16, 100, 400], workerCounts = [1, 2, 4]): Promise<CommRow[]> {
  const rows: CommRow[] = [];
  for (const mib of sizes) {
    const path = await saveWideModel(join(tempDirBench(), 'model'), mib, 'zeros');
    for (const w of workerCounts) rows.push(await commRow(path, mib, w, 'fp32', ceiling));
    // At 100 MiB with 2 workers, also float16 gradients and a frozen backbone.
    if (mib === 100) for (const v of ['fp16', 'frozen backbone'] as const) rows.push(await commRow(path, mib, 2, v, ceiling));
  }
  return rows;
}
