#!/usr/bin/env bash
# The webgpu device check (bench/gpu-check.ts) for a machine with a GPU and
# neither Node.js nor internet. Two steps:
#
#   bash bench/gpu-check.sh --pack DIR     here, after `npm ci && npm run build`:
#       DIR gets this script, a gzipped Node binary, the files a check loads
#       (recorded by running it once here, on lavapipe or a GPU), libvulkan.so.1
#       and an NVIDIA Vulkan manifest: under 64 MiB (checked).
#   bash DIR/gpu-check.sh [--batches 64,512] [--steps 3] [--out FILE]
#       on the GPU machine: unpacks into a temporary folder, prints what the
#       machine offers Vulkan, then the check's tables and JSON line; exit 1
#       when gradients differ from cpu's or memory grows. Under 5 minutes on a
#       GPU (most of it the wasm baseline at batch 512).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
LIMIT=$((64 * 1024 * 1024))

pack() {
  local out=$1 root
  root=$(cd "$here/.." && pwd)
  [ -f "$root/dist/bench/gpu-check.js" ] || { echo "gpu-check: no dist/bench/gpu-check.js: run npm run build first" >&2; exit 1; }
  rm -rf "$out" && mkdir -p "$out/lib"
  out=$(cd "$out" && pwd)
  local list record
  list=$(mktemp) record=$(mktemp --suffix=.js)
  # Every module file the check loads (dawn.node included), as Node's require cache holds them at exit.
  echo "process.on('exit', () => require('fs').writeFileSync(process.env.GPU_CHECK_FILES, Object.keys(require.cache).join('\n') + '\n'));" > "$record"
  echo "gpu-check: running the check once here (small batches) to record the files it loads"
  (cd "$root" && GPU_CHECK_FILES=$list TUNEFLEET_WEBGPU_ADAPTER=${TUNEFLEET_WEBGPU_ADAPTER:-} node --require "$record" dist/bench/gpu-check.js --batches 2 --steps 1 > /dev/null)
  (
    cd "$root"
    sed -n "s|^$root/||p" "$list"
    # Read with fs, not require: the wasm binaries; and each package's package.json, which resolution reads.
    ls node_modules/@tensorflow/tfjs-backend-wasm/dist/*.wasm
    sed -n "s|^$root/\(node_modules/\(@[^/]*/\)\?[^/]*\)/.*|\1/package.json|p" "$list" | sort -u
    echo package.json
  ) | sort -u > "$out/files.txt"
  tar -czf "$out/app.tar.gz" -C "$root" -T "$out/files.txt"
  gzip -9 -c "$(command -v node)" > "$out/node.gz"
  cp -L "$(ldconfig -p | awk '/libvulkan\.so\.1 .*x86-64/ { print $NF; exit }')" "$out/lib/libvulkan.so.1"
  cp "$root/deploy/webgpu/nvidia_icd.json" "$out/"
  cp "$here/gpu-check.sh" "$out/"
  rm -f "$list" "$record"
  local size
  size=$(du -sb "$out" | cut -f1)
  echo "gpu-check: packed $(wc -l < "$out/files.txt") files into $out: $((size / 1024 / 1024)) MiB"
  [ "$size" -lt "$LIMIT" ] || { echo "gpu-check: $out is over 64 MiB" >&2; exit 1; }
}

# What this machine gives Vulkan: the driver, its manifest, the loader.
facts() {
  command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=index,name,driver_version,pci.bus_id,memory.total --format=csv,noheader || echo "nvidia-smi: not found"
  echo "NVIDIA_DRIVER_CAPABILITIES=${NVIDIA_DRIVER_CAPABILITIES:-(unset)}"
  ls /etc/vulkan/icd.d /usr/share/vulkan/icd.d 2>/dev/null || echo "no Vulkan manifests in /etc/vulkan/icd.d or /usr/share/vulkan/icd.d"
  ldconfig -p | grep -E 'libGLX_nvidia\.so\.0|libvulkan\.so\.1' || echo "neither libGLX_nvidia.so.0 (the NVIDIA Vulkan driver) nor libvulkan.so.1 in ldconfig's cache"
}

check() {
  work=$(mktemp -d) # global: the EXIT trap runs after check() has returned
  trap 'rm -rf "$work"' EXIT
  gzip -dc "$here/node.gz" > "$work/node" && chmod +x "$work/node"
  tar -xzf "$here/app.tar.gz" -C "$work"
  facts
  # The machine's own loader first; ours where it has none.
  ldconfig -p | grep -q 'libvulkan\.so\.1' || export LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # The driver's libraries without their manifest (a container given graphics but no nvidia_icd.json): ours names them.
  if [ -z "${VK_DRIVER_FILES:-}" ] && ldconfig -p | grep -q libGLX_nvidia.so.0 && ! ls /etc/vulkan/icd.d/nvidia* /usr/share/vulkan/icd.d/nvidia* > /dev/null 2>&1; then
    export VK_DRIVER_FILES="$here/nvidia_icd.json"
    echo "VK_DRIVER_FILES=$VK_DRIVER_FILES (no NVIDIA manifest installed)"
  fi
  (cd "$work" && ./node dist/bench/gpu-check.js "$@")
}

if [ "${1:-}" = --pack ]; then
  [ -n "${2:-}" ] || { echo "usage: bash bench/gpu-check.sh --pack DIR" >&2; exit 2; }
  pack "$2"
elif [ -f "$here/node.gz" ]; then
  check "$@"
else
  echo "gpu-check: no node.gz next to this script: pack a folder first (bash bench/gpu-check.sh --pack DIR)" >&2
  exit 2
fi
