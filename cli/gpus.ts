// `tunefleet worker --gpus N|all`: one worker process per GPU of this node,
// each pinned to its GPU with CUDA_VISIBLE_DEVICES and joining under its own
// id (`<id>-gpu<i>`) and metrics port (`--metrics-port` + i), supervised like
// `tunefleet local` supervises its workers: Ctrl-C or SIGTERM stops them
// all; one that exits is reported and the others go on; the command exits
// with the first failure's code once all have exited.
//
// GPUs are counted with nvidia-smi, or taken from CUDA_VISIBLE_DEVICES when a
// scheduler set it (child i gets the i-th device of that list). `--gpus all` with none found is an error
// that says so; `--gpus N` asks for N processes: on GPUs when the backend
// needs them (tensorflow-gpu, and auto when GPUs are there), otherwise as N
// CPU worker processes (e.g. with --backend wasm, one per core).
import { ChildProcess, execFileSync } from 'node:child_process';
import { spawnTagged } from './child-output';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { BackendUnavailable, ConfigInvalid } from '../core/errors';
import { logger } from '../core/observe/log';
import { stopOnSignal } from './local';

const log = logger('gpus');

/** The GPUs nvidia-smi lists ("0, NVIDIA A100, 40960 MiB"), or why there are none. */
export function listGpus(): { gpus: string[]; why: string } {
  try {
    const out = execFileSync('nvidia-smi', ['--query-gpu=index,name,memory.total', '--format=csv,noheader'], { stdio: ['ignore', 'pipe', 'pipe'] }).toString().trim();
    const gpus = out ? out.split('\n') : [];
    return { gpus, why: gpus.length ? '' : 'nvidia-smi lists no GPUs' };
  } catch (err) {
    return { gpus: [], why: `nvidia-smi: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not installed (no NVIDIA driver on this node)' : (err as Error).message.split('\n')[0]}` };
  }
}

/**
 * The devices this node's workers may use, as CUDA_VISIBLE_DEVICES names
 * them: a scheduler's list when one is set (indices or UUIDs; nvidia-smi
 * ignores it and lists every GPU, another job's too), else nvidia-smi's.
 */
export function visibleDevices(found: { gpus: string[] }, cudaVisible: string | undefined): string[] {
  if (cudaVisible !== undefined) return cudaVisible.split(',').map((d) => d.trim()).filter((d) => d !== '' && d !== '-1');
  return found.gpus.map((_, i) => String(i));
}

/** How many processes to run and whether each gets a GPU. */
export function plan(gpusFlag: string, backend: string | undefined, found: { gpus: string[]; why: string }): { processes: number; pinned: boolean } {
  const needsGpu = backend === 'tensorflow-gpu' || (backend === undefined || backend === 'auto') && found.gpus.length > 0;
  if (gpusFlag === 'all') {
    if (found.gpus.length === 0) throw new BackendUnavailable(`--gpus all found no GPUs (${found.why}); on a CPU node pass --gpus N with --backend wasm for N CPU worker processes`);
    return { processes: found.gpus.length, pinned: true };
  }
  const n = Number(gpusFlag);
  if (!Number.isInteger(n) || n < 1) throw new ConfigInvalid(`--gpus takes a whole number ≥ 1 or 'all', not '${gpusFlag}'`);
  if (needsGpu && n > found.gpus.length) throw new BackendUnavailable(`--gpus ${n} with backend ${backend ?? 'auto'}: this node has ${found.gpus.length} GPU(s)${found.why ? ` (${found.why})` : ''}`);
  return { processes: n, pinned: needsGpu };
}

/** Run the worker group: `args` are the worker's own flags, without --gpus, --id and --metrics-port. */
export async function runWorkerGroup(args: string[], opts: { gpus: string; backend?: string; id?: string; metricsPort: number | null }): Promise<void> {
  const listed = listGpus();
  const devices = visibleDevices(listed, process.env.CUDA_VISIBLE_DEVICES);
  const found = { gpus: devices.map((d) => `GPU ${d}`), why: devices.length ? '' : listed.why || 'CUDA_VISIBLE_DEVICES lists none' };
  const { processes, pinned } = plan(opts.gpus, opts.backend, found);
  const base = opts.id ?? hostname();
  log.info('starting workers', { processes, gpus: pinned ? found.gpus.slice(0, processes).join('; ') : 'none (CPU processes)' });
  const children: ChildProcess[] = Array.from({ length: processes }, (_, i) => {
    const own = ['--id', `${base}-gpu${i}`, '--metrics-port', opts.metricsPort === null ? 'off' : String(opts.metricsPort + i)];
    const env = pinned ? { ...process.env, CUDA_VISIBLE_DEVICES: devices[i] } : process.env;
    return spawnTagged(`${base}-gpu${i}`, process.execPath, [join(__dirname, 'main.js'), 'worker', ...args, ...own], { env });
  });
  const release = stopOnSignal(children);
  const codes = await Promise.all(children.map((c, i) => new Promise<number>((resolve) => c.once('exit', (code, signal) => {
    if (code !== 0) log.warn('worker exited', { worker: `${base}-gpu${i}`, code, signal });
    resolve(code ?? 1);
  }))));
  release();
  const failed = codes.find((c) => c !== 0);
  if (failed !== undefined) process.exitCode = failed;
}
