// Section 3: communication. One step's parameter broadcast plus gradient
// collection for models of 1-400 MiB with 1, 2 and 4 workers on loopback,
// beside raw TCP loopback throughput measured in the same run (the ceiling).
// The model is one wide dense layer, trained on one example per worker so the
// compute is small; the bytes a step moves are W × (parameters + gradients),
// and its communication time is the mean of the `broadcast` and `upload`
// step phases the coordinator records (tunefleet_step_phase_seconds) over the
// steps after the first (which also carries joining and model building).
import { fork } from 'node:child_process';
import { connect } from 'node:net';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { parseJob } from '../core/config';
import { saveModel } from '../core/model-io';
import { runLocal } from '../cli/local';
import { Cluster } from '../coordinator/cluster';
import { EventBus } from '../core/events';
import { tempDirBench } from './report';

const MiB = 2 ** 20;

/** Raw TCP loopback throughput, bytes/s: this process sends to a child that counts. */
export async function rawTcp(bytes = 1024 * MiB): Promise<number> {
  const child = fork(join(__dirname, 'tcp-sink.js'), [String(bytes)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const port = await new Promise<number>((r) => child.once('message', (m) => r(Number(m))));
  const chunk = Buffer.alloc(MiB, 7);
  const start = performance.now();
  const socket = connect(port, '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  for (let sent = 0; sent < bytes; sent += chunk.length) if (!socket.write(chunk)) await new Promise((r) => socket.once('drain', r));
  await new Promise((r) => child.once('message', r)); // the sink has received every byte
  const seconds = (performance.now() - start) / 1000;
  socket.destroy();
  child.kill();
  return bytes / seconds;
}

async function wideModel(mib: number): Promise<{ path: string; paramBytes: number }> {
  const units = Math.max(1, Math.round((mib * MiB) / 4 / 785));
  const model = tf.sequential({ layers: [
    tf.layers.flatten({ name: 'flatten', inputShape: [28, 28, 1] }),
    tf.layers.dense({ name: 'wide', units, kernelInitializer: 'zeros' }),
    tf.layers.dense({ name: 'head', units: 10, activation: 'softmax', kernelInitializer: 'zeros' }),
  ] });
  const dir = join(tempDirBench(), 'model');
  await saveModel(model, dir);
  const paramBytes = model.countParams() * 4;
  model.dispose();
  return { path: join(dir, 'model.json'), paramBytes };
}

const STEPS = 4;

type Registry = Cluster['metrics']['registry'];

/** Total broadcast + upload seconds recorded so far. */
async function commSeconds(registry: Registry): Promise<number> {
  const values = (await registry.getSingleMetric('tunefleet_step_phase_seconds')!.get()).values as { metricName?: string; labels: Record<string, unknown>; value: number }[];
  const sum = (phase: string) => values.find((x) => x.metricName === 'tunefleet_step_phase_seconds_sum' && x.labels.phase === phase)?.value ?? 0;
  return sum('broadcast') + sum('upload');
}

export interface CommRow { modelMiB: number; workers: number; bytesPerStep: number; seconds: number; gbPerSec: number; ofCeiling: number }

export async function benchCommunication(ceiling: number, sizes = [1, 16, 100, 400], workerCounts = [1, 2, 4]): Promise<CommRow[]> {
  const rows: CommRow[] = [];
  for (const mib of sizes) {
    const { path, paramBytes } = await wideModel(mib);
    for (const w of workerCounts) {
      const cfg = parseJob({
        name: 'bench-comm', backend: 'wasm', data: { dataset: 'fashion-mnist', download: false, validation: 8 },
        model: { from: path, replaceHead: false },
        train: { iterations: STEPS, batchSize: w, evalEvery: STEPS, logEvery: 1, checkpointEvery: 1000, outDir: tempDirBench() },
        cluster: { workerData: 'local' }, metrics: { port: null, workerPort: null },
      });
      // Snapshot the phase sums after the first step, then subtract.
      const events = new EventBus();
      let registry: Registry | null = null;
      let first: Promise<number> | null = null;
      events.subscribe((e) => { if (e.type === 'progress' && e.iteration === 1 && registry) first = commSeconds(registry); });
      const { cluster } = await runLocal(cfg, w, { events, onCluster: (c) => { registry = c.metrics.registry; } });
      const seconds = ((await commSeconds(cluster.metrics.registry)) - (await first!)) / (STEPS - 1);
      const bytesPerStep = 2 * w * paramBytes;
      rows.push({ modelMiB: mib, workers: w, bytesPerStep, seconds, gbPerSec: bytesPerStep / seconds / 1e9, ofCeiling: bytesPerStep / seconds / ceiling });
    }
  }
  return rows;
}
