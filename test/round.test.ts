// round – the failure policy of a round of slices, as a state machine with no
// I/O: who gets which slice, what a lost worker's slices become, when the
// round is done, and that a throwing consumer strands nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Round, Task } from '../coordinator/round';

const task = (...indices: number[]): Task => ({ indices: Uint32Array.from(indices) });
const ids = (t: Task | undefined) => (t ? Array.from(t.indices) : undefined);

/** A round whose hand-outs and accepted results are recorded. */
function recorded(accept: (w: string, t: Task, r: string) => void = () => {}) {
  const sent: [string, number[]][] = [];
  const accepted: [string, number[], string][] = [];
  let done = false;
  const round = new Round<string>(
    async (w, t) => { sent.push([w, Array.from(t.indices)]); },
    (w, t, r) => { accept(w, t, r); accepted.push([w, Array.from(t.indices), r]); },
  );
  void round.done.then(() => { done = true; });
  const isDone = async () => { await new Promise((r) => setImmediate(r)); return done; };
  return { round, sent, accepted, isDone };
}

test('round – slice i goes to worker i; results are taken in the order sent; done after the last', async () => {
  const { round, sent, accepted, isDone } = recorded();
  round.start(['a', 'b'], [task(0, 1), task(2, 3)]);
  assert.deepEqual(sent, [['a', [0, 1]], ['b', [2, 3]]]);
  assert.equal(round.complete('c', 'x'), false, 'a worker without a slice');
  assert.equal(round.complete('b', 'rb'), true);
  assert.equal(await isDone(), false);
  assert.equal(round.complete('a', 'ra'), true);
  assert.equal(round.complete('a', 'again'), false, 'a second result for one slice');
  assert.deepEqual(accepted, [['b', [2, 3], 'rb'], ['a', [0, 1], 'ra']]);
  assert.equal(await isDone(), true);
});

test('round – no slices: done at once', async () => {
  const { round, isDone } = recorded();
  round.start(['a'], []);
  assert.equal(await isDone(), true);
});

test('round – a lost worker\'s slices go to the least-loaded live worker, oldest first', async () => {
  const { round, sent, isDone } = recorded();
  round.start(['a', 'b', 'c'], [task(0), task(1), task(2)]);
  round.workerLost('c', ['a', 'b']);
  assert.deepEqual(sent.at(-1), ['a', [2]], 'a and b tie: the first');
  round.workerLost('a', ['b']);
  assert.deepEqual(sent.slice(-2), [['b', [0]], ['b', [2]]], "a's queue, in order");
  assert.deepEqual(ids(round.outstanding('b')), [1]);
  for (const r of ['1', '0', '2']) round.complete('b', r);
  assert.equal(await isDone(), true);
});

test('round – with no live worker the slices wait for the next to join; a join otherwise takes nothing', async () => {
  const { round, sent, isDone } = recorded();
  round.start(['a', 'b'], [task(0), task(1)]);
  round.workerJoined('c');
  assert.equal(round.outstanding('c'), undefined, 'nothing orphaned: the joiner waits for the next round');
  round.workerLost('a', ['b']);
  round.workerLost('b', []);
  assert.equal(sent.length, 3, 'b got a\'s slice; then nobody was left');
  round.workerJoined('d');
  assert.deepEqual(sent.slice(-2), [['d', [1]], ['d', [0]]]);
  round.complete('d', 'x');
  round.complete('d', 'y');
  assert.equal(await isDone(), true);
});

test('round – a result from a worker already lost is refused, and its reassigned slice still counts once', async () => {
  const { round, accepted, isDone } = recorded();
  round.start(['a', 'b'], [task(0), task(1)]);
  round.workerLost('a', ['b']);
  assert.equal(round.complete('a', 'late'), false);
  round.complete('b', 'r1');
  round.complete('b', 'r0');
  assert.deepEqual(accepted.map(([w, i]) => [w, i]), [['b', [1]], ['b', [0]]]);
  assert.equal(await isDone(), true);
});

test('round – a consumer that throws strands nothing: the slice stays the worker\'s and is reassigned when it is lost', async () => {
  let fail = true;
  const { round, accepted, isDone } = recorded(() => { if (fail) throw new Error('boom'); });
  round.start(['a', 'b'], [task(0), task(1)]);
  assert.throws(() => round.complete('a', 'bad'), /boom/);
  assert.deepEqual(ids(round.outstanding('a')), [0], 'still outstanding');
  fail = false;
  round.workerLost('a', ['b']);
  round.complete('b', 'r1');
  round.complete('b', 'r0');
  assert.deepEqual(accepted.map(([w, i]) => [w, i]), [['b', [1]], ['b', [0]]]);
  assert.equal(await isDone(), true);
});
