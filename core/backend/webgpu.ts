// The webgpu backend: @tensorflow/tfjs-backend-webgpu's kernels on Dawn
// (the `webgpu` npm package's prebuilt dawn.node) over Vulkan, so any GPU
// with a Vulkan driver — NVIDIA or AMD, any generation — and Mesa's lavapipe,
// a CPU Vulkan driver, on which the tests run it.
//
// We register the tfjs backend ourselves instead of letting the package do it
// on import (it does so only where `navigator.gpu` exists, a browser): that
// way this process chooses its adapter, refuses a software one unless asked
// for by name, and can say which adapter runs and why.
import * as tf from '@tensorflow/tfjs';
import { BackendUnavailable } from '../errors';
import { logger } from '../observe/log';
import { noAdapterAdvice, nvidiaIcdFallback, vulkanFacts } from './vulkan';

const log = logger('backend');

/** What the log, `doctor` and the tests say about the adapter in use. */
export interface AdapterInfo {
  vendor: string;
  description: string;
  /** A CPU implementation (lavapipe, SwiftShader): correct, ~20× slower than wasm. */
  software: boolean;
}

interface DawnAdapter {
  info: { vendor: string; architecture: string; device: string; description: string; isFallbackAdapter?: boolean };
  features: Set<string>;
  limits: Record<string, number>;
  requestDevice(d: object): Promise<unknown>;
}
interface Dawn {
  create(flags: string[]): { requestAdapter(o: object): Promise<DawnAdapter | null> };
  globals: object;
}

/** Which adapter this process asked for (a substring of its name), from TUNEFLEET_WEBGPU_ADAPTER. */
export const requestedAdapter = (): string | undefined => process.env.TUNEFLEET_WEBGPU_ADAPTER || undefined;

// Dawn keeps the process alive while its GPU object is referenced (dawn.node
// README, "Lifetime"): one per process, dropped by releaseWebgpu.
let gpu: ReturnType<Dawn['create']> | null = null;
let active: AdapterInfo | null = null;

function loadDawn(): Dawn {
  try {
    // An ES module: require() of it works from Node 20.19 (package.json engines).
    return require('webgpu') as Dawn;
  } catch (err) {
    const msg = (err as Error).message;
    if ((err as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND') throw new BackendUnavailable(`the webgpu package is not installed: npm install webgpu @tensorflow/tfjs-backend-webgpu (optional dependencies)`, { cause: err });
    if ((err as NodeJS.ErrnoException).code === 'ERR_REQUIRE_ESM') throw new BackendUnavailable(`Node ${process.version} cannot require() the webgpu ES module: use Node 20.19 or later`, { cause: err });
    if (/GLIBC_2\.\d+/.test(msg)) throw new BackendUnavailable(`dawn.node needs glibc 2.34 or later (${/GLIBC_[\d.]+/.exec(msg)![0]} not found): use a Debian 12 / Ubuntu 22.04 base, e.g. deploy/Dockerfile.webgpu`, { cause: err });
    throw err;
  }
}

/** The adapter Dawn offers, or an error saying why there is none. */
async function findAdapter(dawn: Dawn, name: string | undefined): Promise<DawnAdapter> {
  let adapter: DawnAdapter | null;
  try {
    gpu = dawn.create(name ? [`adapter=${name}`] : []);
    adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (err) {
    // Dawn's own message lists the adapters it found when none has the name.
    throw new BackendUnavailable(`no WebGPU adapter named '${name}': ${(err as Error).message.replace(/\s*\n\s*/g, ' ')}`, { cause: err });
  }
  if (!adapter) throw new BackendUnavailable(`no WebGPU adapter: ${noAdapterAdvice(vulkanFacts())}`);
  return adapter;
}

// WebGPUBackend checks for navigator.gpu; Node ≤ 20 has no navigator, 21+ one without gpu.
function exposeGpu(value: unknown): void {
  const g = globalThis as { navigator?: object };
  if (!g.navigator) Object.defineProperty(globalThis, 'navigator', { value: {}, configurable: true, writable: true });
  Object.defineProperty(g.navigator, 'gpu', { value, configurable: true });
}

function describe(a: DawnAdapter): AdapterInfo {
  const { vendor, architecture, device, description, isFallbackAdapter } = a.info;
  return { vendor, description: description || device || architecture, software: Boolean(isFallbackAdapter) || architecture === 'software' };
}

/**
 * Start Dawn, pick the adapter and register tfjs's 'webgpu' backend on it.
 * `allowSoftware`: take a CPU adapter (lavapipe) too — only when the user
 * asked for webgpu by name; `auto` wants a GPU or goes on to wasm.
 */
export async function registerWebgpu(allowSoftware: boolean): Promise<AdapterInfo> {
  if (active) return active;
  const dawn = loadDawn();
  const icds = nvidiaIcdFallback(); // before Dawn starts the Vulkan loader, which reads it
  if (icds) log.info('no NVIDIA Vulkan manifest injected: using ours', { VK_DRIVER_FILES: icds });
  const name = requestedAdapter();
  const adapter = await findAdapter(dawn, name);
  const info = describe(adapter);
  if (info.software && !allowSoftware && !name) {
    releaseWebgpu();
    throw new BackendUnavailable(`only a software adapter (${info.description}): ask for it with --backend webgpu`);
  }
  Object.assign(globalThis, dawn.globals); // GPUBufferUsage and friends, which the kernels use as globals
  exposeGpu(gpu);
  const { WebGPUBackend } = require('@tensorflow/tfjs-backend-webgpu') as typeof import('@tensorflow/tfjs-backend-webgpu');
  // The limits and features tfjs-backend-webgpu itself asks for (its base.ts).
  const l = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures: ['timestamp-query'].filter((f) => adapter.features.has(f)),
    requiredLimits: {
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
    },
  });
  tf.registerBackend('webgpu', () => new WebGPUBackend(device as never, adapter.info as never), 0);
  active = info;
  return info;
}

/** The adapter in use, or null before webgpu started. */
export const webgpuAdapter = (): AdapterInfo | null => active;

/** Let the process exit: drop the backend and Dawn's GPU object. */
export function releaseWebgpu(): void {
  if (active && tf.findBackend('webgpu')) tf.removeBackend('webgpu');
  active = null;
  gpu = null;
  const nav = (globalThis as { navigator?: { gpu?: unknown } }).navigator;
  if (nav?.gpu) delete nav.gpu;
}
