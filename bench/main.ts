// `npm run bench`: the benchmark suite (not part of `npm test`). Every number
// is measured in this run, on this machine; ratios compare runs made here in
// the same script, because these machines are noisy. Writes
// bench/results/bench.json and bench.md and prints the tables.
import { AnchorRow, benchAnchors } from './anchors';
import { batchNormTable, benchBatchNorm } from './batch-norm';
import { benchCommunication, CommRow, rawGrpc, rawTcpStep } from './communication';
import { benchCompute } from './compute';
import { benchDistribution } from './distribution';
import { benchFp16 } from './fp16';
import { benchTimeToAccuracy, TtaRow, ttaTable } from './time-to-accuracy';
import { PHASES } from '../core/observe/metrics';
import { benchKernels, kernelTable } from './kernels';
import { benchProfile, profileTable } from './profile';
import { markdownTable, writeBenchResult } from './report';

const fmt = (v: number | null, digits = 0) => (v === null ? 'n/a' : v.toFixed(digits));
const goal = (ok: boolean) => (ok ? 'met' : 'not met');

function anchorGoal(what: string, anchors: AnchorRow[] | null, model: string, processes: number, min: number): string[] {
  const r = anchors?.find((x) => x.model === model && x.processes === processes);
  if (!r) return [what, 'PyTorch not installed', 'n/a'];
  return [what, `${fmt(r.tunefleet)} vs ${fmt(r.pytorchTuned)} = ${r.ratio.toFixed(2)}× (vs PyTorch as installed, ${fmt(r.pytorch)}: ${r.ratioAsInstalled.toFixed(2)}×)`, goal(r.ratio >= min)];
}

function ttaGoal(rows: TtaRow[], model: string, max: number): string[] {
  const r = rows.find((x) => x.model === model && x.setup === 'tunefleet, 2 workers');
  const what = `time to 90%, fashion-transfer, ${model}: tunefleet 2 workers ≤ ${max}× PyTorch single-process (2 threads)`;
  if (!r || r.ofPyTorch2 === null) return [what, 'n/a', 'n/a'];
  return [what, `${r.seconds!.toFixed(1)} s = ${r.ofPyTorch2.toFixed(2)}× PyTorch's`, goal(r.ofPyTorch2 <= max)];
}

