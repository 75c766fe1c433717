// distributed – a real coordinator (gRPC on loopback) with real worker
// processes: equivalence with the single-process trainer, frozen variables
// never re-sent, the ledger's exactly-once epoch, a lost worker's slice
// reassigned (also when its data connection is cut mid-gradient), data read
// locally by workers, a 100 MiB model, and BatchNorm (statistics estimated
// by every worker alike, or frozen).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { AddressInfo, connect, createServer } from 'node:net';
import { join } from 'node:path';
import { EventBus } from '../core/observe/events';
import { parseJob } from '../core/job/config';
import { maxRelativeDiff, readParams } from '../core/model/params';
import { train } from '../core/train/trainer';
import { CoordinatorClient, LedgerReport } from '../proto/gen/tunefleet/v1/tunefleet';
import { saveWideModel, tempDir, wasmWithIdxSet } from './fixtures';
import { firstDifference, runJob, spawnWorker } from './cluster-helpers';
import { prepareData } from '../core/job/data';
import { count } from '../core/data/dataset';
import { evaluateRange } from '../core/train/gradients';
import { loadCheckpoint } from '../core/model/checkpoint';
import { Cluster } from '../coordinator/cluster';

let dataDir = '';
before(async () => {
  dataDir = await wasmWithIdxSet(200, 40);
});

function job(overrides: Record<string, unknown> = {}) {
  return parseJob({
    name: 'dist', backend: 'wasm', data: { path: dataDir, download: false },
    train: { iterations: 20, batchSize: 64, evalEvery: 10, logEvery: 10, checkpointEvery: 20, outDir: tempDir() },
    optimizer: { lr: 0.02, momentum: 0.9, weightDecay: 0.0005 },
    ...overrides,
  });
}

test('distributed – single process, 1 worker × 64 and 2 workers × 32 end with the same parameters, on either data plane', async () => {
  const single = await readParams((await train(job())).model);
  const one = await runJob(job(), 1);
  const two = await runJob(job(), 2);
  const twoGrpc = await runJob(job({ cluster: { dataPlane: 'grpc' } }), 2);
  assert.ok(one.cluster.traffic.gradientBytes > 0 && twoGrpc.cluster.traffic.gradientBytes > 0);
  const d1 = maxRelativeDiff(await readParams(one.model), single);
  const d2 = maxRelativeDiff(await readParams(two.model), single);
  const dg = maxRelativeDiff(await readParams(twoGrpc.model), single);
  assert.ok(d1 <= 1e-5, `1 worker: max relative difference ${d1}`);
  assert.ok(d2 <= 1e-5, `2 workers: max relative difference ${d2}`);
  assert.ok(dg <= 1e-5, `2 workers, tensors on gRPC: max relative difference ${dg}`);
  assert.ok(two.curve.length === 2 && Math.abs(two.curve[1].valAccuracy - one.curve[1].valAccuracy) < 0.03);
});

/** The statistics (`true`) or the other variables of `p`. */
const part = (p: Map<string, Float32Array>, statistics: boolean) => new Map([...p].filter(([n]) => /\/moving_/.test(n) === statistics));

/** A seed-cnn with BatchNorm, 10 iterations, evaluated at 5 and 10, statistics from 100 examples. */
function batchNormJob(overrides: Record<string, unknown> = {}) {
  return job({
    model: { batchNorm: true },
    train: { iterations: 10, batchSize: 64, evalEvery: 5, logEvery: 10, checkpointEvery: 10, statisticsExamples: 100, outDir: tempDir() },
    ...overrides,
  });
}

test('distributed – BatchNorm: 1 worker ends as the single process does, statistics too; 2 workers with 2 shards bit-identical to 0; the workers\' evaluations equal the saved model\'s own', async () => {
  const single = await readParams((await train(batchNormJob())).model);
  const one = await readParams((await runJob(batchNormJob(), 1)).model);
  // The weights as without BatchNorm; a channel's mean (of a conv output without bias, near 0) differs more relative to its largest.
  const [weights, statistics] = [false, true].map((s) => maxRelativeDiff(part(one, s), part(single, s)));
  assert.ok(weights <= 1e-5 && statistics <= 1e-4, `1 worker: max relative difference ${weights}, statistics ${statistics}`);
  assert.ok(single.get('conv1_bn/moving_variance')!.every((v) => v > 0 && v !== 1), 'statistics estimated, not the initial ones');
  // Each worker trains on its own 32 of the 64 (BatchNorm sees its slice, as in DDP without SyncBN), so 2 workers differ from 1; shards change nothing.
  const two = await runJob(batchNormJob(), 2);
  const sharded = await runJob(batchNormJob({ cluster: { shards: 2, partitionMiB: 0.05 } }), 2);
  assert.equal(firstDifference(await readParams(sharded.model), await readParams(two.model)), null);
  // The last evaluation: two workers each estimated the statistics; the saved model holds the coordinator's estimate at the same weights.
  const cfg = batchNormJob();
  const data = await prepareData(cfg);
  const here = await evaluateRange(two.model, data.val, Uint32Array.from({ length: count(data.val) }, (_, i) => i), data.norm);
  const last = two.curve[two.curve.length - 1];
  assert.equal(last.iteration, 10);
  assert.equal(last.valAccuracy, here.accuracy);
  assert.ok(Math.abs(last.valLoss - here.loss) <= 1e-6 * here.loss, `loss ${last.valLoss} vs ${here.loss}`);
});

