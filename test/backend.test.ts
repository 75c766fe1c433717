// backend – auto picks the fastest backend that loads and says why the
// faster ones were skipped; an unknown or unavailable backend is a clear error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { BackendUnavailable } from '../core/errors';
import { initBackend, BackendName } from '../core/backend/backends';

const run = promisify(execFile);
const backendModule = join(__dirname, '..', 'core', 'backend', 'backends.js');

async function inChild(wanted: string): Promise<{ chosen: string; log: string }> {
  const script = `require(${JSON.stringify(backendModule)}).initBackend(${JSON.stringify(wanted)}).then((b) => console.log(b))`;
  const env = { ...process.env };
  delete env.TUNEFLEET_BACKEND;
  const { stdout, stderr } = await run('node', ['-e', script], { env });
  return { chosen: stdout.trim(), log: stderr };
}

test('backend – auto chooses the fastest that loads and logs why the others were skipped', async () => {
  const { chosen, log } = await inChild('auto');
  let nativeInstalled = true;
  try { require.resolve('@tensorflow/tfjs-node'); } catch { nativeInstalled = false; }
  if (!nativeInstalled) {
    assert.equal(chosen, 'wasm');
    assert.match(log, /backend chosen backend="wasm" why="auto" skipped="tensorflow-gpu: .+; tensorflow: .+"/);
  } else {
    assert.ok(['tensorflow-gpu', 'tensorflow'].includes(chosen), chosen);
  }
});

test('backend – an unknown or unavailable backend is a BackendUnavailable error', async () => {
  await assert.rejects(initBackend('tpu' as BackendName), (e: unknown) => e instanceof BackendUnavailable && /unknown backend 'tpu'/.test(e.message));
  let gpuInstalled = true;
  try { require.resolve('@tensorflow/tfjs-node-gpu'); } catch { gpuInstalled = false; }
  if (!gpuInstalled) await assert.rejects(initBackend('tensorflow-gpu'), /backend 'tensorflow-gpu' cannot start here: .*use --backend auto/);
});
