// The pure policies behind elasticity and fault tolerance: the step deadline,
// reconnect backoff, the global-batch policy and the ledger's retention.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { BatchScaler } from '../core/train/batch-policy';
import { Ledger } from '../core/train/ledger';
import { Deadlines, deadlineSeconds, Slice } from '../coordinator/slice-deadline';
import { backoffSeconds, isRetryable } from '../worker/reconnect';

const adaptive = { seconds: null, factor: 5, minSeconds: 2, window: 4, joinSeconds: 60 };

const step = (examples = 32, joining = false): Slice => ({ kind: 'step', examples, joining });
const evaluation = (examples: number, joining = false): Slice => ({ kind: 'evaluation', examples, joining });
const times = (...seconds: number[]) => seconds.map((s) => ({ seconds: s, examples: 32 }));

test('deadline – adaptive: factor × median time per example × the slice, floored; or fixed', () => {
  assert.equal(deadlineSeconds(adaptive, [], step()), 2, 'no history: the floor');
  assert.equal(deadlineSeconds(adaptive, times(0.1, 0.2, 9), step()), 2, 'median 0.2 × 5 = 1 is under the floor');
  assert.equal(deadlineSeconds({ ...adaptive, minSeconds: 0.1 }, times(0.1, 0.2, 9), step()), 1, 'the median: one slow outlier does not stretch it');
  assert.equal(deadlineSeconds(adaptive, times(1, 2, 3, 4), step()), 5 * 2.5);
  assert.equal(deadlineSeconds(adaptive, times(1, 2, 3, 4), step(64)), 5 * 5, 'a slice twice as large (a worker left) gets twice as long');
  assert.equal(deadlineSeconds({ ...adaptive, seconds: 7 }, times(100), step(64)), 7, 'fixed');
  assert.equal(deadlineSeconds(adaptive, times(100), step(32, true)), 60, 'joining: joinSeconds');
});

test('deadline – an evaluation slice: the same rule over its size; a fixed deadline scaled from the median training slice', () => {
  const recent = [{ seconds: 1, examples: 32 }, { seconds: 2, examples: 32 }, { seconds: 3, examples: 16 }];
  assert.equal(deadlineSeconds(adaptive, recent, evaluation(2500)), 5 * (2 / 32) * 2500);
  assert.equal(deadlineSeconds(adaptive, recent, evaluation(4)), 2, 'the floor');
  assert.equal(deadlineSeconds({ ...adaptive, seconds: 4 }, recent, evaluation(320)), 40);
  assert.equal(deadlineSeconds({ ...adaptive, seconds: 4 }, recent, evaluation(8)), 4, "never shorter than a step's");
  assert.equal(deadlineSeconds(adaptive, [], evaluation(2500)), 2, 'no history yet: the floor');
  assert.equal(deadlineSeconds(adaptive, recent, evaluation(2500, true)), 60, 'joining: joinSeconds');
});

test('deadline – a worker that does not answer in time is reported; answering clears its clock; a first slice gets joinSeconds', async () => {
  const expired: string[] = [];
  const d = new Deadlines({ seconds: 0.05, factor: 1, minSeconds: 0.01, window: 4, joinSeconds: 0.3 }, (w) => expired.push(w));
  d.arm('slow', step());
  d.arm('fast', step());
  d.arm('joining', step(32, true));
  d.arm('joined', step(32, true));
  d.answered('fast');
  await new Promise((r) => setTimeout(r, 120));
  assert.deepEqual(expired, ['slow']);
  d.answered('joined', step()); // its next slice has the step deadline
  await new Promise((r) => setTimeout(r, 120));
  assert.deepEqual(expired, ['slow', 'joined']);
  await new Promise((r) => setTimeout(r, 150));
  assert.deepEqual(expired, ['slow', 'joined', 'joining']);
  d.clearAll();
});

test('deadline – a joining slice\'s time counts, so a slow first step stretches the next deadline beyond the floor', async () => {
  const expired: string[] = [];
  const d = new Deadlines({ seconds: null, factor: 5, minSeconds: 0.01, window: 4, joinSeconds: 1 }, (w) => expired.push(w));
  d.arm('big', step(32, true));
  await new Promise((r) => setTimeout(r, 60));
  d.answered('big', step()); // next deadline: 5 × ~0.06 s ≈ 0.3 s, not the 0.01 s floor
  await new Promise((r) => setTimeout(r, 150));
  assert.deepEqual(expired, []);
  await new Promise((r) => setTimeout(r, 400));
  assert.deepEqual(expired, ['big']);
});

test('deadline – an evaluation\'s time is not recorded: a fast forward pass does not tighten the next step deadline', async () => {
  const expired: [string, string][] = [];
  const d = new Deadlines({ seconds: null, factor: 2, minSeconds: 0.01, window: 4, joinSeconds: 1 }, (w, _s, kind) => expired.push([w, kind]));
  d.arm('w', step(10, true));
  await new Promise((r) => setTimeout(r, 100));
  d.answered('w', evaluation(10)); // step took ~0.1 s: evaluation deadline 2 × 0.1 = ~0.2 s
  d.answered('w', step(10)); // answered at once; the next step deadline is still ~0.2 s
  await new Promise((r) => setTimeout(r, 120));
  assert.deepEqual(expired, []);
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(expired, [['w', 'step']]);
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
