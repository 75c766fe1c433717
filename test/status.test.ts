// status – `tunefleet status` and the StatusBoard behind GetStatus: progress
// from the job's events, each worker's slices, stragglers; against a real
// running job, and refused without the token.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { StatusBoard } from '../coordinator/status';
import { statusText } from '../cli/status';
import { runCoordinator } from '../coordinator/coordinator';
import { parseJob } from '../core/job/config';
import { EventBus } from '../core/observe/events';
import { CLI, spawnWorker } from './cluster-helpers';
import { FakeClock } from './fake-clock';
import { tempDir, wasmWithIdxSet } from './fixtures';

const run = promisify(execFile);
let dataDir = '';
before(async () => {
  dataDir = await wasmWithIdxSet(200, 50);
});

test('status – progress and ETA from the events; per-worker slices; a worker over twice the others\' median time per example is a straggler', () => {
  const clock = new FakeClock();
  const board = new StatusBoard('j', clock);
  const events = new EventBus('j');
  events.subscribe(board.onEvent);
  assert.equal(board.report().state, 'waiting for workers');
  events.emit({ type: 'job.started', backend: 'wasm', iterations: 100, startIteration: 0, batchSize: 64, trainExamples: 1000 });
  events.emit({ type: 'progress', iteration: 50, iterations: 100, loss: 1, lr: 0.1, examplesPerSec: 320 });
  for (const w of ['a', 'b', 'c']) board.joined(w, 'wasm', `host/${w}`);
  for (let i = 0; i < 3; i++) { board.sliceDone('a', 0.2, 20); board.sliceDone('b', 0.22, 20); board.sliceDone('c', 0.9, 20); }
  clock.advance(1500);
  board.sliceDone('a', 0.2, 20);
  board.left('b');
  const r = board.report();
  assert.equal(r.state, 'training');
  assert.equal(r.iteration, 50);
  assert.equal(r.etaSeconds, (50 * 64) / 320, 'steps left × batch ÷ examples/s');
  assert.equal(r.evaluated, false);
  assert.deepEqual(r.workers.map((w) => [w.workerId, w.slicesDone, w.straggler, w.secondsSinceSeen]), [['a', 4, false, 0], ['c', 3, true, 1.5]]);
  const text = statusText(r);
  assert.match(text, /^job j: training, iteration 50\/100, 320 examples\/s, ETA 10 s\n/);
  assert.match(text, /\| c \(STRAGGLER\) \| wasm \| host\/c \| 3 \| 45\.00 ms \| 1\.5 s ago \|/);
  events.emit({ type: 'evaluation', iteration: 60, valAccuracy: 0.8, valLoss: 0.5, trainLoss: 0.6, wallSeconds: 9, evalSeconds: 1 });
  events.emit({ type: 'job.finished', iteration: 100, valAccuracy: 0.8, seconds: 10 });
  assert.deepEqual([board.report().state, board.report().validationAccuracy, board.report().etaSeconds], ['finished', 0.8, 0]);
});

test('status – a lost shard turns the state to "waiting for a shard" (no ETA) until the job has rewound', () => {
  const board = new StatusBoard('j', new FakeClock());
  const events = new EventBus('j');
  events.subscribe(board.onEvent);
  events.emit({ type: 'job.started', backend: 'wasm', iterations: 100, startIteration: 0, batchSize: 8, trainExamples: 800 });
  events.emit({ type: 'progress', iteration: 40, iterations: 100, loss: 1, lr: 0.01, examplesPerSec: 80 });
  events.emit({ type: 'shard.lost', shard: 1, reason: 'no answer to a Ping within 30 s (cluster.shardDeadlineSeconds)', live: 1 });
  assert.equal(board.report().state, 'waiting for a shard');
  assert.equal(board.report().etaSeconds, 0, 'no ETA while nothing can step');
  board.joined('w0', 'wasm', 'h/wasm');
  assert.match(board.unhealthy() ?? '', /^waiting for a shard/, '/healthz: 503 with why');
  events.emit({ type: 'job.rewound', iteration: 30, reason: 'shard lost' });
  assert.deepEqual([board.report().state, board.report().iteration], ['training', 30]);
  assert.equal(board.unhealthy(), null, 'training with a live worker is healthy');
  board.left('w0');
  assert.match(board.unhealthy() ?? '', /^no live worker/);
});

