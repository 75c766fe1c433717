// backpressure – the progress bounds every wait on a peer has (core/wire/backpressure.ts):
// a write to a peer that reads nothing, and a wait for bytes from a peer that sends nothing,
// fail after cluster.stallSeconds without progress; a slow peer that keeps moving is never cut.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { arriving, drained, writeWithBackpressure } from '../core/wire/backpressure';
import { DeadlineExceeded } from '../core/errors';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('backpressure – a write nobody reads fails with DeadlineExceeded after stallSeconds; one that is read slowly drains', async () => {
  const stuck = new PassThrough({ highWaterMark: 16 });
  stuck.write(Buffer.alloc(64));
  const started = Date.now();
  await assert.rejects(drained(stuck, 0.2, 'reject'), (err: Error) => err instanceof DeadlineExceeded && /took none of the bytes written to it for 0.2 s \(cluster.stallSeconds\)/.test(err.message));
  assert.ok(Date.now() - started >= 190, 'not before the bound');
  const slow = new PassThrough({ highWaterMark: 16 });
  for (let i = 0; i < 9; i++) slow.write(Buffer.alloc(8));
  const reading = (async () => { for (let i = 0; i < 12; i++) { await sleep(50); slow.read(8); } })();
  await writeWithBackpressure(slow, Buffer.alloc(8), 0.2); // about 500 ms in all, but never 200 ms without progress
  await reading;
});

test('backpressure – a wait for bytes fails once the byte count has not grown for stallSeconds; it resolves with what it waited for otherwise', async () => {
  let bytes = 0;
  const never = new Promise<void>(() => {});
  await assert.rejects(arriving(never, () => bytes, 0.2, "version 3's parameters"), /sent no bytes of version 3's parameters for 0.2 s \(cluster.stallSeconds\)/);
  const growing = setInterval(() => { bytes += 1; }, 50);
  const done = new Promise<string>((r) => setTimeout(() => r('landed'), 500));
  assert.equal(await arriving(done, () => bytes, 0.2, 'parameters'), 'landed', 'bytes kept coming: no stall');
  clearInterval(growing);
});
