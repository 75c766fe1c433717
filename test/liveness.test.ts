// liveness – a peer that stays connected but goes silent (SIGSTOP: it stops
// reading and answering; the kernel keeps its TCP connections open) is found
// within its documented bound, the right peer is blamed, and the job finishes
// with every example of each completed epoch used once. Real coordinator,
// real worker and shard processes on loopback, and a model (49 MiB) larger
// than the socket buffers, so a write to a stopped reader really blocks.
// The policy is docs/failure-model.md's "A peer that goes silent" table.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess } from 'node:child_process';
import { AddressInfo, connect, createServer, Socket } from 'node:net';
import { join } from 'node:path';
import { EventBus, TrainingEvent } from '../core/observe/events';
import { parseJob } from '../core/job/config';
import { readParams } from '../core/model/params';
import { Cluster } from '../coordinator/cluster';
import * as grpc from '@grpc/grpc-js';
import { runCoordinator } from '../coordinator/coordinator';
import { ShardCommand, ShardMessage, ShardsClient } from '../proto/gen/tunefleet/v1/tunefleet';
import { Metrics } from '../core/observe/metrics';
import { startDataPlane } from '../core/wire/data-plane';
import { Shard } from '../shard/shard';
import { exitOf, firstDifference, freePort, runJob, spawnShard, spawnWorker } from './cluster-helpers';
import { saveWideModel, tempDir, wasmWithIdxSet } from './fixtures';

let dataDir = '';
let wideModel = '';
before(async () => {
  dataDir = await wasmWithIdxSet(64, 16);
  wideModel = await saveWideModel(join(tempDir(), 'wide'), 49, 'zeros');
});

/** 16 steps of 8 over 64 examples: epochs 0 and 1 complete. Bounds short, so a test that relied on the old unbounded waits would hang. */
function wideJob(shards: number) {
  return parseJob({
    name: 'liveness', backend: 'wasm', data: { path: dataDir, download: false },
    model: { from: wideModel, replaceHead: false },
    train: { iterations: 16, batchSize: 8, evalEvery: 1000, logEvery: 4, checkpointEvery: 1000, outDir: tempDir() },
    // The slice deadline is long: only the stall bound can find a worker that stopped reading between steps.
    cluster: { shards, stallSeconds: 2, shardDeadlineSeconds: 3, sliceDeadline: { minSeconds: 60 } },
  });
}

function everyEpochOnce(cluster: Cluster): void {
  for (const epoch of [0, 1]) {
    const r = cluster.ledger.report(epoch);
    assert.ok(r.complete && r.examplesUsed === 64, `epoch ${epoch}: ${r.examplesUsed} uses of ${r.distinct} distinct examples`);
  }
}

for (const shards of [0, 1]) {
  const who = shards === 0 ? 'the coordinator' : 'a shard';
  test(`liveness – a worker that stops reading a 49 MiB model from ${who} is dropped within cluster.stallSeconds and blamed; the job finishes, each example once`, { timeout: 180_000 }, async () => {
    const events = new EventBus();
    const lost: (TrainingEvent & { type: 'worker.lost' })[] = [];
    let stoppedAt = 0, lostAt = 0;
    let stoppedProc: ChildProcess | null = null as ChildProcess | null;
    events.subscribe((e) => {
      // 'progress' is emitted between steps, after the update and before the next hand-out: stopped now,
      // w1 holds no slice, and the next parameters are about to go out to it.
      if (e.type === 'progress' && e.iteration >= 4 && !stoppedAt && stoppedProc) { stoppedProc.kill('SIGSTOP'); stoppedAt = Date.now(); }
      if (e.type !== 'worker.lost') return;
      lost.push(e);
      if (e.worker === 'w1' && !lostAt) { lostAt = Date.now(); stoppedProc?.kill('SIGCONT'); } // found: let it go on (it joins again)
    });
    const run = await runJob(wideJob(shards), 2, (_cluster, _port, workers) => { stoppedProc = workers[1]; }, { events });
    assert.ok(stoppedAt > 0, 'w1 was stopped');
    const first = lost.find((e) => e.worker === 'w1');
    assert.ok(first, `w1 was lost: ${JSON.stringify(lost)}`);
    assert.match(first.reason, /the peer took none of the bytes written to it for 2 s \(cluster\.stallSeconds\)/);
    assert.ok(lostAt - stoppedAt < 10_000, `found ${lostAt - stoppedAt} ms after it stopped (bound 2 s plus a parameter write)`);
    assert.ok(lost.every((e) => e.worker === 'w1'), `only the silent worker is blamed: ${JSON.stringify(lost)}`);
    assert.equal(run.curve[run.curve.length - 1].iteration, 16, 'the job finished');
    everyEpochOnce(run.cluster);
  });
}

