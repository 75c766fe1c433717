// The pure policies behind elasticity and fault tolerance: the step deadline,
// reconnect backoff, the global-batch policy and the ledger's retention.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { BatchScaler } from '../core/batch-policy';
import { Ledger } from '../core/ledger';
import { deadlineSeconds, StepDeadlines } from '../coordinator/deadline';
import { backoffSeconds, isRetryable } from '../worker/reconnect';

const adaptive = { seconds: null, factor: 5, minSeconds: 2, window: 4, joinSeconds: 60 };

test('deadline – adaptive: factor × median of recent slice times, floored; or fixed', () => {
  assert.equal(deadlineSeconds(adaptive, []), 2, 'no history: the floor');
  assert.equal(deadlineSeconds(adaptive, [0.1, 0.2, 9]), 2, 'median 0.2 × 5 = 1 is under the floor');
  assert.equal(deadlineSeconds({ ...adaptive, minSeconds: 0.1 }, [0.1, 0.2, 9]), 1, 'the median: one slow outlier does not stretch it');
  assert.equal(deadlineSeconds(adaptive, [1, 2, 3, 4]), 5 * 2.5);
  assert.equal(deadlineSeconds({ ...adaptive, seconds: 7 }, [100]), 7);
});

test('deadline – a worker that does not answer in time is reported; answering clears its clock; a first slice gets joinSeconds', async () => {
  const expired: string[] = [];
  const d = new StepDeadlines({ seconds: 0.05, factor: 1, minSeconds: 0.01, window: 4, joinSeconds: 0.3 }, (w) => expired.push(w));
  d.arm('slow', false);
  d.arm('fast', false);
  d.arm('joining', true);
  d.arm('joined', true);
  d.answered('fast', false);
  await new Promise((r) => setTimeout(r, 120));
  assert.deepEqual(expired, ['slow']);
  d.answered('joined', true); // its next slice has the step deadline
  await new Promise((r) => setTimeout(r, 120));
  assert.deepEqual(expired, ['slow', 'joined']);
  await new Promise((r) => setTimeout(r, 150));
  assert.deepEqual(expired, ['slow', 'joined', 'joining']);
  d.clearAll();
});

test('deadline – a joining slice\'s time counts, so a slow first step stretches the next deadline beyond the floor', async () => {
  const expired: string[] = [];
  const d = new StepDeadlines({ seconds: null, factor: 5, minSeconds: 0.01, window: 4, joinSeconds: 1 }, (w) => expired.push(w));
  d.arm('big', true);
  await new Promise((r) => setTimeout(r, 60));
  d.answered('big', true); // next deadline: 5 × ~0.06 s ≈ 0.3 s, not the 0.01 s floor
  await new Promise((r) => setTimeout(r, 150));
  assert.deepEqual(expired, []);
  await new Promise((r) => setTimeout(r, 400));
  assert.deepEqual(expired, ['big']);
});

test('reconnect – backoff doubles from 0.5 s to a 10 s cap with jitter; refusals are final', () => {
  const policy = { baseSeconds: 0.5, maxSeconds: 10 };
  assert.deepEqual([0, 1, 2, 3, 10].map((a) => backoffSeconds(policy, a, () => 0.999999).toFixed(2)), ['0.50', '1.00', '2.00', '4.00', '10.00']);
  assert.equal(backoffSeconds(policy, 1, () => 0), 0.5, 'jitter takes up to half off');
  for (const code of [grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.INVALID_ARGUMENT, grpc.status.CANCELLED]) assert.equal(isRetryable({ code }), true);
  for (const code of [grpc.status.UNAUTHENTICATED, grpc.status.PERMISSION_DENIED, grpc.status.FAILED_PRECONDITION]) assert.equal(isRetryable({ code }), false);
  assert.equal(isRetryable(new Error('stream closed')), true);
});

test('batch policy – global keeps batch and rate; per-worker scales both and ramps the rate', () => {
  const global = new BatchScaler({ policy: 'global', batchSize: 64, plannedWorkers: 2, warmup: 10 });
  assert.deepEqual(global.at(0, 5), { batchSize: 64, lrFactor: 1 });
  const s = new BatchScaler({ policy: 'per-worker', batchSize: 32, plannedWorkers: 2, warmup: 10 });
  assert.deepEqual(s.at(0, 2), { batchSize: 64, lrFactor: 1 });
  assert.deepEqual(s.at(100, 4), { batchSize: 128, lrFactor: 1 }, 'a change starts the ramp where the rate was');
  assert.deepEqual(s.at(105, 4), { batchSize: 128, lrFactor: 1.5 });
  assert.deepEqual(s.at(110, 4), { batchSize: 128, lrFactor: 2 });
  assert.deepEqual(s.at(112, 1), { batchSize: 32, lrFactor: 2 });
  assert.deepEqual(s.at(117, 1), { batchSize: 32, lrFactor: 2 - 1.5 * 0.5 });
  const now = new BatchScaler({ policy: 'per-worker', batchSize: 32, plannedWorkers: 2, warmup: 0 });
  assert.deepEqual(now.at(3, 1), { batchSize: 32, lrFactor: 0.5 });
});

test('ledger – keeps the current and previous epoch, and resumes from a snapshot', () => {
  const l = new Ledger(4);
  const ep = (e: number) => Uint32Array.of(e, e);
  l.record(0, 'a', Uint32Array.of(0, 1), ep(0));
  l.record(1, 'b', Uint32Array.of(2, 3), ep(0));
  l.record(2, 'a', Uint32Array.of(1, 0), ep(1));
  assert.equal(l.report(0).complete, true);
  l.record(3, 'a', Uint32Array.of(3, 2), ep(1));
  l.record(4, 'a', Uint32Array.of(2, 1), ep(2));
  assert.equal(l.report(0).examplesUsed, 0, 'epoch 0 dropped once epoch 2 began');
  const resumed = new Ledger(4, JSON.parse(JSON.stringify(l.snapshot())));
  assert.deepEqual(resumed.report(1), l.report(1));
  assert.equal(resumed.report(1).complete, true);
});
