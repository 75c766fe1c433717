// server – the coordinator's gRPC edge against outside clients, over real
// gRPC on loopback (with the fake job of fleet-fakes.ts behind it): sessions
// that never join, half-close or send oversized ids end with a status and
// are counted; a flood of join-and-leave sessions leaves nothing behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { peerHost, startServer } from '../coordinator/server';
import { CoordinatorClient, ShardMessage, ShardsClient, WorkerMessage } from '../proto/gen/tunefleet/v1/tunefleet';
import { FakeClock } from './fake-clock';
import { fakeCluster } from './fleet-fakes';
import { auth, statusOf } from './grpc-clients';

async function serve(joinTimeoutSeconds = 0.3) {
  const cluster = fakeCluster(new FakeClock());
  const { server, port } = await startServer(cluster, { host: '127.0.0.1', port: 0, token: null, cert: null, key: null, clientCa: null, joinTimeoutSeconds, keepaliveSeconds: 30 });
  const client = new CoordinatorClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const close = () => { client.close(); server.forceShutdown(); };
  return { cluster, client, close };
}

const join = (workerId: string): WorkerMessage => ({ kind: { $case: 'join', value: { workerId, backend: 'test', device: 'test', capacity: 1 } } });

function rejected(text: string, reason: string): number {
  const m = text.match(new RegExp(`^tunefleet_rejected_messages_total\\{[^}]*reason="${reason}"[^}]*\\} (\\d+)`, 'm'));
  return m ? Number(m[1]) : 0;
}

test('server – a session that sends nothing is closed at the join timeout with a status, and counted', async () => {
  const { cluster, client, close } = await serve(0.3);
  const started = Date.now();
  const status = await statusOf(client.session(auth(null)));
  assert.equal(status.code, grpc.status.INVALID_ARGUMENT);
  assert.match(status.details, /^no-join: no Join within 0.3 s$/);
  assert.ok(Date.now() - started < 3000);
  assert.equal(rejected(await cluster.metrics.text(), 'no-join'), 1);
  close();
});

test('server – a half-closed stream gets a status: refused before Join; after Join the worker leaves', async () => {
  const { cluster, client, close } = await serve(30);
  const early = client.session(auth(null));
  const earlyStatus = statusOf(early);
  early.end();
  assert.equal((await earlyStatus).code, grpc.status.INVALID_ARGUMENT);
  const joined = client.session(auth(null));
  const joinedStatus = statusOf(joined);
  joined.write(join('w1'));
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(cluster.live(), ['w1']);
  joined.end();
  assert.equal((await joinedStatus).code, grpc.status.OK);
  assert.deepEqual(cluster.live(), []);
  close();
});

test('server – Join strings are bounded: a 1 MiB worker id is refused (bad-join), not kept; a refused session stays refused', async () => {
  const { cluster, client, close } = await serve(30);
  for (const id of ['x'.repeat(1 << 20), 'has space', 'ok-id'.padEnd(129, 'x')]) {
    const call = client.session(auth(null));
    const status = statusOf(call);
    call.write(join(id));
    const s = await status;
    assert.equal(s.code, grpc.status.INVALID_ARGUMENT, id.slice(0, 20));
    assert.match(s.details, /^bad-join: worker id of \d+ characters: at most 128/);
  }
  // A session refused before Join stays refused: a Join after it is not let in.
  const late = client.session(auth(null));
  const lateStatus = statusOf(late);
  late.write({ kind: { $case: 'stepDone', value: { step: 0, version: 0, examples: 1, loss: 0, computeSeconds: 0, shardSquares: [] } } });
  late.write(join('sneaky'));
  assert.equal((await lateStatus).code, grpc.status.INVALID_ARGUMENT);
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(cluster.live(), []);
  const text = await cluster.metrics.text();
  assert.equal(rejected(text, 'bad-join'), 3);
  assert.ok(text.length < 100_000, 'no megabyte label in the metrics');
  close();
});

test('server – 1,000 join-and-cancel sessions leave no session, no metric series behind; automatic ids are unguessable', async () => {
  const { cluster, client, close } = await serve(30);
  const ids = new Set<string>();
  for (let batch = 0; batch < 20; batch++) {
    await Promise.all(Array.from({ length: 50 }, () => new Promise<void>((resolve) => {
      const call = client.session(auth(null));
      call.on('data', (m) => {
        if (m.kind?.$case !== 'welcome') return;
        ids.add(m.kind.value.workerId);
        call.cancel();
      });
      call.on('error', () => resolve());
      call.write(join(''));
    })));
  }
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(ids.size, 1000, 'every automatic id distinct');
  for (const id of ids) assert.match(id, /^worker-[0-9a-f]{12}$/);
  assert.equal(cluster.sessions.size, 0, 'no session kept');
  assert.doesNotMatch(await cluster.metrics.text(), /worker="worker-/, 'no per-worker series kept');
  close();
});

test('server – peerHost: the host part of the peer names grpc-js gives', () => {
  assert.equal(peerHost('10.77.0.3:41234'), '10.77.0.3');
  assert.equal(peerHost('ipv4:10.77.0.3:41234'), '10.77.0.3');
  assert.equal(peerHost('[::1]:41234'), '::1');
  assert.equal(peerHost('ipv6:[fd00::5]:7'), 'fd00::5');
  assert.equal(peerHost('[::ffff:10.1.2.3]:41234'), '10.1.2.3');
});

test('server – the Shards service: refused without shards in the job, without ShardJoin first, with a bad data port, past cluster.shards', async () => {
  const shardJoin = (dataPort: number): ShardMessage => ({ kind: { $case: 'join', value: { dataPort, dataHost: '' } } });
  const open = async (shards: number) => {
    const cluster = fakeCluster(new FakeClock(), 8, { cluster: { shards } });
    const { server, port } = await startServer(cluster, { host: '127.0.0.1', port: 0, token: null, cert: null, key: null, clientCa: null, joinTimeoutSeconds: 5, keepaliveSeconds: 30 });
    return { cluster, client: new ShardsClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure()), close: () => server.forceShutdown() };
  };
  const none = await open(0);
  let call = none.client.session(auth(null));
  call.write(shardJoin(7072));
  assert.match((await statusOf(call)).details, /without parameter shards/);
  none.close();

  const one = await open(1);
  call = one.client.session(auth(null));
  call.write({ kind: { $case: 'averaged', value: { step: 0, squares: 0 } } });
  assert.equal((await statusOf(call)).code, grpc.status.INVALID_ARGUMENT, 'anything before ShardJoin');
  call = one.client.session(auth(null));
  call.write(shardJoin(0));
  assert.match((await statusOf(call)).details, /data port must be 1-65535/);
  call = one.client.session(auth(null));
  call.write({ kind: { $case: 'join', value: { dataPort: 7072, dataHost: 'a host; rm -rf' } } });
  assert.match((await statusOf(call)).details, /^bad-join: a shard's data host/);
  const first = one.client.session(auth(null));
  const welcomed = new Promise((resolve) => first.once('data', resolve));
  first.write(shardJoin(7072));
  assert.ok(await welcomed, 'the first shard takes the slot and is welcomed');
  assert.equal(one.cluster.shards!.live, 1);
  call = one.client.session(auth(null));
  call.write(shardJoin(7073));
  const second = await statusOf(call);
  assert.equal(second.code, grpc.status.FAILED_PRECONDITION);
  assert.match(second.details, /already has its 1 shards/);
  first.on('error', () => {}); // cancelling is how this shard leaves
  first.cancel();
  one.close();
});
