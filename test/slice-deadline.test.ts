// slice-deadline – how long a worker may take for a slice, on a fake clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Deadlines, deadlineSeconds, Slice } from '../coordinator/slice-deadline';
import { FakeClock } from './fake-clock';

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

test('deadline – a worker that does not answer in time is reported; answering clears its clock; a first slice gets joinSeconds', () => {
  const clock = new FakeClock();
  const expired: string[] = [];
  const d = new Deadlines({ seconds: 5, factor: 1, minSeconds: 1, window: 4, joinSeconds: 30 }, (w) => expired.push(w), clock);
  d.arm('slow', step());
  d.arm('fast', step());
  d.arm('joining', step(32, true));
  d.arm('joined', step(32, true));
  d.answered('fast');
  clock.advance(4_999);
  assert.deepEqual(expired, [], 'not a millisecond early');
  clock.advance(1);
  assert.deepEqual(expired, ['slow']);
  d.answered('joined', step()); // its next slice has the step deadline, from now
  clock.advance(5_000);
  assert.deepEqual(expired, ['slow', 'joined']);
  clock.advance(20_000);
  assert.deepEqual(expired, ['slow', 'joined', 'joining']);
  assert.equal(clock.pending, 0);
});

test('deadline – a joining slice\'s time counts, so a slow first step stretches the next deadline beyond the floor', () => {
  const clock = new FakeClock();
  const expired: string[] = [];
  const d = new Deadlines({ seconds: null, factor: 5, minSeconds: 1, window: 4, joinSeconds: 100 }, (w) => expired.push(w), clock);
  d.arm('big', step(32, true));
  clock.advance(6_000);
  d.answered('big', step()); // next deadline: 5 × 6 s = 30 s, not the 1 s floor
  clock.advance(29_999);
  assert.deepEqual(expired, []);
  clock.advance(1);
  assert.deepEqual(expired, ['big']);
});

test('deadline – an evaluation\'s time is not recorded: a fast forward pass does not tighten the next step deadline', () => {
  const clock = new FakeClock();
  const expired: [string, string][] = [];
  const d = new Deadlines({ seconds: null, factor: 2, minSeconds: 1, window: 4, joinSeconds: 100 }, (w, _s, kind) => expired.push([w, kind]), clock);
  d.arm('w', step(10, true));
  clock.advance(10_000);
  d.answered('w', evaluation(10)); // the step took 10 s: evaluation deadline 2 × 10 s = 20 s
  d.answered('w', step(10)); // answered at once; the next step deadline is still 20 s
  clock.advance(19_999);
  assert.deepEqual(expired, []);
  clock.advance(1);
  assert.deepEqual(expired, [['w', 'step']]);
});

test('deadline – clear and clearAll stop the clocks', () => {
  const clock = new FakeClock();
  const expired: string[] = [];
  const d = new Deadlines({ seconds: 1, factor: 1, minSeconds: 1, window: 4, joinSeconds: 1 }, (w) => expired.push(w), clock);
  d.arm('a', step());
  d.arm('b', step());
  d.arm('c', step());
  d.clear('a');
  d.clearAll();
  clock.advance(10_000);
  assert.deepEqual(expired, []);
  assert.equal(clock.pending, 0);
});
