// Chooses the tfjs compute backend. Fastest first: tfjs-node-gpu (CUDA),
// tfjs-node (native TensorFlow), webgpu (Dawn over Vulkan, on a GPU adapter;
// a software one only when asked for), wasm (XNNPACK, with our training kernels),
// then the pure-JS cpu backend, which is ~100x slower than wasm and only ever
// chosen when asked for or when nothing else loads.
import * as tf from '@tensorflow/tfjs';
import { BackendUnavailable } from '../errors';
import { logger } from '../observe/log';
import { installWasmTrainingKernels } from './wasm-kernels';
import { registerWebgpu } from './webgpu';

export const BACKENDS = ['tensorflow-gpu', 'tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number] | 'auto';

const log = logger('backend');

// tfjs-node and tfjs-node-gpu both register a backend named 'tensorflow'.
// `requested`: named by the user, not tried by auto.
const loaders: Record<(typeof BACKENDS)[number], (requested: boolean) => Promise<string>> = {
  'tensorflow-gpu': async () => { require('@tensorflow/tfjs-node-gpu'); return 'tensorflow'; },
  tensorflow: async () => { require('@tensorflow/tfjs-node'); return 'tensorflow'; },
  webgpu: async (requested) => {
    const adapter = await registerWebgpu(requested);
    log.info('webgpu adapter', { adapter: adapter.description, vendor: adapter.vendor, software: adapter.software });
    return 'webgpu';
  },
  wasm: async () => {
    require('@tensorflow/tfjs-backend-wasm');
    return 'wasm';
  },
  cpu: async () => 'cpu',
};

async function activate(name: (typeof BACKENDS)[number], requested: boolean): Promise<void> {
  const tfName = await loaders[name](requested);
  if (!(await tf.setBackend(tfName))) throw new Error(`tf.setBackend('${tfName}') returned false`);
  await tf.ready();
  if (tfName === 'wasm') installWasmTrainingKernels();
}

/** Why a backend did not start: our own advice whole, another library's error cut to its first line, at most 160 characters. */
export function reason(err: unknown): string {
  if (err instanceof BackendUnavailable) return err.message;
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split('\n')[0].slice(0, 160);
}

/**
 * Activate `wanted` (default: TUNEFLEET_BACKEND, else auto) and return the
 * backend actually in use. Auto logs why each faster backend was skipped.
 */
export async function initBackend(wanted: BackendName = (process.env.TUNEFLEET_BACKEND as BackendName) || 'auto'): Promise<(typeof BACKENDS)[number]> {
  // tfjs's console banners ("Hi, looks like you are running TensorFlow.js in
  // Node.js…") are for people trying it out; which backend runs and why is
  // our own log line. PROD silences only tfjs's warn/log calls.
  tf.env().set('PROD', true);
  if (wanted !== 'auto') {
    if (!BACKENDS.includes(wanted)) {
      throw new BackendUnavailable(`unknown backend '${wanted}'; choose one of auto, ${BACKENDS.join(', ')}`);
    }
    try {
      await activate(wanted, true);
    } catch (err) {
      throw new BackendUnavailable(`backend '${wanted}' cannot start here: ${reason(err)}; use --backend auto`, { cause: err });
    }
    log.info('backend chosen', { backend: wanted, why: 'requested' });
    return wanted;
  }
  const skipped: string[] = [];
  for (const name of BACKENDS) {
    try {
      await activate(name, false);
      log.info('backend chosen', { backend: name, why: 'auto', skipped: skipped.join('; ') || 'none' });
      return name;
    } catch (err) {
      skipped.push(`${name}: ${reason(err)}`);
    }
  }
  throw new BackendUnavailable(`no tfjs backend could start: ${skipped.join('; ')}`);
}