test('status – the truth between log lines: the job length before its first step, the live iteration, waiting for workers when none is live, every shard slot', () => {
  const shards = [{ slot: 0, address: '10.0.0.1:7072', live: true, parameterBytes: 4 << 20, secondsSinceHeard: 1.5 }, { slot: 1, address: '', live: false, parameterBytes: 4 << 20, secondsSinceHeard: 0 }];
  const board = new StatusBoard('j', new FakeClock(), { iterations: 500, startIteration: 120 }, () => shards);
  assert.deepEqual([board.report().state, board.report().iteration, board.report().iterations], ['waiting for workers', 120, 500], 'not 0/0 before the start');
  const events = new EventBus('j');
  events.subscribe(board.onEvent);
  events.emit({ type: 'job.started', backend: 'wasm', iterations: 500, startIteration: 120, batchSize: 8, trainExamples: 800 });
  board.joined('w0', 'wasm', 'h/wasm');
  board.stepping(123);
  assert.deepEqual([board.report().state, board.report().iteration], ['training', 123], 'every step, not every logEvery');
  board.left('w0');
  assert.equal(board.report().state, 'waiting for workers');
  const text = statusText(board.report());
  assert.match(text, /^job j: waiting for workers, iteration 123\/500/);
  assert.match(text, /\| 0 +\| 10\.0\.0\.1:7072 +\| 4\.0 MiB +\| 1\.5 s ago +\|/);
  assert.match(text, /\| 1 +\| \(free: waiting for a shard\) +\| 4\.0 MiB +\| — +\|/);
});

test('status – `tunefleet status` against a running job: its progress and both workers; refused without the token', async () => {
  const dir = tempDir();
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, 'status-token\n');
  const cfg = parseJob({
    name: 'stat', backend: 'wasm', data: { path: dataDir, download: false },
    train: { iterations: 150, batchSize: 16, evalEvery: 20, logEvery: 5, checkpointEvery: 150, outDir: tempDir() },
    cluster: { workers: 2, host: '127.0.0.1', port: 0, tokenFile }, metrics: { port: null, workerPort: null },
  });
  const events = new EventBus();
  let asked: Promise<[string, { code: number; stderr: string }]> | undefined;
  await runCoordinator(cfg, {
    events,
    onListening: (port) => {
      for (const id of ['w0', 'w1']) spawnWorker(port, id, 'off', ['--token-file', tokenFile]);
      events.subscribe((e) => {
        if (e.type !== 'evaluation' || asked) return;
        const address = `127.0.0.1:${port}`;
        asked = Promise.all([
          run('node', [CLI, 'status', '--coordinator', address, '--token-file', tokenFile, '--json']).then((r) => r.stdout),
          run('node', [CLI, 'status', '--coordinator', address]).then(() => ({ code: 0, stderr: '' }), (err) => err),
        ]);
      });
    },
  });
  assert.ok(asked, 'status was asked during the job');
  const [json, refused] = await asked!;
  const status = JSON.parse(json);
  assert.equal(status.job, 'stat');
  assert.equal(status.state, 'training');
  assert.equal(status.iterations, 150);
  assert.ok(status.iteration >= 20, `iteration ${status.iteration}`);
  assert.equal(status.evaluated, true);
  assert.deepEqual(status.workers.map((w: { workerId: string; backend: string }) => [w.workerId, w.backend]).sort(), [['w0', 'wasm'], ['w1', 'wasm']]);
  assert.ok(status.workers.every((w: { slicesDone: number }) => w.slicesDone > 0));
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /JobFailed: no status from the coordinator at 127\.0\.0\.1:\d+: missing or wrong token; pass the job's token with --token-file/);
});