test('distributed – BatchNorm statistics frozen (freezeStats): fine-tuning leaves them bit for bit as pretrained, and 2 workers end as the single process does', async () => {
  const pretrained = await train(batchNormJob());
  const fineTune = () => batchNormJob({
    model: { batchNorm: true, from: join(pretrained.outDir, 'model') },
    optimizer: { lr: 0.02, momentum: 0.9, layers: [{ match: 'head/*', lrMult: 10 }, { match: '*_bn/*', lrMult: 0.1, freezeStats: true }, { match: '*', lrMult: 0.1 }] },
  });
  const single = await readParams((await train(fineTune())).model);
  assert.deepEqual(part(single, true), part(await readParams(pretrained.model), true));
  const two = await readParams((await runJob(fineTune(), 2)).model);
  assert.deepEqual(part(two, true), part(single, true));
  // A frozen BatchNorm does not depend on the batch, so two halves' mean gradient is the whole batch's, but for rounding (through 1/σ).
  const d = maxRelativeDiff(part(two, false), part(single, false));
  assert.ok(d <= 1e-4, `2 workers: max relative difference ${d}`);
});

test('distributed – frozen variables are sent once per worker, then never again; their gradients never', async () => {
  const cfg = job({ optimizer: { lr: 0.02, layers: [{ match: 'conv*', lrMult: 0 }] }, train: { iterations: 6, batchSize: 32, evalEvery: 6, checkpointEvery: 6, outDir: tempDir() } });
  const { cluster } = await runJob(cfg, 2);
  const bytes = (name: string) => cluster.traffic.paramBytes.get(name) ?? 0;
  assert.equal(bytes('conv1/kernel'), 2 * 3 * 3 * 1 * 16 * 4, 'once per worker');
  assert.equal(bytes('conv2/bias'), 2 * 32 * 4);
  // Trainable ones go out at every version each worker computes at.
  assert.ok(bytes('fc1/kernel') >= 6 * 1568 * 64 * 4, `fc1/kernel ${bytes('fc1/kernel')}`);
  const trainableGradBytes = (1568 * 64 + 64 + 64 * 10 + 10) * 4;
  assert.equal(cluster.traffic.gradientBytes, 2 * 6 * trainableGradBytes, 'each worker, each step, trainable variables only');
});

test('distributed – gradual unfreezing: conv layers frozen until iteration 4 cost no gradient bytes, then train; workers join the next stage by themselves', async () => {
  const outDir = tempDir();
  const cfg = job({ optimizer: { lr: 0.02, unfreeze: [{ match: 'conv*', at: 4 }] }, train: { iterations: 8, batchSize: 32, evalEvery: 4, checkpointEvery: 2, keepCheckpoints: 10, outDir } });
  let first: Cluster | null = null;
  const { cluster, curve, procs } = await runJob(cfg, 2, (c) => { first ??= c; });
  const headBytes = (1568 * 64 + 64 + 64 * 10 + 10) * 4, convBytes = (3 * 3 * 16 + 16 + 3 * 3 * 16 * 32 + 32) * 4;
  assert.equal(first!.traffic.gradientBytes, 2 * 4 * headBytes, 'until 4: each worker, each step, no conv gradient');
  assert.equal(cluster.traffic.gradientBytes, 2 * 4 * (headBytes + convBytes), 'from 4: every variable');
  assert.deepEqual(curve.map((p) => p.iteration), [4, 8], 'one curve over both stages');
  assert.ok(curve[1].wallSeconds > curve[0].wallSeconds, 'timed from the first stage');
  const conv1 = async (it: number) => (await readParams((await loadCheckpoint(join(outDir, `ckpt-${String(it).padStart(8, '0')}`))).model)).get('conv1/kernel')!;
  assert.deepEqual(await conv1(4), await conv1(2), 'frozen until 4');
  assert.notDeepEqual(await conv1(6), await conv1(4), 'trained after');
  assert.ok(procs.every((p) => p.exitCode === 0), 'the workers rejoined and were told the job finished');
  assert.equal(cluster.ledger.report(0).complete, true, 'epoch 0 exactly once across the stages');
});

