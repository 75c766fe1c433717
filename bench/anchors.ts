// PyTorch anchors, measured the fair way: every run in a fresh process with
// nothing else running, ours and PyTorch's interleaved (ours, PyTorch, ours,
// PyTorch, …) so a slow moment of the machine hits both, each the median of
// `rounds` runs. Per core: one process and one thread each (wasm is single-
// threaded; PyTorch is told torch.set_num_threads(1)). Two processes:
// tunefleet with 2 workers against PyTorch DDP (gloo) with 2 processes.
//
// PyTorch is run twice per round: as installed, and with glibc's malloc told
// to keep freed memory (MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_). On
// these VMs a page fault on fresh memory is slow, and PyTorch's default
// allocator returns and re-faults its activations every step: as installed it
// runs at ~1,200–1,500 examples/s one run and ~3,400 the next. The tuned run is
// PyTorch at its best here, the anchor the goals are measured against.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { median } from '../core/util/numbers';

const ROOT = join(__dirname, '..', '..');
export const KEEP_FREED_MEMORY = { MALLOC_MMAP_THRESHOLD_: '4294967296', MALLOC_TRIM_THRESHOLD_: '4294967296' };

export interface AnchorRow {
  model: string;
  processes: number;
  tunefleet: number;
  pytorch: number;
  pytorchTuned: number;
  /** tunefleet ÷ PyTorch with the tuned allocator (the goal's ratio). */
  ratio: number;
  /** tunefleet ÷ PyTorch as installed. */
  ratioAsInstalled: number;
}

/** Run a benchmark process (in the repository root, its stderr dropped) and parse the JSON of its last stdout line. */
export function lastJsonLine(cmd: string, args: string[], env: Record<string, string> = {}): Record<string, unknown> {
  const out = execFileSync(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 * 2 ** 20 }).toString();
  return JSON.parse(out.trim().split('\n').pop()!);
}

function examplesPerSec(cmd: string, args: string[], env: Record<string, string> = {}): number {
  return lastJsonLine(cmd, args, env).examples_per_sec as number;
}

export function hasPyTorch(): boolean {
  try {
    execFileSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' });
    return true;
  } catch {
    return false; // apt-get install python3-torch to include the anchors
  }
}

function anchor(model: string, processes: number, rounds: number): AnchorRow {
  const ours: number[] = [], torch: number[] = [], tuned: number[] = [];
  const pytorch = (env?: Record<string, string>) => examplesPerSec('/usr/bin/python3', ['bench/pytorch_anchor.py', model, String(processes)], env);
  for (let i = 0; i < rounds; i++) {
    ours.push(examplesPerSec(process.execPath, ['dist/bench/step-rate.js', model, String(processes > 1 ? processes : 0)]));
    torch.push(pytorch());
    tuned.push(pytorch(KEEP_FREED_MEMORY));
  }
  const [t, p, pt] = [ours, torch, tuned].map(median);
  return { model, processes, tunefleet: t, pytorch: p, pytorchTuned: pt, ratio: t / pt, ratioAsInstalled: t / p };
}

/** Per core for the seed and CIFAR CNNs, and 2 processes for the seed CNN; null without PyTorch. */
export function benchAnchors(rounds = 3): AnchorRow[] | null {
  if (!hasPyTorch()) return null;
  return [anchor('seed-cnn', 1, rounds), anchor('cifar-cnn', 1, rounds), anchor('seed-cnn', 2, rounds)];
}
