// shards – parameter shards (cluster.shards > 0) with real shard and worker
// processes on loopback: the same arithmetic as without shards, checkpoints
// that resume with any shard count, and the failure policy (a shard lost →
// back to the last checkpoint; a worker lost, late or new → as without shards).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { setTimeout as sleep } from 'node:timers/promises';
import { EventBus, TrainingEvent } from '../core/observe/events';
import { parseJob } from '../core/job/config';
import { readParams } from '../core/model/params';
import { Tensors } from '../core/util/tensors';
import { loadModel } from '../core/model/io';
import { exitOf, firstDifference, freePort, runJob, spawnCoordinator, spawnShard, spawnWorker } from './cluster-helpers';
import { tempDir, wasmWithIdxSet } from './fixtures';

let dataDir = '';
before(async () => {
  dataDir = await wasmWithIdxSet(1400, 40); // 20 steps of 64 stay within epoch 0: the ledger keeps all of them
});

function job(shards: number, train: Record<string, unknown> = {}) {
  return parseJob({
    name: 'shards', backend: 'wasm', data: { path: dataDir, download: false },
    train: { iterations: 20, batchSize: 64, evalEvery: 10, logEvery: 10, checkpointEvery: 20, outDir: tempDir(), ...train },
    optimizer: { lr: 0.02, momentum: 0.9, weightDecay: 0.0005, layers: [{ match: 'head/*', lrMult: 10 }, { match: 'conv1/*', lrMult: 0 }, { match: '*', lrMult: 0.5 }] },
    cluster: { shards, partitionMiB: 0.05 }, // 50 KiB partitions: the 400 KiB model is cut into many pieces, fc1/kernel across shards
  });
}

let undisturbed: Tensors | null = null;
/** 2 workers, no shards, 20 iterations: what every run below must end with, bit for bit. */
async function reference(): Promise<Tensors> {
  undisturbed ??= await readParams((await runJob(job(0), 2)).model);
  return undisturbed;
}

test('shards – 2 workers with 2 and with 4 shards end bit-identical to 0 shards after 20 iterations; no gradient passes the coordinator', async () => {
  const expected = await reference();
  for (const shards of [2, 4]) {
    const run = await runJob(job(shards), 2);
    assert.equal(firstDifference(await readParams(run.model), expected), null, `${shards} shards`);
    assert.equal(run.cluster.traffic.gradientBytes, 0, `${shards} shards: gradients went to the shards`);
    assert.ok(run.shards.every((p) => p.exitCode === 0), `${shards} shards exit 0 when the job ends`);
  }
});

test('shards – layer decay reaches the shards: with 2 shards the run ends bit-identical to 0 shards, and unlike the run without it', async () => {
  const decayed = (shards: number) => {
    const cfg = job(shards);
    return { ...cfg, optimizer: { ...cfg.optimizer, layerDecay: 0.5 } };
  };
  const local = await readParams((await runJob(decayed(0), 2)).model);
  const sharded = await readParams((await runJob(decayed(2), 2)).model);
  assert.equal(firstDifference(sharded, local), null);
  assert.notEqual(firstDifference(local, await reference()), null, 'the decay changed the run');
});

test('shards – gradual unfreezing with 2 shards ends bit-identical to 0 shards: the shards join the next stage with the new trainable set', async () => {
  const unfreezing = (shards: number) => {
    const cfg = job(shards);
    return { ...cfg, optimizer: { ...cfg.optimizer, unfreeze: [{ match: 'fc1/*', minDepth: null, at: 10 }] } };
  };
  const local = await runJob(unfreezing(0), 2);
  const sharded = await runJob(unfreezing(2), 2);
  assert.equal(firstDifference(await readParams(sharded.model), await readParams(local.model)), null);
  assert.ok(sharded.shards.every((p) => p.exitCode === 0), 'the shards rejoined and were told the job finished');
  assert.notEqual(firstDifference(await readParams(local.model), await reference()), null, 'fc1 frozen for 10 steps changed the run');
});

