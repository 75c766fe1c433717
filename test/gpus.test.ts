// gpus – `tunefleet worker --gpus`: how many processes, pinned to GPUs or
// not (CUDA and Vulkan pins); on this machine (no GPU) `--gpus all` says so, and `--gpus 2 --backend
// wasm` runs two supervised CPU workers that finish a real job.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { driPrimeTag, parseGpuLine, pinEnv, plan, visibleDevices } from '../cli/gpus';
import { runCoordinator } from '../coordinator/coordinator';
import { BackendUnavailable, ConfigInvalid } from '../core/errors';
import { parseJob } from '../core/job/config';
import { CLI, exitOf } from './cluster-helpers';
import { tempDir, wasmWithIdxSet } from './fixtures';

const run = promisify(execFile);
let dataDir = '';
before(async () => {
  dataDir = await wasmWithIdxSet(100, 20);
});

test('gpus – all: one process per GPU; N: N processes, on GPUs when the backend needs them, else on the CPU', () => {
  const four = { gpus: ['0, A100', '1, A100', '2, A100', '3, A100'], why: '' };
  const none = { gpus: [], why: 'nvidia-smi: not installed' };
  assert.deepEqual(plan('all', undefined, four), { processes: 4, pinned: true });
  assert.deepEqual(plan('2', 'tensorflow-gpu', four), { processes: 2, pinned: true });
  assert.deepEqual(plan('2', 'auto', four), { processes: 2, pinned: true });
  assert.deepEqual(plan('2', 'webgpu', four), { processes: 2, pinned: true });
  assert.throws(() => plan('2', 'webgpu', none), BackendUnavailable, 'webgpu on a node with no NVIDIA GPU: pass --backend wasm');
  assert.deepEqual(plan('3', 'wasm', none), { processes: 3, pinned: false });
  assert.deepEqual(plan('2', undefined, none), { processes: 2, pinned: false }, 'auto without GPUs falls back to the CPU');
  assert.throws(() => plan('all', 'wasm', none), (e: Error) => e instanceof BackendUnavailable && /found no GPUs \(nvidia-smi: not installed\)/.test(e.message));
  assert.throws(() => plan('5', 'tensorflow-gpu', four), (e: Error) => e instanceof BackendUnavailable && /this node has 4 GPU/.test(e.message));
  assert.throws(() => plan('0', 'wasm', none), ConfigInvalid);
});

test('gpus – on this machine: --gpus all is a clear error; --gpus 2 --backend wasm joins two workers that finish the job', async () => {
  const all = await run('node', [CLI, 'worker', '--coordinator', '127.0.0.1:1', '--gpus', 'all']).catch((e) => e);
  assert.equal(all.code, 1);
  assert.match(all.stderr, /^BackendUnavailable: --gpus all found no GPUs \(nvidia-smi: .+\); on a CPU node pass --gpus N with --backend wasm/m);
  const cfg = parseJob({
    name: 'gpus', backend: 'wasm', data: { path: dataDir, download: false },
    train: { iterations: 6, batchSize: 16, evalEvery: 6, checkpointEvery: 6, outDir: tempDir() },
    cluster: { workers: 2, host: '127.0.0.1', port: 0 }, metrics: { port: null, workerPort: null },
  });
  let group: ReturnType<typeof spawn> | null = null;
  const result = await runCoordinator(cfg, {
    onListening: (port) => {
      group = spawn(process.execPath, [CLI, 'worker', '--coordinator', `127.0.0.1:${port}`, '--gpus', '2', '--backend', 'wasm', '--id', 'node1', '--metrics-port', 'off'], { stdio: 'ignore' });
    },
  });
  assert.equal(result.curve.at(-1)!.iteration, 6);
  assert.deepEqual([...new Set(result.cluster.ledger.snapshot().map((e) => e.workerId))].sort(), ['node1-gpu0', 'node1-gpu1']);
  assert.equal(await exitOf(group!), 0, 'the group exits 0 once both workers are told the job finished');
});

test('gpus – a scheduler\'s CUDA_VISIBLE_DEVICES is respected: child i gets its i-th device, not GPU i of nvidia-smi', () => {
  const eight = { gpus: Array.from({ length: 8 }, (_, i) => `${i}, H100`) };
  assert.deepEqual(visibleDevices(eight, undefined), ['0', '1', '2', '3', '4', '5', '6', '7']);
  assert.deepEqual(visibleDevices(eight, '4,5'), ['4', '5'], 'the job was given GPUs 4 and 5');
  assert.deepEqual(visibleDevices(eight, 'GPU-1a2b, GPU-3c4d'), ['GPU-1a2b', 'GPU-3c4d'], 'UUIDs pass through');
  assert.deepEqual(visibleDevices(eight, ''), [], 'an empty list hides every GPU');
});

// The Vulkan pin cannot be checked here (one software device, no PCI
// address): this checks what each child is told, in Mesa's own format
// ("pci-%04x_%02x_%02x_%1u", device_select_layer.c).
test('gpus – webgpu children are pinned for Vulkan by PCI address, found by index or UUID', () => {
  const gpus = ['0, GPU-aaaa, 00000000:17:00.0, NVIDIA H200, 143771 MiB', '1, GPU-bbbb, 00000000:AB:00.0, NVIDIA H200, 143771 MiB'].map(parseGpuLine);
  assert.deepEqual(gpus[1], { index: '1', uuid: 'GPU-bbbb', busId: '00000000:AB:00.0', label: '1, NVIDIA H200, 143771 MiB' });
  assert.equal(driPrimeTag('00000000:AB:1F.3'), 'pci-0000_ab_1f_3');
  assert.equal(driPrimeTag('0001:03:00.0'), 'pci-0001_03_00_0');
  assert.throws(() => driPrimeTag('N/A'), BackendUnavailable);
  const pinned = { CUDA_VISIBLE_DEVICES: '1', DRI_PRIME: 'pci-0000_ab_00_0', MESA_VK_DEVICE_SELECT_FORCE_DEFAULT_DEVICE: '1' };
  assert.deepEqual(pinEnv('1', gpus, 'webgpu'), pinned);
  assert.deepEqual(pinEnv('GPU-bbbb', gpus, 'webgpu'), { ...pinned, CUDA_VISIBLE_DEVICES: 'GPU-bbbb' });
  assert.deepEqual(pinEnv('MIG-cccc', gpus, 'tensorflow-gpu'), { CUDA_VISIBLE_DEVICES: 'MIG-cccc' }, 'CUDA alone can take a MIG slice');
  const unreadable = [parseGpuLine('0, GPU-aaaa, N/A, NVIDIA H200, 143771 MiB')];
  assert.deepEqual(pinEnv('0', unreadable, 'tensorflow-gpu'), { CUDA_VISIBLE_DEVICES: '0' }, 'an unreadable PCI address never stops a CUDA pin');
  assert.throws(() => pinEnv('0', unreadable, 'webgpu'), BackendUnavailable);
  assert.throws(() => pinEnv('MIG-cccc', gpus, 'webgpu'), (e: Error) => e instanceof BackendUnavailable && /device 'MIG-cccc' is not one nvidia-smi lists \(0, 1\)/.test(e.message));
});
