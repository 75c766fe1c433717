// webgpu – the webgpu backend for real, on Mesa's lavapipe (a CPU Vulkan
// driver): every zoo model's training step equals cpu's, memory stays flat
// over 50 steps, auto passes over a software adapter unless it is named, a
// two-worker job on webgpu ends where a wasm one does, and doctor's lines for
// a present and an absent adapter, and Mesa's device-select layer takes the
// Vulkan pin `worker --gpus` gives each child; bench/gpu-check.sh packs a
// folder under 64 MiB that runs the device check with nothing else. Skipped, naming the package, where
// lavapipe or the webgpu npm package is missing (.ci/setup installs both).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../core/backend/backends';
import { noAdapterAdvice, vulkanFacts } from '../core/backend/vulkan';
import { parseJob } from '../core/job/config';
import { maxRelativeDiff, paramSpecs, readParams } from '../core/model/params';
import { buildModel } from '../core/model/zoo';
import { Batch, computeGradients } from '../core/train/gradients';
import { MODELS, tieFreeBatch } from '../bench/compute';
import { parseGpuLine, pinEnv } from '../cli/gpus';
import { CLI, runJob } from './cluster-helpers';
import { tempDir, wasmWithIdxSet } from './fixtures';

const run = promisify(execFile);

function missing(): string | false {
  try {
    require.resolve('webgpu');
  } catch {
    return 'the webgpu npm package is not installed (npm ci installs optional dependencies)';
  }
  if (!existsSync('/usr/share/vulkan/icd.d/lvp_icd.json')) return 'lavapipe is not installed: apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1 (.ci/setup does)';
  return false;
}
const skip = missing();

async function step(backend: string, name: string, shape: [number, number, number], b: Batch, batchNorm = false) {
  await tf.setBackend(backend);
  const model = buildModel(name, shape, 10, 7, 'same', batchNorm);
  const out = await computeGradients(model, model.weights.filter((w) => w.trainable).map((w) => w.originalName), b);
  model.dispose();
  return out;
}

test('webgpu – every zoo model\'s training step on lavapipe equals cpu\'s, the seed CNN with BatchNorm too (loss and every gradient within 1e-5 relative)', { skip }, async () => {
  await initBackend('webgpu');
  await initBackend('cpu'); // registered and initialised both; step() switches
  for (const [name, shape, batchNorm] of [...MODELS.map(([n, s]) => [n, s, false] as const), ['seed-cnn', [28, 28, 1], true] as const]) {
    const b = tieFreeBatch(name === 'cifar-cnn' ? 2 : 4, [...shape], 3); // cpu is slow on cifar-cnn
    const cpu = await step('cpu', name, [...shape], b, batchNorm);
    const gpu = await step('webgpu', name, [...shape], b, batchNorm);
    const what = `${name}${batchNorm ? ' with BatchNorm' : ''}`;
    assert.ok(Math.abs(cpu.loss - gpu.loss) <= 1e-5 * cpu.loss, `${what} loss ${gpu.loss} vs ${cpu.loss}`);
    const diff = maxRelativeDiff(gpu.grads, cpu.grads);
    assert.ok(diff <= 1e-5, `${what}: max relative difference ${diff}`);
  }
});

test('webgpu – memory is flat over 50 training steps: tensors and GPU bytes', { skip }, async () => {
  await initBackend('webgpu');
  const model = buildModel('seed-cnn', [28, 28, 1], 10, 7);
  const names = paramSpecs(model).map((s) => s.name);
  const b = tieFreeBatch(16, [28, 28, 1], 4);
  await computeGradients(model, names, b); // compiles the shaders, allocates the pools
  const before = tf.memory() as tf.MemoryInfo & { numBytesInGPU: number };
  for (let i = 0; i < 50; i++) await computeGradients(model, names, b);
  const after = tf.memory() as tf.MemoryInfo & { numBytesInGPU: number };
  assert.equal(after.numTensors, before.numTensors);
  assert.equal(after.numBytesInGPU, before.numBytesInGPU);
  model.dispose();
});

