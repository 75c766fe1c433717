// Why Vulkan offers no adapter, in words a user can act on. Dawn only says
// "no adapter"; the usual causes on a GPU node are a missing loader
// (libvulkan1), a missing driver manifest (the NVIDIA container toolkit
// injects nvidia_icd.json only with the `graphics` capability, and is known
// to lose it), or device nodes the container cannot see.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export interface VulkanFacts {
  /** libvulkan.so.1 is where the dynamic linker looks. */
  loader: boolean;
  /** Driver manifests (ICD JSON files) the loader will read. */
  icds: string[];
  /** This node (or container) has the NVIDIA kernel driver. */
  nvidia: boolean;
  /** NVIDIA_DRIVER_CAPABILITIES as the container runtime was given it, if at all. */
  capabilities: string | undefined;
}

const LIB_DIRS = ['/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib/aarch64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/lib64', '/usr/lib', '/usr/local/lib'];
// The loader's search path for manifests (Vulkan-Loader docs, "Linux Driver Discovery").
const ICD_DIRS = ['/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d', '/usr/share/vulkan/icd.d'];

/** Where our images keep an NVIDIA manifest for when the toolkit injects none (deploy/webgpu/nvidia_icd.json). */
export const NVIDIA_ICD_FALLBACK = '/usr/local/share/tunefleet/nvidia_icd.json';

const listJson = (dir: string) => (existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => join(dir, f)) : []);

export function vulkanFacts(env: NodeJS.ProcessEnv = process.env, root = '/'): VulkanFacts {
  const at = (p: string) => join(root, p);
  const libDirs = [...(env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean), ...LIB_DIRS.map(at)];
  const explicit = env.VK_DRIVER_FILES ?? env.VK_ICD_FILENAMES;
  return {
    loader: libDirs.some((d) => existsSync(join(d, 'libvulkan.so.1'))),
    icds: explicit ? explicit.split(':').filter((f) => existsSync(f)) : ICD_DIRS.flatMap((d) => listJson(at(d))),
    nvidia: existsSync(at('proc/driver/nvidia/version')) || existsSync(at('dev/nvidiactl')),
    capabilities: env.NVIDIA_DRIVER_CAPABILITIES,
  };
}

const hasNvidiaIcd = (f: VulkanFacts) => f.icds.some((p) => /nvidia/i.test(p));

/** What to do when Vulkan offered no adapter at all. */
export function noAdapterAdvice(f: VulkanFacts): string {
  if (!f.loader) return 'libvulkan.so.1, the Vulkan loader, is not installed: apt-get install libvulkan1 (deploy/Dockerfile.webgpu has it)';
  if (f.nvidia && f.capabilities !== undefined && !/\b(graphics|all)\b/.test(f.capabilities)) {
    return `NVIDIA_DRIVER_CAPABILITIES is '${f.capabilities}': add graphics (deploy/overlays/webgpu sets compute,utility,graphics) so the container toolkit mounts the driver's Vulkan library`;
  }
  if (f.nvidia && !hasNvidiaIcd(f)) return `the NVIDIA driver is here but no nvidia_icd.json: set VK_DRIVER_FILES=${NVIDIA_ICD_FALLBACK} (our image ships it) and give the container the graphics capability`;
  if (f.icds.length === 0) return `no Vulkan driver: no manifest in ${ICD_DIRS.join(', ')}; install the GPU's Vulkan driver (or mesa-vulkan-drivers for lavapipe, a CPU device for tests)`;
  return `Vulkan drivers ${f.icds.join(', ')} are installed but none offered an adapter: check that the GPU's device nodes are in the container (/dev/nvidia*, /dev/dri) and readable`;
}

/**
 * On an NVIDIA node whose container toolkit injected no manifest, point the
 * loader at ours (the driver's libGLX_nvidia.so.0 is there whenever the
 * graphics capability is). Returns what it set, or null.
 */
export function nvidiaIcdFallback(env: NodeJS.ProcessEnv = process.env): string | null {
  const f = vulkanFacts(env);
  if (!f.nvidia || hasNvidiaIcd(f) || !existsSync(NVIDIA_ICD_FALLBACK) || env.VK_DRIVER_FILES || env.VK_ICD_FILENAMES) return null;
  env.VK_DRIVER_FILES = [...f.icds, NVIDIA_ICD_FALLBACK].join(':');
  return env.VK_DRIVER_FILES;
}
