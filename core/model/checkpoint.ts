// Checkpoints: the model in the tfjs LayersModel format (model.json +
// weights.bin, loadable by tf.loadLayersModel) plus the training state
// (state.json: iteration, seed, job, sampler position; optimizer.bin:
// momentum buffers; ledger.json: the coordinator's ledger, empty for a
// single-process run).
// state.json lists the SHA-256 of every other file, and of itself (`self`: of
// its JSON without that field); a checkpoint whose files do not match is
// refused whole, never half-loaded. Each checkpoint is written
// into a temp folder and renamed into place (ckpt-<iteration>), and only the
// newest `keep` up to it are kept: checkpoints numbered above it belong to an
// earlier run in the same folder (a fresh start warns about them: setup.ts)
// and are left alone — pruning them by name would delete the one just written.
import * as tf from '@tensorflow/tfjs';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeDirAtomic } from '../util/atomic';
import { CheckpointInvalid } from '../errors';
import { loadModel, writeModelFiles } from './io';
import { Tensors } from '../util/tensors';
import { LedgerEntry } from '../train/ledger';
import { SamplerPosition } from '../train/sampler';

export interface TrainingState {
  iteration: number; // steps completed
  seed: number;
  job: string;
  sampler: SamplerPosition;
  velocity: Tensors;
  ledger: LedgerEntry[];
  /** What the job that wrote it was (core/job/fingerprint.ts); absent in older checkpoints. */
  fingerprint?: Record<string, string | number>;
}

interface StateFile {
  iteration: number;
  seed: number;
  job: string;
  sampler: SamplerPosition;
  fingerprint?: Record<string, string | number>;
  velocity: { name: string; offset: number; length: number }[];
  sha256: Record<string, string>;
  /** SHA-256 of this file's JSON without this field (stateJson). */
  self?: string;
}

/** state.json's text for `file` without its `self` field: what `self` is the SHA-256 of. */
const stateJson = (file: StateFile) => JSON.stringify({ ...file, self: undefined }, null, 1);

const FILES = ['model.json', 'weights.bin', 'optimizer.bin', 'ledger.json'];
const PREFIX = 'ckpt-';

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

function packVelocity(velocity: Tensors): { manifest: StateFile['velocity']; data: Buffer } {
  const manifest: StateFile['velocity'] = [];
  let offset = 0;
  for (const [name, v] of velocity) {
    manifest.push({ name, offset, length: v.length });
    offset += v.length;
  }
  const all = new Float32Array(offset);
  for (const m of manifest) all.set(velocity.get(m.name)!, m.offset);
  return { manifest, data: Buffer.from(all.buffer) };
}

export function checkpointName(iteration: number): string {
  return `${PREFIX}${String(iteration).padStart(8, '0')}`;
}

export async function saveCheckpoint(root: string, model: tf.LayersModel, state: TrainingState, keep: number): Promise<string> {
  const dir = join(root, checkpointName(state.iteration));
  await writeDirAtomic(dir, async (tmp) => {
    await writeModelFiles(model, tmp);
    const { manifest, data } = packVelocity(state.velocity);
    writeFileSync(join(tmp, 'optimizer.bin'), data);
    writeFileSync(join(tmp, 'ledger.json'), JSON.stringify(state.ledger));
    const hashes = Object.fromEntries(FILES.map((f) => [f, sha256(readFileSync(join(tmp, f)))]));
    const { velocity: _, ledger: __, ...rest } = state;
    const file: StateFile = { ...rest, velocity: manifest, sha256: hashes };
    writeFileSync(join(tmp, 'state.json'), JSON.stringify({ ...file, self: sha256(Buffer.from(stateJson(file))) }, null, 1));
  });
  const upToThis = listCheckpoints(root).filter((name) => name <= checkpointName(state.iteration));
  for (const old of upToThis.slice(0, -keep)) rmSync(join(root, old), { recursive: true, force: true });
  return dir;
}

/** Checkpoint folder names under `root`, oldest first. */
export function listCheckpoints(root: string): string[] {
  if (!existsSync(root)) return [];
  return readdirSync(root).filter((d) => d.startsWith(PREFIX) && !d.includes('.tmp') && existsSync(join(root, d, 'state.json'))).sort();
}

export function latestCheckpoint(root: string): string | null {
  const all = listCheckpoints(root);
  return all.length ? join(root, all[all.length - 1]) : null;
}

export function isCheckpoint(dir: string): boolean {
  return existsSync(join(dir, 'state.json'));
}

export async function loadCheckpoint(dir: string): Promise<{ model: tf.LayersModel; state: TrainingState }> {
  let file: StateFile;
  try {
    file = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8'));
  } catch (err) {
    throw new CheckpointInvalid(`${dir}: state.json is missing or not JSON (${(err as Error).message})`, { cause: err });
  }
  // An altered digit in state.json (the iteration, a momentum offset) would otherwise load silently.
  if (file.self !== sha256(Buffer.from(stateJson(file)))) throw new CheckpointInvalid(`${dir}: state.json does not match its own SHA-256; the checkpoint is corrupted — use an older one`);
  for (const f of FILES) {
    const path = join(dir, f);
    if (!existsSync(path)) throw new CheckpointInvalid(`${dir}: ${f} is missing; the checkpoint is incomplete`);
    if (sha256(readFileSync(path)) !== file.sha256?.[f]) throw new CheckpointInvalid(`${dir}: ${f} does not match its SHA-256 in state.json; the checkpoint is corrupted — use an older one`);
  }
  const raw = readFileSync(join(dir, 'optimizer.bin'));
  const all = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  const velocity: Tensors = new Map(file.velocity.map((m) => [m.name, all.slice(m.offset, m.offset + m.length)]));
  const ledger = JSON.parse(readFileSync(join(dir, 'ledger.json'), 'utf8')) as LedgerEntry[];
  const model = await loadModel(join(dir, 'model.json'));
  const { sha256: _, velocity: __, self: ___, ...rest } = file;
  return { model, state: { ...rest, velocity, ledger } };
}