test('shards – a checkpoint written with 4 shards resumes with 0, one written with 0 resumes with 2: both end bit-identical', async () => {
  const expected = await reference();
  for (const [first, then] of [[4, 0], [0, 2]]) {
    const outDir = tempDir();
    await runJob(job(first, { iterations: 10, outDir, checkpointEvery: 10 }), 2);
    const resumed = await runJob(job(then, { outDir }), 2, undefined, { resume: true });
    assert.equal(resumed.curve[0].iteration, 20, 'resumed at 10, ran to 20');
    assert.equal(firstDifference(await readParams(resumed.model), expected), null, `${first} → ${then} shards`);
  }
});

test('shards – a shard killed mid-job: the job goes back to its last checkpoint when a new shard joins, and ends bit-identical; each example once', async () => {
  const expected = await reference();
  const events = new EventBus();
  const seen: TrainingEvent[] = [];
  events.subscribe((e) => { if (['shard.lost', 'shard.joined', 'job.rewound', 'checkpoint.written'].includes(e.type)) seen.push(e); });
  let killedAt = -1;
  const run = await runJob(job(2, { checkpointEvery: 5 }), 2, (cluster, port, _workers, shards) => {
    const check = setInterval(() => {
      // Past the checkpoint at 10, mid-step: kill a shard, and start its replacement a moment later.
      const step = Math.max(-1, ...cluster.ledger.snapshot().map((e) => e.step));
      if (step >= 12) {
        killedAt = step;
        shards[0].kill('SIGKILL');
        void sleep(300).then(() => shards.push(spawnShard(port)));
        clearInterval(check);
      }
    }, 2).unref();
  }, { events });
  assert.ok(killedAt >= 12, `a shard was killed after step ${killedAt}`);
  const rewound = seen.find((e) => e.type === 'job.rewound');
  assert.ok(rewound && rewound.type === 'job.rewound' && rewound.iteration % 5 === 0 && rewound.iteration >= 5, `rewound to a checkpoint: ${JSON.stringify(rewound)}`);
  assert.ok(seen.some((e) => e.type === 'shard.lost'));
  assert.equal(firstDifference(await readParams(run.model), expected), null, 'bit-identical to the undisturbed run');
  // The ledger went back with the job: the steps redone are recorded once.
  const r = run.cluster.ledger.report(0);
  assert.ok(r.examplesUsed === 20 * 64 && r.distinct === 20 * 64, `epoch 0: ${r.examplesUsed} uses of ${r.distinct} distinct examples`);
});

test('shards – a worker killed mid-step: its slice is reassigned, the ledger records each example once, the job completes', async () => {
  let killed = false;
  const run = await runJob(job(2, { iterations: 8, batchSize: 48, evalEvery: 8, checkpointEvery: 8 }), 2, (cluster, _port, workers) => {
    const check = setInterval(() => {
      if (!killed && cluster.ledger.report(0).examplesUsed >= 96) { workers[1].kill('SIGKILL'); killed = true; clearInterval(check); }
    }, 2).unref();
  });
  assert.ok(killed, 'a worker was killed');
  const r = run.cluster.ledger.report(0);
  assert.ok(r.examplesUsed === 8 * 48 && r.distinct === 8 * 48, `epoch 0: ${r.examplesUsed} uses of ${r.distinct} distinct examples`);
  assert.equal(run.curve[run.curve.length - 1].iteration, 8, 'the job completed');
});