async function main() {
  const sizes = (process.env.BENCH_COMM_MIB ?? '1,16,100,400').split(',').map(Number);
  // First, with nothing else started yet: the anchors run in fresh processes.
  const anchors = benchAnchors();
  const profile = await benchProfile();
  const kernels = await benchKernels();
  const compute = await benchCompute();
  const batchNorm = await benchBatchNorm();
  const distribution = await benchDistribution();
  const grpcCeiling = await rawGrpc();
  const receivePath = { onread: await rawTcpStep(1, 100 * 2 ** 20), dataEvents: await rawTcpStep(1, 100 * 2 ** 20, 5, 'data events') };
  const communication = await benchCommunication(sizes);
  const fp16 = await benchFp16();
  const tta = await benchTimeToAccuracy();

  const [, b, c] = distribution;
  const tcp = (mib: number, workers: number) => communication.find((r) => r.modelMiB === mib && r.workers === workers && r.plane === 'tcp' && r.variant === 'fp32');
  const frozen = communication.find((r) => r.variant === 'frozen backbone');
  const full2 = tcp(100, 2);
  const pct = (x: number) => `${(100 * x).toFixed(0)}%`;
  const commGoal = (what: string, rows: (CommRow | undefined)[], min: number) => {
    const found = rows.filter((r): r is CommRow => r !== undefined);
    if (!found.length) return [what, 'n/a', 'n/a'];
    const worst = Math.min(...found.map((r) => r.ofCeiling));
    return [what, found.map((r) => `${r.workers} worker${r.workers > 1 ? 's' : ''}: ${pct(r.ofCeiling)}`).join(', '), goal(worst >= min)];
  };
  const goals = [
    ['b/a ≥ 0.95 (1 worker vs plain)', fmt(b.ratioToPlain, 2), goal(b.ratioToPlain >= 0.95)],
    ['c/a ≥ 1.8 (2 workers vs plain)', fmt(c.ratioToPlain, 2), goal(c.ratioToPlain >= 1.8)],
    commGoal('data plane, 100 MiB, 1 worker: ≥ 90% of the raw-TCP ceiling', [tcp(100, 1)], 0.9),
    commGoal('data plane, 100 MiB, 4 workers: ≥ 80%', [tcp(100, 4)], 0.8),
    commGoal('data plane, 16 MiB: ≥ 70%', [1, 2, 4].map((w) => tcp(16, w)), 0.7),
    ['fp16 gradients halve bytes, accuracy within 0.5 points', `bytes × ${fp16.bytesRatio.toFixed(3)}, accuracy ${fp16.accuracyDiffPoints >= 0 ? '+' : ''}${fp16.accuracyDiffPoints.toFixed(2)} points (median of ${fp16.rows.length / 2} seeds)`, goal(fp16.bytesRatio <= 0.5 && Math.abs(fp16.accuracyDiffPoints) <= 0.5)],
    ['frozen backbone: zero bytes after the first step', frozen && full2 ? `backbone ${fmt(frozen.backboneBytesPerStep)} bytes per step after the first; all traffic ${fmt(frozen.bytesPerStep / 2 ** 20, 1)} MiB (the head) vs ${fmt(full2.bytesPerStep / 2 ** 20)} MiB unfrozen` : 'n/a', frozen ? goal(frozen.backboneBytesPerStep === 0) : 'n/a'],
    anchorGoal('per core, seed CNN: wasm ≥ 0.8× PyTorch (1 thread)', anchors, 'seed-cnn', 1, 0.8),
    anchorGoal('per core, CIFAR CNN: wasm ≥ 0.6× PyTorch (1 thread)', anchors, 'cifar-cnn', 1, 0.6),
    anchorGoal('tunefleet 2 workers ≥ 0.6× PyTorch DDP (2 processes)', anchors, 'seed-cnn', 2, 0.6),
    ttaGoal(tta.rows, 'seed-cnn', 0.6),
    ttaGoal(tta.rows, 'cifar-cnn', 1),
  ];
  const tables = [
    '### Goals', markdownTable(['goal', 'measured', ''], goals),
    '### PyTorch anchors: examples/s, batch 64, each run in a fresh process, interleaved with ours, median of 3 (PyTorch as installed, and with malloc keeping freed memory: its best here)',
    anchors ? markdownTable(['model', 'processes', 'tunefleet (wasm)', 'PyTorch as installed', 'PyTorch, malloc tuned', 'ratio (tuned)', 'ratio (as installed)'], anchors.map((r) => [
      r.model, r.processes, fmt(r.tunefleet), fmt(r.pytorch), fmt(r.pytorchTuned), r.ratio.toFixed(2), r.ratioAsInstalled.toFixed(2),
    ])) : 'PyTorch not installed (apt-get install python3-torch): no anchors.',
    '### Where a wasm training step goes (`npm run bench:profile`): ms per kernel, batch 64', profileTable(profile),
    '### Compute: training examples/s, batch 64, one process', markdownTable(['backend', 'model', 'examples/s', 'note'], compute.map((r) => [r.backend, r.model, fmt(r.examplesPerSec), r.note])),
    '### wasm conv kernels, stock against ours', kernelTable(kernels),
    '### What model.batchNorm costs on wasm (`npm run bench:batch-norm`)', batchNormTable(batchNorm),
    '### Distribution overhead: seed CNN, Fashion-MNIST, global batch 64, wasm', markdownTable(['setup', 'examples/s', '÷ (a)', ...PHASES.map((p) => `${p} ms/step`)], [
      ...distribution.map((r) => [r.setup, fmt(r.examplesPerSec), fmt(r.ratioToPlain, 2), ...PHASES.map((p) => (r.phasesMs ? fmt(r.phasesMs[p] ?? 0, 1) : ''))]),
    ]),
    `### Communication: one step's broadcast + gradient collection on loopback, beside raw TCP moving the same bytes between the same processes (gRPC alone, one stream of 1 MiB chunks between two fresh processes: ${(grpcCeiling / 1e9).toFixed(2)} GB/s)`,
    markdownTable(['model MiB', 'workers', 'plane', 'gradients', 'MiB moved / step', 'seconds', 'GB/s', 'raw TCP GB/s', '% of raw TCP'], communication.map((r) => [
      r.modelMiB, r.workers, r.plane, r.variant, fmt(r.bytesPerStep / 2 ** 20, r.bytesPerStep < 2 ** 20 ? 3 : 0), r.seconds.toFixed(3), r.gbPerSec.toFixed(2), (r.ceiling / 1e9).toFixed(2), (100 * r.ofCeiling).toFixed(0),
    ])),
    `Receive path, raw TCP, 100 MiB to 1 worker and back: reading with onread into the destination ${(receivePath.onread / 1e9).toFixed(2)} GB/s; with 'data' events and one copy ${(receivePath.dataEvents / 1e9).toFixed(2)} GB/s (× ${(receivePath.onread / receivePath.dataEvents).toFixed(2)}).`,
    '### Time to 90% on the fashion-transfer preset, seed CNN and cifar-cnn (fine-tune arm; wall seconds from the first step, evaluations included; fresh processes, interleaved, median of 3 seeds)', ttaTable(tta.rows),
    '### float16 gradients: the default fine-tuning preset (fashion-transfer, fine-tune arm, 2 workers)',
    markdownTable(['gradients', 'seed', 'gradient KiB / step', 'final accuracy'], fp16.rows.map((r) => [r.dtype, r.seed, fmt(r.gradientBytesPerStep / 1024, 1), (100 * r.finalAccuracy).toFixed(2)])),
  ];
  writeBenchResult('bench', { kernels, compute, batchNorm, distribution, rawGrpcBytesPerSec: grpcCeiling, receivePath, communication, fp16, timeToAccuracy: tta, anchors, profile, goals }, tables.join('\n\n'));
}

main().catch((err) => { console.error(err); process.exit(1); });