function ledger(port: number, epoch: number): Promise<LedgerReport> {
  const client = new CoordinatorClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => client.getLedger({ epoch }, (err, r) => { client.close(); err ? reject(err) : resolve(r); }));
}

test('distributed – the ledger (over gRPC) shows one full epoch used exactly once, though a worker was killed mid-run', async () => {
  const cfg = job({ train: { iterations: 8, batchSize: 48, evalEvery: 8, checkpointEvery: 8, outDir: tempDir() } });
  let report: LedgerReport | null = null;
  let killed = false;
  const { curve } = await runJob(cfg, 2, (cluster, port, procs) => {
    const check = setInterval(async () => {
      if (!killed && cluster.ledger.report(0).examplesUsed >= 96) { procs[1].kill('SIGKILL'); killed = true; }
      if (cluster.ledger.report(1).examplesUsed > 0 && !report) { clearInterval(check); report = await ledger(port, 0); }
    }, 5);
  });
  assert.ok(killed, 'a worker was killed');
  assert.ok(report, 'ledger read over gRPC');
  const r = report as LedgerReport;
  assert.equal(r.datasetSize, 200);
  assert.equal(r.examplesUsed, 200);
  assert.equal(r.distinct, 200);
  assert.ok(r.complete);
  assert.ok(r.entries.some((e) => e.workerId === 'w0') && r.entries.some((e) => e.workerId === 'w1'));
  assert.equal(curve[curve.length - 1].iteration, 8, 'the job completed');
});

test('distributed – workers can read the dataset locally and receive only indices; a 1-example evaluation with 2 workers completes', async () => {
  const { cluster, curve } = await runJob(job({ data: { path: dataDir, download: false, validation: 1 }, cluster: { workerData: 'local' }, train: { iterations: 4, batchSize: 32, evalEvery: 4, checkpointEvery: 4, outDir: tempDir() } }), 2);
  assert.equal(cluster.traffic.dataBytes, 0);
  assert.equal(curve.length, 1);
  assert.ok([0, 1].includes(curve[0].valAccuracy), 'one example: right or wrong (which worker evaluates it: test/step.test.ts)');
});

test('distributed – a model of over 100 MiB is broadcast and trained for a step', async () => {
  const path = await saveWideModel(join(tempDir(), 'big'), 104);
  const cfg = job({ model: { from: path, replaceHead: false }, train: { iterations: 1, batchSize: 16, evalEvery: 1, checkpointEvery: 1, outDir: tempDir() }, data: { path: dataDir, download: false, validation: 8 } });
  const { cluster, curve } = await runJob(cfg, 1);
  const sent = [...cluster.traffic.paramBytes.values()].reduce((a, b) => a + b, 0);
  assert.ok(sent >= 100 * 2 ** 20, `broadcast ${sent} bytes`);
  assert.ok(cluster.traffic.gradientBytes >= 100 * 2 ** 20, `gradients ${cluster.traffic.gradientBytes} bytes`);
  assert.equal(curve[0].iteration, 1);
});

test('distributed – a worker that joins mid-job (a scale-up) takes part from the next step', async () => {
  // Long enough (a few seconds) for a second worker process to start and join.
  const iterations = 400;
  const cfg = job({ train: { iterations, batchSize: 32, evalEvery: iterations, checkpointEvery: iterations, outDir: tempDir() } });
  const events = new EventBus();
  let lateJoinedAtStep = -1;
  let steps = 0;
  events.subscribe((e) => {
    if (e.type === 'worker.joined' && e.worker === 'late') lateJoinedAtStep = steps;
    if (e.type === 'progress') steps = e.iteration;
  });
  const { cluster, curve } = await runJob({ ...cfg, train: { ...cfg.train, logEvery: 1 } }, 1, (c, port, procs) => {
    const t = setInterval(() => {
      if (c.ledger.report(0).examplesUsed >= 64) { clearInterval(t); procs.push(spawnWorker(port, 'late')); }
    }, 5);
  }, { events });
  assert.ok(lateJoinedAtStep > 0 && lateJoinedAtStep < iterations - 1, `late worker joined after step ${lateJoinedAtStep}`);
  const epochs = Math.ceil((iterations * 32) / 200);
  const entries = Array.from({ length: epochs }, (_, e) => cluster.ledger.report(e).entries).flat();
  assert.ok(entries.some((e) => e.workerId === 'late' && e.step > lateJoinedAtStep), 'the late worker computed slices');
  // The ledger keeps the current and the previous epoch.
  assert.equal(cluster.ledger.report(epochs - 2).complete, true, `epoch ${epochs - 2} exactly once`);
  assert.equal(cluster.ledger.report(0).examplesUsed, 0, 'older epochs are dropped');
  assert.equal(curve[0].iteration, iterations);
});

