// cluster – membership, with fake workers: strikes against ids, refusals,
// and what a gone session leaves behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WireInvalid, WorkerRefused } from '../core/errors';
import { fakeCluster, joinWorker } from './fleet-fakes';

test('cluster – three bad sessions refuse an id; strikes on an automatic id never touch the next automatic id', () => {
  const cluster = fakeCluster();
  for (let i = 0; i < 3; i++) cluster.drop(joinWorker(cluster, 'bad').id, new WireInvalid('x', 'shape'));
  assert.throws(() => joinWorker(cluster, 'bad'), WorkerRefused);
  const quiet = { write: async () => {}, end: () => {}, fail: () => {} };
  const auto = () => cluster.join({ workerId: '', backend: 'b', device: 'd', capacity: 1 }, quiet);
  const first = auto().id;
  for (let i = 0; i < 3; i++) cluster.drop(first, new WireInvalid('x', 'shape'));
  const next = auto().id;
  assert.notEqual(next, first);
  assert.match(next, /^worker-[0-9a-f]{12}$/);
});

test('cluster – struck ids are remembered up to a bound, oldest forgotten first', () => {
  const cluster = fakeCluster();
  for (let i = 0; i < 3; i++) cluster.drop(joinWorker(cluster, 'old').id, new WireInvalid('x', 'shape'));
  assert.throws(() => joinWorker(cluster, 'old'), WorkerRefused);
  for (let i = 0; i < 10_000; i++) cluster.drop(joinWorker(cluster, `flood-${i}`).id, new WireInvalid('x', 'shape'));
  assert.doesNotThrow(() => joinWorker(cluster, 'old'), 'forgotten after 10,000 newer struck ids');
  assert.equal(cluster.sessions.size, 1, 'only the live session is kept');
});
