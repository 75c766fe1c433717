// `npm run bench:profile`: where a wasm training step's time goes, per kernel,
// for each zoo model (batch 64): tf.profile over one gradient computation,
// averaged over 10 steps after 5 warm-up steps, our training kernels
// installed. Writes bench/results/profile.json and .md.
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../core/backend/backends';
import { computeGradients } from '../core/train/gradients';
import { paramSpecs } from '../core/model/params';
import { buildModel } from '../core/model/zoo';
import { MODELS, syntheticBatch } from './compute';
import { markdownTable, writeBenchResult } from './report';

const SHOWN = 6; // kernels per model in the table; the rest summed

export interface ProfileRow { model: string; kernel: string; ms: number; share: number }

async function profileModel(name: string, shape: [number, number, number], warmup = 5, steps = 10): Promise<Map<string, number>> {
  const model = buildModel(name, shape, 10, 1);
  const names = paramSpecs(model).map((s) => s.name);
  const batch = syntheticBatch(64, shape);
  for (let i = 0; i < warmup; i++) await computeGradients(model, names, batch);
  const ms = new Map<string, number>();
  for (let i = 0; i < steps; i++) {
    const info = await tf.profile(async () => { await computeGradients(model, names, batch); });
    for (const k of info.kernels) ms.set(k.name, (ms.get(k.name) ?? 0) + (k.kernelTimeMs as number) / steps);
  }
  model.dispose();
  return ms;
}

export async function benchProfile(): Promise<ProfileRow[]> {
  await initBackend('wasm');
  const rows: ProfileRow[] = [];
  for (const [name, shape] of MODELS) {
    const sorted = [...(await profileModel(name, shape))].sort((a, b) => b[1] - a[1]);
    const total = sorted.reduce((s, [, ms]) => s + ms, 0);
    const rest = sorted.slice(SHOWN).reduce((s, [, ms]) => s + ms, 0);
    for (const [kernel, ms] of [...sorted.slice(0, SHOWN), ['everything else', rest] as [string, number], ['all kernels', total] as [string, number]]) {
      rows.push({ model: name, kernel, ms, share: ms / total });
    }
  }
  return rows;
}

export function profileTable(rows: ProfileRow[]): string {
  return markdownTable(['model', 'kernel', 'ms per step', 'share'], rows.map((r) => [r.model, r.kernel, r.ms.toFixed(2), `${(100 * r.share).toFixed(0)}%`]));
}

if (require.main === module) {
  benchProfile().then((rows) => writeBenchResult('profile', { rows }, profileTable(rows))).catch((err) => { console.error(err); process.exit(1); });
}
