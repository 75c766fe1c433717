// shard-set – the coordinator's view of its parameter shards (coordinator/shard-set.ts)
// without processes: a fake channel per shard that records commands and
// answers Expect at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ShardSet, ShardPeer } from '../coordinator/shard-set';
import { ShardLost } from '../core/errors';
import { parseJob } from '../core/job/config';
import { resolveMultipliers } from '../core/train/lr-rules';
import { EventBus } from '../core/observe/events';
import { Sgd } from '../core/train/optimizer';
import { ShardCommand } from '../proto/gen/tunefleet/v1/tunefleet';
import { FakeClock } from './fake-clock';

const SPECS = [{ name: 'a', shape: [10] }, { name: 'b', shape: [6] }];

/** Shards that answer Expect and Ping at once, unless `silent` holds their slot (a stalled shard: its stream stays open, nothing comes back). */
function setup(shards: number, clock: FakeClock = new FakeClock(), silent = new Set<number>()) {
  const cfg = parseJob({ cluster: { shards, partitionMiB: 16 / 2 ** 20, shardDeadlineSeconds: 30 } }); // 16-byte partitions: 4 elements
  const reports: { w: string; step: number; index: number }[] = [];
  const lost: string[] = [];
  const shardsLost: ShardLost[] = [];
  const failed: Error[] = [];
  const set = new ShardSet(
    { cfg, specs: SPECS, trainable: ['a', 'b'], multipliers: resolveMultipliers(['a', 'b'], []), params: new Map(SPECS.map((s) => [s.name, new Float32Array(s.shape[0])])), sgd: new Sgd(cfg.optimizer, new Map()) },
    { uploaded: (w, step, _v, index) => reports.push({ w, step, index }), workerLost: (w) => lost.push(w), shardLost: (err) => shardsLost.push(err) },
    new EventBus('t'), () => 0, clock,
  );
  const sent: ShardCommand[][] = [];
  const peers: ShardPeer[] = [];
  for (let i = 0; i < shards; i++) {
    const inbox: ShardCommand[] = [];
    sent.push(inbox);
    const peer: ShardPeer = set.join({ dataPort: 7072 + i, dataHost: '' }, `10.0.0.${i + 1}`, {
      write: async (cmd) => {
        inbox.push(cmd);
        if (silent.has(i)) return;
        if (cmd.kind?.$case === 'expect') set.onMessage(peer, { kind: { $case: 'expecting', value: { workerId: cmd.kind.value.workerId } } });
        if (cmd.kind?.$case === 'ping') set.onMessage(peer, { kind: { $case: 'pong', value: cmd.kind.value } });
      },
      end: () => {},
      fail: (err) => failed.push(err),
    });
    peers.push(peer);
  }
  return { set, peers, sent, reports, lost, shardsLost, failed };
}

const settle = () => new Promise((r) => setImmediate(r));
const uploaded = (w: string, step: number, session: number) => ({ kind: { $case: 'uploaded' as const, value: { workerId: w, step, version: step, squares: 1, session } } });

test('shard-set – each shard is loaded with its pieces and Hold; a worker gets one ticket per shard at the address its shard came from', async () => {
  const { set, sent } = setup(2);
  await settle();
  for (const inbox of sent) assert.deepEqual([inbox[0].kind?.$case, inbox[inbox.length - 1].kind?.$case], ['welcome', 'hold']);
  const endpoints = await set.expect('w0', () => true);
  assert.deepEqual(endpoints.map((e) => `${e.host}:${e.port}`), ['10.0.0.1:7072', '10.0.0.2:7073']);
  assert.ok(endpoints.every((e) => e.ticket.length === 32) && Buffer.compare(Buffer.from(endpoints[0].ticket), Buffer.from(endpoints[1].ticket)) !== 0);
});

test('shard-set – an upload counts once every gradient shard has reported it; a late report about an earlier session of the same worker id is ignored', async () => {
  const { set, peers, reports } = setup(2);
  await set.expect('w0', () => true);
  set.onMessage(peers[0], uploaded('w0', 3, 1));
  assert.equal(set.uploadsReady('w0'), 0, 'one shard of two');
  set.onMessage(peers[1], uploaded('w0', 3, 1));
  assert.equal(set.uploadsReady('w0'), 1);
  assert.equal(set.takeUpload('w0', [1, 1]), 2, 'Σ g² over both shards');
  // w0 is dropped and joins again: session 2. Shard 0 reports session 1's next upload late.
  set.forget('w0');
  await set.expect('w0', () => true);
  set.onMessage(peers[0], uploaded('w0', 4, 1));
  set.onMessage(peers[0], { kind: { $case: 'workerLost', value: { workerId: 'w0', reason: '', details: 'closed', session: 1 } } });
  assert.equal(set.uploadsReady('w0'), 0);
  assert.deepEqual(reports.map((r) => r.step), [3, 3], 'the stale report never reached the step');
  set.onMessage(peers[0], uploaded('w0', 5, 2));
  assert.deepEqual(reports[2], { w: 'w0', step: 5, index: 0 }, 'the new session\'s first upload is its first');
});