test('distributed – batchPolicy per-worker: a joining worker doubles the global batch and the learning rate ramps to 2×', async () => {
  const iterations = 300;
  const cfg = job({
    train: { iterations, batchSize: 16, evalEvery: iterations, checkpointEvery: iterations, logEvery: 1, outDir: tempDir(), batchPolicy: 'per-worker', scaleWarmup: 10 },
    optimizer: { lr: 0.01, momentum: 0.9 },
  });
  const events = new EventBus();
  const lrs: { iteration: number; lr: number }[] = [];
  events.subscribe((e) => { if (e.type === 'lr.changed') lrs.push({ iteration: e.iteration, lr: e.lr }); });
  const { cluster } = await runJob(cfg, 1, (c, port, procs) => {
    const t = setInterval(() => {
      if (c.ledger.report(0).examplesUsed >= 32) { clearInterval(t); procs.push(spawnWorker(port, 'late')); }
    }, 5);
  }, { events });
  const perStep = new Map<number, number>();
  for (const e of cluster.ledger.snapshot()) perStep.set(e.step, (perStep.get(e.step) ?? 0) + e.indices.length);
  perStep.delete(Math.min(...perStep.keys())); // may be cut in half where the ledger's kept epochs begin
  assert.deepEqual(new Set(perStep.values()), new Set([32]), 'at the end, 2 workers × 16 per step');
  const last = lrs[lrs.length - 1];
  assert.ok(Math.abs(last.lr - 0.02) < 1e-12, `the rate reached 2 × 0.01: ${last.lr}`);
  const ramp = lrs.filter((p) => p.lr > 0.01 && p.lr < 0.02);
  assert.ok(ramp.length >= 9, `ramped over scaleWarmup iterations: ${ramp.map((p) => p.lr.toFixed(4))}`);
});

test('distributed – float16 gradients: exactly half the gradient bytes, parameters within half-precision noise of float32', async () => {
  const cfg = (gradientDtype: string) => job({ cluster: { gradientDtype }, train: { iterations: 10, batchSize: 64, evalEvery: 10, checkpointEvery: 10, outDir: tempDir() } });
  const full = await runJob(cfg('float32'), 2);
  const half = await runJob(cfg('float16'), 2);
  assert.equal(half.cluster.traffic.gradientBytes * 2, full.cluster.traffic.gradientBytes);
  const diff = maxRelativeDiff(await readParams(full.model), await readParams(half.model));
  assert.ok(diff > 0 && diff < 5e-3, `max relative difference ${diff}`);
});

/** A TCP proxy to `target` that cuts the first connection once `cutAfter` bytes have gone from client to server; later connections pass. */
async function cuttingProxy(target: number, cutAfter: number): Promise<{ port: number; cut: () => boolean; close: () => void }> {
  let wasCut = false;
  let first = true;
  const server = createServer((client) => {
    const upstream = connect(target, '127.0.0.1');
    const cutting = first;
    first = false;
    let up = 0;
    client.on('data', (d) => {
      up += d.length;
      if (cutting && up > cutAfter) { upstream.write(d.subarray(0, d.length - (up - cutAfter))); client.destroy(); upstream.destroy(); wasCut = true; return; }
      upstream.write(d);
    });
    upstream.pipe(client);
    for (const s of [client, upstream]) s.on('error', () => {}).on('close', () => { client.destroy(); upstream.destroy(); });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as AddressInfo).port, cut: () => wasCut, close: () => server.close() };
}

test('distributed – a data connection cut in the middle of a gradient: the worker is lost, its slice reassigned, each example once', async () => {
  const cfg = job({ train: { iterations: 8, batchSize: 48, evalEvery: 8, checkpointEvery: 8, outDir: tempDir() } });
  const gradientBytes = (3 * 3 * 16 + 16 + 3 * 3 * 16 * 32 + 32 + 1568 * 64 + 64 + 64 * 10 + 10) * 4;
  // HELLO, then two steps' gradients and a half: the cut lands inside step 3's upload (fc1/kernel alone is 98% of it).
  let proxy: Awaited<ReturnType<typeof cuttingProxy>> | null = null;
  const { cluster, curve } = await runJob(cfg, 2, (c) => {
    void cuttingProxy(c.dataPlanePort!, 72 + 2.5 * (gradientBytes + 8 * 40)).then((p) => { proxy = p; c.useDataPlane(p.port); });
  });
  proxy!.close();
  assert.ok(proxy!.cut(), 'the proxy cut the connection');
  const text = await cluster.metrics.text();
  assert.match(text, /tunefleet_rejected_messages_total\{[^}]*reason="truncated"[^}]*\} 1$/m);
  assert.equal(cluster.ledger.report(0).complete, true, 'epoch 0 exactly once');
  assert.equal(cluster.ledger.report(0).examplesUsed, 200);
  assert.equal(curve[curve.length - 1].iteration, 8, 'the job completed');
});
