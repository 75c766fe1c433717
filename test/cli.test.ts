// cli – errors are one line with the right exit code, never a stack trace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { AddressInfo, createServer } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { tempDir, writeIdxSet } from './fixtures';
import { missing } from './needs';

const run = promisify(execFile);
const CLI = join(__dirname, '..', 'cli', 'main.js');

test('cli – a bad config or a missing dataset is one clear line and a non-zero exit', async () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'bad.yaml'), 'optimizer:\n  momentum: 3\n');
  const bad = await run('node', [CLI, 'train', '--config', join(dir, 'bad.yaml')]).catch((e) => e);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^ConfigInvalid: .*bad\.yaml: optimizer\.momentum: Number must be less than or equal to 1\n$/);
  writeFileSync(join(dir, 'nodata.yaml'), `data:\n  path: ${join(dir, 'nowhere')}\n`);
  const missing = await run('node', [CLI, 'train', '--config', join(dir, 'nodata.yaml'), '--backend', 'wasm']).catch((e) => e);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /DatasetNotFound: fashion-mnist not in .*nowhere/);
  assert.doesNotMatch(missing.stderr, /\n\s+at /, 'no stack trace');
});

test('cli – every command answers --help and -h with its usage, naming every flag it accepts; --version', async () => {
  const { FLAGS } = await import('../cli/main');
  for (const [command, flags] of Object.entries(FLAGS)) {
    for (const help of ['--help', '-h']) {
      const { stdout } = await run('node', [CLI, command, help]);
      assert.match(stdout, new RegExp(`^Usage:\\n  tunefleet ${command} `), `${command} ${help}`);
      for (const flag of Object.keys(flags)) assert.ok(stdout.includes(`--${flag}`), `${command} --help names --${flag}`);
    }
  }
  const { stdout } = await run('node', [CLI, '--version']);
  assert.equal(stdout, `tunefleet ${JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')).version}\n`);
});

test('cli – no silent defaults: train without --config, --workers that is not a number, an address without a port', async () => {
  const noConfig = await run('node', [CLI, 'train']).catch((e) => e);
  assert.equal(noConfig.code, 2);
  assert.match(noConfig.stderr, /^ConfigInvalid: --config job\.yaml is required: `tunefleet config > job\.yaml` writes one with every field at its default, and examples\/ has ready ones\n$/);
  const workers = await run('node', [CLI, 'local', '--workers', 'abc', '--config', 'examples/fashion-mnist.yaml']).catch((e) => e);
  assert.equal(workers.code, 2);
  assert.equal(workers.stderr, "ConfigInvalid: --workers must be a whole number of workers (1 or more), not 'abc'\n");
  const { coordinatorFlag } = await import('../cli/main');
  assert.equal(coordinatorFlag('127.0.0.1'), '127.0.0.1:7070', 'the documented default port, not 443');
  assert.equal(coordinatorFlag('tunefleet-coordinator'), 'tunefleet-coordinator:7070');
  assert.equal(coordinatorFlag('::1'), '[::1]:7070');
  assert.equal(coordinatorFlag('[::1]:9000'), '[::1]:9000');
  assert.equal(coordinatorFlag('10.0.0.5:7171'), '10.0.0.5:7171');
  assert.throws(() => coordinatorFlag('host:port'), /--coordinator host:port: not HOST:PORT/);
  assert.throws(() => coordinatorFlag(undefined), /--coordinator HOST:PORT is required/);
});

test('cli – a port in use is one line naming the setting that chose it; a worker that never got in says so, not "lost"', async () => {
  const dir = tempDir();
  writeIdxSet(dir, 20, 10);
  const held = createServer();
  await new Promise<void>((r) => held.listen(0, '127.0.0.1', r));
  const port = (held.address() as AddressInfo).port;
  const job = (cluster: object) => {
    const file = join(dir, `job-${Object.keys(cluster).join('-')}.yaml`);
    writeFileSync(file, JSON.stringify({ backend: 'wasm', data: { path: dir, download: false }, cluster: { host: '127.0.0.1', ...cluster }, metrics: { port: null } }));
    return file;
  };
  const grpcPort = await run('node', [CLI, 'coordinator', '--config', job({ port, dataPort: 0 })]).catch((e) => e);
  // The error is the last line; before it only our own log lines (no raw grpc-js ones).
  const last = (r: { stderr: string }) => r.stderr.trim().split('\n').at(-1);
  const ours = (r: { stderr: string }) => r.stderr.trim().split('\n').every((l) => /^\d{4}-\d\d-\d\dT\S+ (info|warn) /.test(l) || l === last(r));
  assert.equal(grpcPort.code, 2);
  assert.equal(last(grpcPort), `ConfigInvalid: 127.0.0.1:${port} is in use: stop what holds it, or choose another port with cluster.port (or --port)`);
  assert.ok(ours(grpcPort), grpcPort.stderr);
  const dataPort = await run('node', [CLI, 'coordinator', '--config', job({ port: 0, dataPort: port })]).catch((e) => e);
  assert.equal(last(dataPort), `ConfigInvalid: 127.0.0.1:${port} is in use: stop what holds it, or choose another port with cluster.dataPort (default: cluster.port + 1)`);
  const shard = await run('node', [CLI, 'shard', '--coordinator', '127.0.0.1:1', '--host', '127.0.0.1', '--data-port', String(port), '--metrics-port', 'off']).catch((e) => e);
  assert.equal(last(shard), `ConfigInvalid: 127.0.0.1:${port} is in use: stop what holds it, or choose another port with --data-port (0 = any free port; each shard on a host needs its own)`);
  held.close();
  const nobody = await run('node', [CLI, 'worker', '--coordinator', `127.0.0.1:${port}`, '--backend', 'wasm', '--reconnect-for', '0', '--metrics-port', 'off']).catch((e) => e);
  assert.equal(nobody.code, 1);
  assert.match(nobody.stderr, new RegExp(`^JobFailed: could not join the coordinator at 127\\.0\\.0\\.1:${port} \\(is it running, and is HOST:PORT right\\?\\): .*\\(gave up after 0 s: --reconnect-for\\)$`, 'm'));
  assert.doesNotMatch(nobody.stderr, /lost the coordinator/);
});

test('cli – train on a terminal shows one live progress line (iteration, accuracy, examples/s, ETA); elsewhere the log lines', { skip: missing('script') }, async () => {
  const dir = tempDir();
  writeIdxSet(dir, 100, 20);
  const job = join(dir, 'job.yaml');
  writeFileSync(job, JSON.stringify({ name: 'live', backend: 'wasm', data: { path: dir, download: false }, train: { iterations: 6, batchSize: 16, evalEvery: 3, logEvery: 1, checkpointEvery: 6, outDir: join(dir, 'out') } }));
  const command = `node ${CLI} train --config ${job}`;
  const onTerminal = (await run('script', ['-qfec', command, '/dev/null'])).stdout; // a pseudo-terminal
  assert.match(onTerminal, /\r\x1b\[2Klive {2}it 6\/6 {2}acc \d+\.\d% {2}\d+ ex\/s {2}ETA \d+:\d\d/);
  assert.doesNotMatch(onTerminal, /info trainer: progress/, 'info lines are hidden behind the live line');
  const plain = await run('node', [CLI, 'train', '--config', job]);
  assert.match(plain.stderr, /info trainer: progress iteration=6/);
  assert.doesNotMatch(plain.stderr, /\x1b\[2K/);
});