test('shard-set – a shard lost: its slot is free, requests in flight fail with ShardLost, ready() waits for a new shard', async () => {
  const { set, peers } = setup(2);
  const averaging = set.average(7);
  set.left(peers[1], 'stream ended');
  await assert.rejects(averaging, ShardLost);
  assert.equal(set.live, 1);
  let ready = false;
  void set.ready().then(() => { ready = true; });
  await settle();
  assert.equal(ready, false);
  set.join({ dataPort: 9000, dataHost: 'shard-b' }, '10.0.0.9', { write: async () => {}, end: () => {}, fail: () => {} });
  await settle();
  assert.equal(ready, true, 'the slot is taken again');
});

test('shard-set – a shard that stops answering is lost within cluster.shardDeadlineSeconds: Pings every third of it, the stream ended, nobody else blamed', async () => {
  const clock = new FakeClock();
  const silent = new Set<number>();
  const { sent, shardsLost, failed, lost } = setup(2, clock, silent);
  await settle();
  clock.advance(10_000); // first Pings, answered
  await settle();
  assert.ok(sent.every((inbox) => inbox.some((c) => c.kind?.$case === 'ping')), 'both shards are pinged every 10 s');
  assert.equal(shardsLost.length, 0, 'answering shards stay');
  silent.add(1); // shard 1 stalls: SIGSTOP, a hung call, a partition that keeps TCP open
  for (let t = 0; t < 40; t++) { clock.advance(1000); await settle(); }
  assert.equal(shardsLost.length, 1, 'lost once');
  assert.match(shardsLost[0].message, /parameter shard 1 .*no answer to a Ping within 30 s \(cluster.shardDeadlineSeconds\)/);
  assert.equal(failed.length, 1, 'its stream is ended, so it joins afresh');
  assert.deepEqual(lost, [], 'no worker is blamed');
});

test('shard-set – an Average that gets no answer loses that shard; an Averaged with a non-finite Σ g² is the shard\'s fault, not divergence', async () => {
  for (const answer of ['none', 'nan'] as const) {
    const clock = new FakeClock();
    const { set, peers, shardsLost } = setup(2, clock, new Set());
    await settle();
    const averaged = set.average(7);
    averaged.catch(() => {});
    await settle();
    set.onMessage(peers[0], { kind: { $case: 'averaged', value: { step: 7, squares: 2 } } });
    if (answer === 'nan') set.onMessage(peers[1], { kind: { $case: 'averaged', value: { step: 7, squares: NaN } } });
    else clock.advance(30_000);
    await assert.rejects(averaged, ShardLost, answer);
    assert.equal(shardsLost.length, 1, answer);
    assert.match(shardsLost[0].message, answer === 'nan' ? /shard 1 .*Σ g² = NaN/ : /shard 1 .*no answer to Average for step 7/);
  }
});

test('shard-set – a shard whose Σ g² for an upload is not what the worker sent it (NaN, negative, another number) is lost; the worker is not blamed; NaN on both sides is the worker\'s gradient', async () => {
  for (const lie of [NaN, -1, 1.5]) {
    const { set, peers, shardsLost, lost } = setup(2);
    await set.expect('w0', () => true);
    set.onMessage(peers[0], uploaded('w0', 3, 1));
    set.onMessage(peers[1], { kind: { $case: 'uploaded', value: { workerId: 'w0', step: 3, version: 3, squares: lie, session: 1 } } });
    assert.equal(set.takeUpload('w0', [1, 1]), null, `${lie}: the claim fails`);
    assert.equal(shardsLost.length, 1, `${lie}`);
    assert.match(shardsLost[0].message, new RegExp(`shard 1 .*Σ g² = ${lie} for worker w0's upload, which the worker sent with Σ g² = 1`));
    assert.deepEqual(lost, [], 'w0 is not blamed');
  }
  const { set, peers, shardsLost } = setup(2);
  await set.expect('w0', () => true);
  set.onMessage(peers[0], uploaded('w0', 3, 1));
  set.onMessage(peers[1], { kind: { $case: 'uploaded', value: { workerId: 'w0', step: 3, version: 3, squares: NaN, session: 1 } } });
  assert.ok(Number.isNaN(set.takeUpload('w0', [1, NaN])), 'the worker says so itself: the step judges its gradient');
  assert.equal(shardsLost.length, 0);
});