function seedJob(shards: number, sliceSeconds: number | null) {
  return parseJob({
    name: 'liveness-shard', backend: 'wasm', data: { path: dataDir, download: false },
    train: { iterations: 16, batchSize: 8, evalEvery: 16, logEvery: 4, checkpointEvery: 4, outDir: tempDir() },
    optimizer: { lr: 0.02, momentum: 0.9, layers: [{ match: 'head/*', lrMult: 10 }, { match: '*', lrMult: 0.5 }] },
    // Slice deadline (2 s) shorter than the shard deadline (4 s): the workers' deadlines fire first while the shard is silent.
    cluster: { shards, partitionMiB: 0.05, shardDeadlineSeconds: 4, sliceDeadline: { seconds: sliceSeconds } },
  });
}

test('liveness – a shard that goes silent (SIGSTOP) is lost within cluster.shardDeadlineSeconds, not the workers whose deadlines fire first; /healthz says so; it rejoins, the job rewinds and ends bit-identical', { timeout: 180_000 }, async () => {
  const expected = await readParams((await runJob(seedJob(0, 2), 2)).model);
  const events = new EventBus();
  const seen: TrainingEvent[] = [];
  let stoppedAt = 0, lostAt = 0;
  let silent: ChildProcess | null = null;
  const healthz = `http://127.0.0.1:${await freePort()}/healthz`;
  const health: string[] = [];
  events.subscribe((e) => {
    if (['shard.lost', 'worker.lost', 'job.rewound'].includes(e.type)) seen.push(e);
    if (e.type !== 'shard.lost' || lostAt) return;
    lostAt = Date.now();
    // Asked while the slot is empty; then it wakes, finds its stream ended, joins again.
    void fetch(healthz).then(async (r) => health.push(`${r.status} ${await r.text()}`)).finally(() => silent?.kill('SIGCONT'));
  });
  const cfg = seedJob(2, 2);
  const run = await runJob({ ...cfg, metrics: { ...cfg.metrics, host: '127.0.0.1', port: Number(new URL(healthz).port) } }, 2, (cluster, _port, _workers, shards) => {
    const check = setInterval(() => {
      if (Math.max(-1, ...cluster.ledger.snapshot().map((e) => e.step)) < 6) return;
      clearInterval(check);
      silent = shards[1];
      silent.kill('SIGSTOP');
      stoppedAt = Date.now();
    }, 1).unref();
  }, { events });
  assert.ok(stoppedAt > 0 && lostAt > 0, 'a shard was stopped and lost');
  assert.ok(lostAt - stoppedAt < 4000 + 2000, `lost ${lostAt - stoppedAt} ms after it stopped (bound: 4 s)`);
  const shardLost = seen.find((e) => e.type === 'shard.lost');
  assert.match(JSON.stringify(shardLost), /no answer to .* within 4 s \(cluster\.shardDeadlineSeconds\)/);
  const blamed = seen.filter((e) => e.type === 'worker.lost' && /^deadline/.test(e.reason));
  assert.deepEqual(blamed, [], 'no worker is dropped for a deadline the shard made it miss');
  assert.ok(seen.some((e) => e.type === 'job.rewound'), 'the job went back to its last checkpoint');
  assert.match(health[0], /^503 unhealthy: waiting for a shard/);
  assert.equal(firstDifference(await readParams(run.model), expected), null, 'bit-identical to the undisturbed run');
  everyEpochOnce(run.cluster);
});

