// doctor – `tunefleet doctor` on this machine: wasm and cpu load (wasm's
// gradients checked against cpu's), the tfjs-node backends are unavailable
// with the reason, and a job's needs are checked: exit 0 when met, 1 naming
// each problem (a missing dataset, a taken port).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CLI, freePort } from './cluster-helpers';
import { tempDir, writeIdxSet } from './fixtures';

const run = promisify(execFile);

function jobFile(dir: string, data: string, port: number): string {
  const file = join(dir, `job-${port}.yaml`);
  writeFileSync(file, JSON.stringify({ name: 'doc', backend: 'wasm', data: { path: data, download: false }, cluster: { host: '127.0.0.1', port }, metrics: { port: null } }));
  return file;
}

test('doctor – on this machine: wasm and cpu ok, the native backends unavailable with why, the job\'s needs met: exit 0', async () => {
  const dir = tempDir();
  writeIdxSet(dir, 20, 10);
  const { stdout } = await run('node', [CLI, 'doctor', '--config', jobFile(dir, dir, await freePort())]);
  assert.match(stdout, /^ok {7}backend cpu: loads/m);
  assert.match(stdout, /^ok {7}backend wasm: loads; seed CNN, batch 64: \d+ examples\/s; gradients match cpu's \(max relative difference [\d.e-]+\)$/m);
  for (const native of ['tensorflow-gpu', 'tensorflow']) {
    if (existsModule(native)) continue;
    assert.match(stdout, new RegExp(`^-- {7}backend ${native}: unavailable: not installed: npm install @tensorflow/tfjs-node`, 'm'));
  }
  assert.match(stdout, /^(ok|--) {7}GPUs: /m);
  assert.match(stdout, new RegExp(`^ok {7}dataset fashion-mnist: found in ${dir}$`, 'm'));
  assert.match(stdout, /^ok {7}coordinator port \(cluster\.port\): 127\.0\.0\.1:\d+ is free$/m);
  assert.match(stdout, /^ok {7}token and TLS: token off \(loopback only\); TLS off$/m);
  assert.doesNotMatch(stdout, /PROBLEM/);
});

test('doctor – a missing dataset and a taken port are problems, each named with what to do: exit 1', async () => {
  const dir = tempDir();
  const taken = createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  const port = (taken.address() as { port: number }).port;
  try {
    const result = await run('node', [CLI, 'doctor', '--config', jobFile(dir, join(dir, 'nowhere'), port)]).catch((e) => e);
    assert.equal(result.code, 1);
    assert.match(result.stdout, /^PROBLEM {2}dataset fashion-mnist: DatasetNotFound: fashion-mnist not in .*nowhere/m);
    assert.match(result.stdout, new RegExp(`^PROBLEM {2}coordinator port \\(cluster\\.port\\): ConfigInvalid: 127\\.0\\.0\\.1:${port} is taken \\(EADDRINUSE\\): stop what holds it or choose another port in the job$`, 'm'));
  } finally {
    taken.close();
  }
});

function existsModule(backend: string): boolean {
  try {
    require.resolve(backend === 'tensorflow-gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node');
    return true;
  } catch {
    return false;
  }
}