test('webgpu – auto passes over a software adapter, saying why, and takes it when it is named', { skip }, async () => {
  const pick = async (env: NodeJS.ProcessEnv) => {
    const { stderr } = await run(process.execPath, ['-e', `require(${JSON.stringify(join(__dirname, '..', 'core', 'backend', 'backends.js'))}).initBackend('auto')`], { env: { ...process.env, ...env } });
    return stderr;
  };
  assert.match(await pick({}), /backend chosen backend="wasm" why="auto" skipped=".*webgpu: only a software adapter \(llvmpipe.*\): ask for it with --backend webgpu/);
  const named = await pick({ TUNEFLEET_WEBGPU_ADAPTER: 'llvmpipe' });
  assert.match(named, /webgpu adapter adapter="llvmpipe[^"]*" vendor="mesa" software=true/);
  assert.match(named, /backend chosen backend="webgpu" why="auto"/);
  const wrong = await run(process.execPath, [CLI, 'worker', '--coordinator', '127.0.0.1:1', '--backend', 'webgpu'], { env: { ...process.env, TUNEFLEET_WEBGPU_ADAPTER: 'NVIDIA H200' } }).catch((e) => e);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /no WebGPU adapter named 'NVIDIA H200': .*Available adapters: \* backend: 'vulkan', name: 'llvmpipe/);
});

test('webgpu – a two-worker job with --backend webgpu ends where the same job on wasm does', { skip }, async () => {
  const data = await wasmWithIdxSet(128, 32);
  const job = () => parseJob({
    name: 'webgpu', backend: 'wasm', data: { path: data, download: false },
    train: { iterations: 8, batchSize: 32, evalEvery: 8, logEvery: 8, checkpointEvery: 8, outDir: tempDir() },
    optimizer: { lr: 0.02, momentum: 0.9 },
  });
  const wasm = await runJob(job(), 2);
  const gpu = await runJob(job(), 2, undefined, { workerBackend: 'webgpu' });
  assert.ok(gpu.procs.every((p) => p.exitCode === 0), 'every webgpu worker exits 0 when the job ends');
  const diff = maxRelativeDiff(await readParams(gpu.model), await readParams(wasm.model));
  assert.ok(diff <= 1e-4, `max relative difference ${diff}`);
  assert.equal(gpu.curve.length, wasm.curve.length);
  assert.ok(Math.abs(gpu.curve.at(-1)!.valAccuracy - wasm.curve.at(-1)!.valAccuracy) <= 1 / 32, 'at most one validation example apart');
});

test('webgpu – doctor reports the adapter, a step\'s speed and its gradients against cpu; with no driver, what to do', { skip }, async () => {
  const present = await run(process.execPath, [CLI, 'doctor', '--backend', 'wasm']);
  assert.match(present.stdout, /^warn {5}backend webgpu: loads on adapter llvmpipe.* \(mesa, software: a CPU Vulkan driver, fine for tests, auto will not pick it; on a GPU node install its Vulkan driver\); seed CNN, batch 64: \d+ examples\/s; gradients match cpu's/m);
  const absent = await run(process.execPath, [CLI, 'doctor', '--backend', 'wasm'], { env: { ...process.env, VK_DRIVER_FILES: '/nonexistent/icd.json' } });
  assert.match(absent.stdout, /^-- {7}backend webgpu: unavailable: no WebGPU adapter: no Vulkan driver: no manifest in \/etc\/vulkan\/icd\.d/m);
  const wanted = await run(process.execPath, [CLI, 'doctor', '--backend', 'webgpu'], { env: { ...process.env, VK_DRIVER_FILES: '/nonexistent/icd.json' } }).catch((e) => e);
  assert.equal(wanted.code, 1, 'the backend the job wants is unavailable: a problem');
  assert.match(wanted.stdout, /^PROBLEM {2}backend webgpu: unavailable/m);
});

// lavapipe reports PCI address 0000:00:00.0, so the pin a child on that
// "GPU" would get goes through Dawn to Mesa's layer, which says whether the
// tag matched (a tag that matches nothing falls back to the default device).
test('webgpu – the pin worker --gpus gives a child is the one Mesa\'s device-select layer matches', { skip }, async () => {
  const pin = pinEnv('0', [parseGpuLine('0, GPU-0, 00000000:00:00.0, llvmpipe, 0 MiB')], 'webgpu');
  const { stderr } = await run(process.execPath, ['-e', `require(${JSON.stringify(join(__dirname, '..', 'core', 'backend', 'backends.js'))}).initBackend('webgpu')`], { env: { ...process.env, ...pin, TUNEFLEET_WEBGPU_ADAPTER: 'llvmpipe', MESA_VK_DEVICE_SELECT_DEBUG: '1' } });
  assert.match(stderr, /device-select: device_select_find_dri_prime_tag_default selected 0/);
  assert.match(stderr, /backend chosen backend="webgpu"/);
});

// The folder is what a GPU machine without Node.js gets: it runs from a
// temporary copy of itself, so a file the pack forgot fails here too.
test('webgpu – bench/gpu-check.sh packs a folder under 64 MiB whose check runs on its own', { skip, timeout: 300_000 }, async () => {
  const root = join(__dirname, '..', '..');
  const dir = join(tempDir(), 'gpu-check');
  const packed = await run('bash', [join(root, 'bench', 'gpu-check.sh'), '--pack', dir]);
  const mib = Number(/: (\d+) MiB/.exec(packed.stdout)![1]);
  assert.ok(mib < 64, `${mib} MiB`);
  const out = join(tempDir(), 'check.json');
  await run('bash', [join(dir, 'gpu-check.sh'), '--batches', '4', '--steps', '1', '--out', out], { cwd: tempDir() });
  const result = JSON.parse(readFileSync(out, 'utf8'));
  assert.equal(result.adapter.software, true);
  assert.deepEqual(result.speed.map((r: { model: string }) => r.model), ['seed-cnn', 'cifar-cnn']);
  assert.ok(result.speed.every((r: { webgpu: number; wasm: number }) => r.webgpu > 0 && r.wasm > 0));
  assert.ok(result.gradients.every((g: { ok: boolean }) => g.ok), JSON.stringify(result.gradients));
  assert.equal(result.memory.flat, true);
});

test('webgpu – no adapter: the advice names the missing part (loader, graphics capability, NVIDIA manifest, driver)', () => {
  const root = tempDir();
  const facts = (env: NodeJS.ProcessEnv) => vulkanFacts(env, root);
  assert.match(noAdapterAdvice(facts({})), /libvulkan\.so\.1, the Vulkan loader, is not installed: apt-get install libvulkan1/);
  mkdirSync(join(root, 'usr/lib/x86_64-linux-gnu'), { recursive: true });
  writeFileSync(join(root, 'usr/lib/x86_64-linux-gnu/libvulkan.so.1'), '');
  assert.match(noAdapterAdvice(facts({})), /^no Vulkan driver: no manifest in/);
  mkdirSync(join(root, 'proc/driver/nvidia'), { recursive: true });
  writeFileSync(join(root, 'proc/driver/nvidia/version'), 'NVRM version: 570');
  assert.match(noAdapterAdvice(facts({ NVIDIA_DRIVER_CAPABILITIES: 'compute,utility' })), /NVIDIA_DRIVER_CAPABILITIES is 'compute,utility': add graphics/);
  assert.match(noAdapterAdvice(facts({ NVIDIA_DRIVER_CAPABILITIES: 'all' })), /the NVIDIA driver is here but no nvidia_icd\.json: set VK_DRIVER_FILES=/);
  mkdirSync(join(root, 'etc/vulkan/icd.d'), { recursive: true });
  writeFileSync(join(root, 'etc/vulkan/icd.d/nvidia_icd.json'), '{}');
  assert.match(noAdapterAdvice(facts({ NVIDIA_DRIVER_CAPABILITIES: 'compute,utility,graphics' })), /are installed but none offered an adapter: check that the GPU's device nodes/);
});