test('liveness – a shard that joins and then never answers (an outside client on the Shards service) is lost within cluster.shardDeadlineSeconds and its stream ended; a real shard takes the slot and the job finishes', { timeout: 120_000 }, async () => {
  const cfg = seedJob(1, null);
  const events = new EventBus();
  const lost: string[] = [];
  events.subscribe((e) => { if (e.type === 'shard.lost') lost.push(e.reason); });
  let silentEnded: Promise<grpc.ServiceError> | null = null;
  const others: ChildProcess[] = [];
  const result = await runCoordinator({ ...cfg, cluster: { ...cfg.cluster, workers: 1, host: '127.0.0.1', port: 0, shardDeadlineSeconds: 2 } }, {
    events,
    onListening: (port) => {
      const client = new ShardsClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
      const call = client.session();
      call.write({ kind: { $case: 'join', value: { dataPort: 9, dataHost: '127.0.0.1' } } });
      call.on('data', () => {}); // reads every command, answers none
      silentEnded = new Promise((resolve) => call.on('error', (err: grpc.ServiceError) => { client.close(); resolve(err); }));
      void silentEnded.then(() => others.push(spawnShard(port), spawnWorker(port, 'w0')));
    },
  });
  const err = await silentEnded!;
  assert.equal(err.code, grpc.status.DEADLINE_EXCEEDED, err.message);
  assert.match(err.details, /no answer to a Ping within 2 s \(cluster\.shardDeadlineSeconds\)/);
  assert.match(lost[0], /no answer to a Ping within 2 s/);
  assert.equal(result.curve[result.curve.length - 1].iteration, 16, 'the job finished with the real shard');
  await Promise.all(others.map(exitOf));
});

/**
 * A shard run in this process from the real Shard class and data plane,
 * joined as an outside client holding the token would: `tamper` may rewrite
 * what it reports, `front` put something (a proxy) before its data port and
 * return the port workers are told. Resolves with the status its stream
 * ended with; it does not join again.
 */
async function inProcessShard(port: number, opts: { tamper?: (m: ShardMessage) => ShardMessage; front?: (dataPort: number) => Promise<number> }): Promise<grpc.ServiceError> {
  const client = new ShardsClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const call = client.session();
  const shard = new Shard(new Metrics('', 'shard'), async (m: ShardMessage) => { call.write(opts.tamper ? opts.tamper(m) : m); });
  const data = await startDataPlane(shard, { host: '127.0.0.1', port: 0, helloSeconds: 10, cert: null, key: null, clientCa: null });
  const dataPort = opts.front ? await opts.front(data.port) : data.port;
  call.write({ kind: { $case: 'join', value: { dataPort, dataHost: '127.0.0.1' } } });
  let handling = Promise.resolve();
  call.on('data', (cmd: ShardCommand) => { handling = handling.then(() => shard.handle(cmd)); });
  return new Promise((resolve) => call.on('error', (err: grpc.ServiceError) => { shard.reset(); data.server.close(); client.close(); resolve(err); }));
}

/** Every upload reported with Σ g² = NaN: the attack of docs/failure-model.md's "a shard whose reports contradict the workers'". */
const nanSquares = (m: ShardMessage): ShardMessage => (m.kind?.$case === 'uploaded' ? { kind: { ...m.kind, value: { ...m.kind.value, squares: NaN } } } : m);

