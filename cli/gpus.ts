// `tunefleet worker --gpus N|all`: one worker process per GPU of this node,
// each pinned to its GPU and joining under its own id (`<id>-gpu<i>`) and
// metrics port (`--metrics-port` + i), supervised like `tunefleet local`
// supervises its workers: Ctrl-C or SIGTERM stops them all; one that exits
// is reported and the others go on; the command exits with the first
// failure's code once all have exited.
//
// GPUs are counted with nvidia-smi, or taken from CUDA_VISIBLE_DEVICES when a
// scheduler set it (child i gets the i-th device of that list). `--gpus all`
// with none found is an error that says so; `--gpus N` asks for N processes:
// on GPUs when the backend needs them (tensorflow-gpu, webgpu, and auto when
// GPUs are there), otherwise as N CPU worker processes (e.g. with --backend
// wasm, one per core).
//
// Pinning: CUDA reads CUDA_VISIBLE_DEVICES; Vulkan (webgpu) ignores it, so
// a child is also given its GPU's PCI address for Mesa's device-select layer
// (DRI_PRIME=pci-…, shipped in mesa-vulkan-drivers), which then offers Dawn
// that one device only. Without it every webgpu child would share GPU 0.
import { ChildProcess, execFileSync } from 'node:child_process';
import { spawnTagged } from './child-output';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { BackendUnavailable, ConfigInvalid } from '../core/errors';
import { logger } from '../core/observe/log';
import { stopOnSignal } from './local';

const log = logger('gpus');

export interface Gpu {
  index: string;
  uuid: string;
  busId: string; // nvidia-smi's "00000000:17:00.0"
  label: string; // "0, NVIDIA A100, 40960 MiB", for logs and doctor
}

/** One line of nvidia-smi's index,uuid,pci.bus_id,name,memory.total CSV. */
export function parseGpuLine(line: string): Gpu {
  const [index, uuid, busId, name, memory] = line.split(',').map((f) => f.trim());
  return { index, uuid, busId, label: `${index}, ${name}, ${memory}` };
}

/** The GPUs nvidia-smi lists, or why there are none. */
export function listGpus(): { gpus: Gpu[]; why: string } {
  try {
    const out = execFileSync('nvidia-smi', ['--query-gpu=index,uuid,pci.bus_id,name,memory.total', '--format=csv,noheader'], { stdio: ['ignore', 'pipe', 'pipe'] }).toString().trim();
    const gpus = out ? out.split('\n').map(parseGpuLine) : [];
    return { gpus, why: gpus.length ? '' : 'nvidia-smi lists no GPUs' };
  } catch (err) {
    return { gpus: [], why: `nvidia-smi: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not installed (no NVIDIA driver on this node)' : (err as Error).message.split('\n')[0]}` };
  }
}

/** nvidia-smi's bus id "00000000:17:00.0" as the device-select layer's tag "pci-0000_17_00_0". */
export function driPrimeTag(busId: string): string {
  const m = /^([0-9a-f]+):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/i.exec(busId);
  if (!m) throw new BackendUnavailable(`cannot read the PCI address '${busId}' nvidia-smi gave; pin the worker by hand with DRI_PRIME=pci-DDDD_BB_DD_F`);
  const hex = (v: string, width: number) => parseInt(v, 16).toString(16).padStart(width, '0');
  return `pci-${hex(m[1], 4)}_${hex(m[2], 2)}_${hex(m[3], 2)}_${m[4]}`;
}

/**
 * The environment that pins a child to `device` (a CUDA_VISIBLE_DEVICES
 * entry: an index or a UUID). For webgpu the device must be one nvidia-smi
 * lists, since its PCI address is what Vulkan can be told; other backends
 * also get the Vulkan pin when the address is known (auto may pick webgpu).
 */
export function pinEnv(device: string, gpus: Gpu[], backend: string | undefined): Record<string, string> {
  const env: Record<string, string> = { CUDA_VISIBLE_DEVICES: device };
  const gpu = gpus.find((g) => g.index === device || g.uuid === device);
  if (!gpu) {
    if (backend === 'webgpu') throw new BackendUnavailable(`--gpus with backend webgpu: device '${device}' is not one nvidia-smi lists (${gpus.map((g) => g.index).join(', ') || 'none'}), so its PCI address for Vulkan is unknown; MIG slices cannot be pinned for Vulkan`);
    return env;
  }
  let tag: string;
  try {
    tag = driPrimeTag(gpu.busId);
  } catch (err) {
    if (backend === 'webgpu') throw err;
    return env; // CUDA's pin is enough for a backend that may never use Vulkan
  }
  return { ...env, DRI_PRIME: tag, MESA_VK_DEVICE_SELECT_FORCE_DEFAULT_DEVICE: '1' };
}

/**
 * The devices this node's workers may use, as CUDA_VISIBLE_DEVICES names
 * them: a scheduler's list when one is set (indices or UUIDs; nvidia-smi
 * ignores it and lists every GPU, another job's too), else nvidia-smi's.
 */
export function visibleDevices(found: { gpus: readonly unknown[] }, cudaVisible: string | undefined): string[] {
  if (cudaVisible !== undefined) return cudaVisible.split(',').map((d) => d.trim()).filter((d) => d !== '' && d !== '-1');
  return found.gpus.map((_, i) => String(i));
}

/** How many processes to run and whether each gets a GPU. */
export function plan(gpusFlag: string, backend: string | undefined, found: { gpus: readonly unknown[]; why: string }): { processes: number; pinned: boolean } {
  const needsGpu = backend === 'tensorflow-gpu' || backend === 'webgpu' || (backend === undefined || backend === 'auto') && found.gpus.length > 0;
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
  // Every pin is worked out before any child starts: one that cannot be
  // pinned fails the command with no half-started group left behind.
  const pins = Array.from({ length: processes }, (_, i) => (pinned ? pinEnv(devices[i], listed.gpus, opts.backend) : {}));
  log.info('starting workers', { processes, gpus: pinned ? pins.map((p) => Object.entries(p).map(([k, v]) => `${k}=${v}`).join(' ')).join('; ') : 'none (CPU processes)' });
  const children: ChildProcess[] = pins.map((pin, i) => {
    const own = ['--id', `${base}-gpu${i}`, '--metrics-port', opts.metricsPort === null ? 'off' : String(opts.metricsPort + i)];
    const env = { ...process.env, ...pin };
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
