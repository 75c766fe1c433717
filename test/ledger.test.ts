// ledger – which examples each step used; what it keeps and how it resumes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ledger } from '../core/train/ledger';

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
  assert.deepEqual([l.report(0).kept, l.report(0).complete], [false, false], 'not kept: a monitor can tell it from incomplete');
  assert.deepEqual([l.report(1).kept, l.report(2).kept, l.report(2).complete], [true, true, false], 'the previous and current epochs are kept; the current is not complete yet');
  const resumed = new Ledger(4, JSON.parse(JSON.stringify(l.snapshot())));
  assert.deepEqual(resumed.report(1), l.report(1));
  assert.equal(resumed.report(1).complete, true);
});