test('shard-set – an Averaged above the bound its folded uploads allow (examples-weighted mean of their Σ g²) loses that shard; at the bound it is taken', async () => {
  const { set, peers, shardsLost } = setup(2);
  await set.expect('w0', () => true);
  await set.expect('w1', () => true);
  set.fold('w0', 4, [1, 4], 2);
  set.fold('w1', 12, [1, 0], 1); // shard 1: (4 × 4 + 12 × 0) / 16 = 1
  const averaged = set.average(7);
  averaged.catch(() => {});
  await settle();
  set.onMessage(peers[0], { kind: { $case: 'averaged', value: { step: 7, squares: 1 } } });
  set.onMessage(peers[1], { kind: { $case: 'averaged', value: { step: 7, squares: 1.01 } } });
  await assert.rejects(averaged, /parameter shard 1 was lost: .*Σ g² = 1.01 for the mean of uploads that allow at most 1\.0000/);
  assert.equal(shardsLost.length, 1);
  const next = setup(1);
  await next.set.expect('w0', () => true);
  next.set.fold('w0', 4, [2], 0.5);
  const ok = next.set.average(8);
  await settle();
  next.set.onMessage(next.peers[0], { kind: { $case: 'averaged', value: { step: 8, squares: 2 } } });
  assert.deepEqual(await ok, { squares: 2, loss: 0.5 }, 'and the step\'s loss, weighted by examples');
});

test('shard-set – status lists every slot: a live shard with its address, the bytes it holds and when it was last heard (its Join counts); a free slot', async () => {
  const clock = new FakeClock();
  const { set, peers } = setup(2, clock);
  clock.advance(4000);
  set.onMessage(peers[0], { kind: { $case: 'pong', value: { seq: 99 } } });
  clock.advance(1500);
  set.left(peers[1], 'stream ended');
  assert.deepEqual(set.status(), [
    { slot: 0, live: true, address: '10.0.0.1:7072', parameterBytes: 32, secondsSinceHeard: 1.5 },
    { slot: 1, live: false, address: '', parameterBytes: 32, secondsSinceHeard: 0 },
  ]);
});

test('shard-set – probe() is true once every shard answers a Ping, false when one is lost first', async () => {
  const clock = new FakeClock();
  const silent = new Set<number>();
  const { set } = setup(2, clock, silent);
  await settle();
  assert.equal(await set.probe(), true);
  silent.add(0);
  const probed = set.probe();
  await settle();
  clock.advance(30_000);
  assert.equal(await probed, false);
});

test('shard-set – a session that ends while its Welcome waits for the shards leaves no Expect on them; a Forget ends a pending one', async () => {
  const { set, sent } = setup(1);
  await settle();
  await assert.rejects(set.expect('gone', () => false), /ended while it waited/);
  await settle();
  assert.ok(!sent[0].some((c) => c.kind?.$case === 'expect'), 'no Expect for a dead session');
  const silent = setup(1, new FakeClock(), new Set([0]));
  const pending = silent.set.expect('w1', () => true);
  await settle();
  silent.set.forget('w1');
  await assert.rejects(pending, /w1's session ended/);
});

test('shard-set – a shard two workers report stalled (ShardTrouble) within cluster.shardDeadlineSeconds is lost; one report alone is not enough, unless it is the only live worker', async () => {
  const clock = new FakeClock();
  const { set, shardsLost, failed } = setup(2, clock);
  set.troubled(1, 'w0', 'the peer took none of the bytes', 2);
  assert.equal(shardsLost.length, 0, 'one of two workers: its own network may be the fault');
  clock.advance(31_000);
  set.troubled(1, 'w1', 'the peer took none of the bytes', 2);
  assert.equal(shardsLost.length, 0, 'the first report is too old to count');
  set.troubled(1, 'w0', 'the peer took none of the bytes', 2);
  assert.equal(shardsLost.length, 1);
  assert.match(shardsLost[0].message, /parameter shard 1 .*its connections to workers w1, w0 stalled \(the peer took none of the bytes\)/);
  assert.equal(failed.length, 1, 'its stream is ended');
  const alone = setup(1);
  alone.set.troubled(0, 'w0', 'sent no bytes', 1);
  assert.equal(alone.shardsLost.length, 1, 'the only live worker is believed');
  assert.throws(() => alone.set.troubled(5, 'w0', 'x', 1), /ShardTrouble for shard 5; the job has 1/);
});
