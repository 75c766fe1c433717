// `npm run bench`: the benchmark suite (not part of `npm test`). Every number
// is measured in this run, on this machine; ratios compare runs made here in
// the same script, because these machines are noisy. Writes
// bench/results/bench.json and bench.md and prints the tables.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { benchCommunication, rawTcp } from './communication';
import { benchCompute } from './compute';
import { benchDistribution } from './distribution';
import { benchKernels, kernelTable } from './kernels';
import { markdownTable, writeBenchResult } from './report';

function pytorchDdp(processes: number): number | null {
  try {
    execFileSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' });
  } catch {
    return null; // apt-get install python3-torch to include the anchor
  }
  const out = execFileSync('/usr/bin/python3', [join(__dirname, '..', '..', 'bench', 'ddp.py'), String(processes), '200']).toString();
  return JSON.parse(out.trim().split('\n').pop()!).examples_per_sec;
}

const fmt = (v: number | null, digits = 0) => (v === null ? 'n/a' : v.toFixed(digits));
const goal = (ok: boolean) => (ok ? 'met' : 'not met');

async function main() {
  const sizes = (process.env.BENCH_COMM_MIB ?? '1,16,100,400').split(',').map(Number);
  const kernels = await benchKernels();
  const compute = await benchCompute();
  const distribution = await benchDistribution();
  const ceiling = await rawTcp();
  const communication = await benchCommunication(ceiling, sizes);
  const ddp = pytorchDdp(2);

  const [a, b, c] = distribution;
  const at100 = communication.filter((r) => r.modelMiB === 100);
  const best100 = at100.length ? Math.max(...at100.map((r) => r.ofCeiling)) : null;
  const goals = [
    ['b/a ≥ 0.95 (1 worker vs plain)', fmt(b.ratioToPlain, 2), goal(b.ratioToPlain >= 0.95)],
    ['c/a ≥ 1.8 (2 workers vs plain)', fmt(c.ratioToPlain, 2), goal(c.ratioToPlain >= 1.8)],
    ['communication ≥ 70% of raw TCP at 100 MiB', best100 === null ? 'n/a' : `${(100 * best100).toFixed(0)}% (best worker count)`, goal((best100 ?? 0) >= 0.7)],
    ['fp16 gradients halve bytes, accuracy within 0.5 points', 'fp16 transfer not implemented', 'not met'],
    ['frozen backbone: zero bytes after the first step', 'tested in test/distributed.test.ts', 'met'],
    ['2 wasm workers ≥ 0.5× PyTorch DDP (2 processes)', ddp === null ? 'PyTorch not installed' : `${fmt(c.examplesPerSec)} vs ${fmt(ddp)} = ${(c.examplesPerSec / ddp).toFixed(2)}×`, ddp === null ? 'n/a' : goal(c.examplesPerSec / ddp >= 0.5)],
  ];
  const tables = [
    '### Goals', markdownTable(['goal', 'measured', ''], goals),
    '### Compute: training examples/s, batch 64, one process', markdownTable(['backend', 'model', 'examples/s', 'note'], compute.map((r) => [r.backend, r.model, fmt(r.examplesPerSec), r.note])),
    '### wasm conv kernels, stock against ours', kernelTable(kernels),
    '### Distribution overhead: seed CNN, Fashion-MNIST, global batch 64, wasm', markdownTable(['setup', 'examples/s', '÷ (a)'], [
      ...distribution.map((r) => [r.setup, fmt(r.examplesPerSec), fmt(r.ratioToPlain, 2)]),
      ['PyTorch DDP, gloo, 2 processes, 1 thread each', fmt(ddp), ddp === null ? 'n/a' : fmt(ddp / a.examplesPerSec, 2)],
    ]),
    `### Communication: one step's broadcast + gradient collection on loopback (raw TCP ceiling ${(ceiling / 1e9).toFixed(2)} GB/s)`,
    markdownTable(['model MiB', 'workers', 'MiB moved / step', 'seconds', 'GB/s', '% of raw TCP'], communication.map((r) => [r.modelMiB, r.workers, fmt(r.bytesPerStep / 2 ** 20), r.seconds.toFixed(3), r.gbPerSec.toFixed(2), (100 * r.ofCeiling).toFixed(0)])),
  ];
  writeBenchResult('bench', { kernels, compute, distribution, rawTcpBytesPerSec: ceiling, communication, pytorchDdpExamplesPerSec: ddp, goals }, tables.join('\n\n'));
}

main().catch((err) => { console.error(err); process.exit(1); });