test('shards – worker elasticity unchanged: one joins mid-job, a straggler (SIGSTOP) is dropped at its deadline; the job completes, each example once', async () => {
  const events = new EventBus();
  const seen: TrainingEvent[] = [];
  let stopped: ChildProcess | null = null;
  events.subscribe((e) => {
    if (e.type === 'worker.joined' || e.type === 'worker.lost') seen.push(e);
    if (e.type === 'worker.lost' && e.worker === 'w0') stopped?.kill('SIGCONT'); // dropped: let it go on (it joins again)
  });
  const cfg = job(2, { iterations: 80, batchSize: 16, evalEvery: 80, checkpointEvery: 80 }); // 1,280 examples: all in epoch 0
  const run = await runJob({ ...cfg, cluster: { ...cfg.cluster, sliceDeadline: { ...cfg.cluster.sliceDeadline, minSeconds: 1, factor: 5 } } }, 2, (cluster, port, workers) => {
    let threeFrom = -1;
    const check = setInterval(() => {
      const step = Math.max(-1, ...cluster.ledger.snapshot().map((e) => e.step));
      if (step >= 3 && workers.length === 2) workers.push(spawnWorker(port, 'w2'));
      if (threeFrom < 0 && cluster.live().length === 3) threeFrom = step;
      if (threeFrom >= 0 && step >= threeFrom + 3) { stopped = workers[0]; stopped.kill('SIGSTOP'); clearInterval(check); }
    }, 2).unref();
  }, { events });
  assert.ok(stopped, 'a worker was stopped');
  assert.ok(seen.some((e) => e.type === 'worker.joined' && e.worker === 'w2'), 'w2 joined mid-job');
  const lost = seen.find((e) => e.type === 'worker.lost' && e.worker === 'w0');
  assert.ok(lost && lost.type === 'worker.lost' && /deadline/.test(lost.reason), `w0 dropped at its deadline: ${JSON.stringify(lost)}`);
  // Its late reports about the dropped session (a shard may send them before it hears of the drop) must not touch the new one.
  const losses = seen.filter((e) => e.type === 'worker.lost');
  assert.equal(losses.length, 1, `after SIGCONT w0 joins again and stays: ${losses.map((e) => e.type === 'worker.lost' && e.reason).join('; ')}`);
  const r = run.cluster.ledger.report(0);
  assert.ok(r.examplesUsed === 80 * 16 && r.distinct === 80 * 16, `epoch 0: ${r.examplesUsed} uses of ${r.distinct} distinct examples`);
  assert.ok(r.entries.some((e) => e.workerId === 'w2'), 'w2 computed slices');
});

test('shards – resuming with a variable frozen since the checkpoint: its old momentum is not sent to the shards; the job completes', { timeout: 60_000 }, async () => {
  const outDir = tempDir();
  await runJob(job(0, { iterations: 10, outDir, checkpointEvery: 10 }), 1);
  const frozen = job(2, { outDir });
  frozen.optimizer.layers = [{ match: 'conv2/*', lrMult: 0, decayMult: 1, freezeStats: false }, ...frozen.optimizer.layers];
  const resumed = await runJob(frozen, 1, undefined, { resume: true });
  assert.equal(resumed.curve[resumed.curve.length - 1].iteration, 20);
});

test('shards – the coordinator SIGKILLed mid-job and restarted with --resume: the shard and the workers rejoin by themselves; bit-identical', { timeout: 120_000 }, async () => {
  const expected = await reference();
  const dir = tempDir();
  const port = await freePort();
  const cfg = job(2, { outDir: join(dir, 'run'), checkpointEvery: 5 });
  const file = join(dir, 'job.yaml');
  writeFileSync(file, stringify({ ...cfg, cluster: { ...cfg.cluster, workers: 2, host: '127.0.0.1', port }, metrics: { ...cfg.metrics, port: null } }));
  const first = spawnCoordinator(file, false);
  const others = [spawnShard(port), spawnShard(port), spawnWorker(port, 'w0'), spawnWorker(port, 'w1')];
  let log = '';
  first.stderr!.on('data', (d) => { log += d; });
  for (let i = 0; i < 600 && !/checkpoint iteration=10 /.test(log); i++) await sleep(50);
  first.kill('SIGKILL');
  assert.equal(await exitOf(first), null, 'killed mid-job, not after it');
  const second = spawnCoordinator(file, true);
  let resumed = '';
  second.stderr!.on('data', (d) => { resumed += d; });
  assert.equal(await exitOf(second), 0, 'the restarted coordinator finished the job');
  assert.match(resumed, /resuming checkpoint=\S+ iteration=1[05]\b/);
  for (const p of others) assert.equal(await exitOf(p), 0, 'each shard and worker was told the job finished');
  const model = await loadModel(join(dir, 'run', 'model', 'model.json'));
  assert.equal(firstDifference(await readParams(model), expected), null, 'bit-identical to the undisturbed run');
  model.dispose();
});