test('liveness – a shard that reports Σ g² = NaN for finite uploads is dropped as the faulty peer, not taken for divergence; no worker is blamed, a real shard takes the slot, the job finishes', { timeout: 120_000 }, async () => {
  const cfg = seedJob(1, null);
  const events = new EventBus();
  const seen: TrainingEvent[] = [];
  events.subscribe((e) => { if (['shard.lost', 'worker.lost', 'job.rewound'].includes(e.type)) seen.push(e); });
  let liar: Promise<grpc.ServiceError> | null = null;
  const others: ChildProcess[] = [];
  // float16 gradients: the honest shard that follows must agree with what the workers counted after rounding.
  const job = { ...cfg, cluster: { ...cfg.cluster, workers: 2, host: '127.0.0.1', port: 0, gradientDtype: 'float16' as const } };
  const result = await runCoordinator(job, {
    events,
    onListening: (port) => {
      liar = inProcessShard(port, { tamper: nanSquares });
      others.push(spawnWorker(port, 'w0'), spawnWorker(port, 'w1'));
      void liar.then(() => others.push(spawnShard(port)));
    },
  });
  const err = await liar!;
  assert.equal(err.code, grpc.status.INVALID_ARGUMENT, err.message);
  assert.match(err.details, /^non-finite: it reported Σ g² = NaN for worker w[01]'s upload, which the worker sent with Σ g² = \d/);
  const shardsLost = seen.filter((e) => e.type === 'shard.lost');
  assert.equal(shardsLost.length, 1, `only the liar is lost: ${JSON.stringify(shardsLost)}`);
  const struck = seen.filter((e) => e.type === 'worker.lost' && /non-finite|deadline/.test(e.reason));
  assert.deepEqual(struck, [], 'no worker is struck for the shard\'s report');
  assert.equal(result.curve[result.curve.length - 1].iteration, 16, 'the job finished (not JobDiverged)');
  everyEpochOnce(result.cluster);
  await Promise.all(others.map(exitOf));
});

test('liveness – a shard that stops reading its workers (it still answers Pings) is dropped once both workers report their writes to it stalled; no worker is struck, a real shard takes the slot, the job finishes, each example once', { timeout: 180_000 }, async () => {
  const cfg = wideJob(1);
  const events = new EventBus();
  const seen: TrainingEvent[] = [];
  let proxy: Awaited<ReturnType<typeof blackholeProxy>> | null = null;
  let stoppedAt = 0, lostAt = 0;
  events.subscribe((e) => {
    if (e.type === 'progress' && e.iteration >= 4 && !stoppedAt && proxy) { proxy.stopReading(); stoppedAt = Date.now(); }
    if (e.type === 'shard.lost' && !lostAt) lostAt = Date.now();
    if (['shard.lost', 'worker.lost', 'job.rewound'].includes(e.type)) seen.push(e);
  });
  let silent: Promise<grpc.ServiceError> | null = null;
  const others: ChildProcess[] = [];
  const job = { ...cfg, cluster: { ...cfg.cluster, workers: 2, host: '127.0.0.1', port: 0 } };
  const result = await runCoordinator(job, {
    events,
    onListening: (port) => {
      silent = inProcessShard(port, { front: async (dataPort) => (proxy = await blackholeProxy(dataPort)).port });
      others.push(spawnWorker(port, 'w0'), spawnWorker(port, 'w1'));
      void silent.then(() => { proxy?.close(); others.push(spawnShard(port)); });
    },
  });
  const err = await silent!;
  assert.ok(stoppedAt > 0, 'the shard stopped reading');
  assert.equal(err.code, grpc.status.DEADLINE_EXCEEDED, err.message);
  assert.match(err.details, /its connections to workers w[01], w[01] stalled \(parameter shard 0: the peer took none of the bytes written to it for 2 s \(cluster\.stallSeconds\)/);
  assert.ok(lostAt - stoppedAt < 20_000, `lost ${lostAt - stoppedAt} ms after it stopped reading (a step, then 2 s)`);
  const struck = seen.filter((e) => e.type === 'worker.lost' && /non-finite|deadline/.test(e.reason));
  assert.deepEqual(struck, [], 'no worker is struck');
  assert.equal(seen.filter((e) => e.type === 'shard.lost').length, 1);
  assert.equal(result.curve[result.curve.length - 1].iteration, 16, 'the job finished');
  everyEpochOnce(result.cluster);
  await Promise.all(others.map(exitOf));
});

/**
 * A TCP proxy to `port` whose path can be cut while both connections stay
 * open (a partition that keeps TCP up), or made to stop reading what its
 * clients send (a peer that stops reading: their writes fill the buffers).
 */
async function blackholeProxy(port: number): Promise<{ port: number; cut: () => void; stopReading: () => void; close: () => void }> {
  const pairs: Socket[][] = [];
  let cut = false, reading = true;
  const server = createServer((down) => {
    const up = connect(port, '127.0.0.1');
    pairs.push([down, up]);
    if (!reading) down.pause();
    for (const [from, to] of [[down, up], [up, down]]) {
      from.on('data', (d: Buffer) => { if (!cut) to.write(d); }); // once cut, bytes vanish: nothing is closed, nothing arrives
      from.on('error', () => {});
      from.on('close', () => { if (!cut) to.destroy(); }); // once cut, not even a close gets through
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    cut: () => { cut = true; },
    stopReading: () => { reading = false; for (const [down] of pairs) down.pause(); },
    close: () => { server.close(); for (const pair of pairs) for (const s of pair) s.destroy(); },
  };
}

test('liveness – a worker whose gRPC path goes silent while TCP stays open (half-open) is lost by keepalive within 2 × cluster.keepaliveSeconds, and the worker finds the coordinator gone by its own (--keepalive-seconds); the job finishes, each example once', { timeout: 120_000 }, async () => {
  const cfg = wideJob(0);
  const events = new EventBus();
  const lost: { reason: string; at: number }[] = [];
  let cutAt = 0, w1ExitedAt = 0;
  let proxy: Awaited<ReturnType<typeof blackholeProxy>> | null = null;
  let w1: ChildProcess | null = null as ChildProcess | null;
  const others: ChildProcess[] = [];
  events.subscribe((e) => {
    if (e.type === 'progress' && e.iteration >= 4 && !cutAt && proxy) { proxy.cut(); cutAt = Date.now(); }
    if (e.type === 'worker.lost' && e.worker === 'w1') lost.push({ reason: e.reason, at: Date.now() });
  });
  // A small model: only the gRPC path is cut (the data connection goes straight to the coordinator's data port).
  const job = { ...cfg, model: { ...cfg.model, from: null }, cluster: { ...cfg.cluster, workers: 2, host: '127.0.0.1', port: 0, keepaliveSeconds: 3 } };
  const result = await runCoordinator(job, {
    events,
    onListening: (port) => {
      others.push(spawnWorker(port, 'w0'));
      void blackholeProxy(port).then((p) => {
        proxy = p;
        w1 = spawnWorker(p.port, 'w1', 'off', ['--keepalive-seconds', '3', '--reconnect-for', '0']);
        w1.once('exit', () => { w1ExitedAt = Date.now(); });
      });
    },
  });
  // The worker's side: nothing reaches it through the cut path, so only its own keepalive can tell it the coordinator is gone.
  const exited = await Promise.race([exitOf(w1!), new Promise<'still running'>((r) => setTimeout(() => r('still running'), 15_000))]);
  proxy!.close();
  assert.equal(exited, 1, 'w1 gave up on the coordinator by itself (--reconnect-for 0)');
  assert.ok(w1ExitedAt - cutAt < 6000 + 3000, `w1 exited ${w1ExitedAt - cutAt} ms after the cut (bound: 2 × 3 s)`);
  assert.ok(cutAt > 0, 'the path was cut');
  assert.ok(lost.length > 0, 'w1 was lost');
  assert.ok(lost[0].at - cutAt < 6000 + 3000, `lost ${lost[0].at - cutAt} ms after the cut (bound: 2 × 3 s)`);
  assert.equal(result.curve[result.curve.length - 1].iteration, 16, 'the job finished');
  everyEpochOnce(result.cluster);
  await Promise.all(others.map(exitOf));
});
