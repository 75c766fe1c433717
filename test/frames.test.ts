// frames – the data plane's framing without servers: headers round-trip and
// refuse what they cannot hold; a FrameReader cuts any split of a byte stream
// into the same frames, payloads landing in their targets; and over a real
// loopback socket (net's onread) multi-MiB frames land in place with no copy
// on our side. Tickets are single-use and bound to a live session.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AddressInfo, connect, createServer } from 'node:net';
import { WireInvalid } from '../core/errors';
import { rng } from '../core/util/rng';
import { FrameWriter, onreadInto, readFrames } from '../core/wire/data-socket';
import { decodeHeader, encodeHeader, FrameHeader, FrameKind, FrameReader, HEADER_BYTES, MAX_FRAME_BYTES } from '../core/wire/frames';
import { Tickets } from '../core/wire/data-plane';
import { WorkerSession } from '../coordinator/session';
import { DType } from '../proto/gen/tunefleet/v1/tunefleet';

const header: FrameHeader = { kind: FrameKind.GRADIENT, dtype: DType.FLOAT16, tensor: 7, step: 2 ** 40 + 3, version: 12, offset: 2 ** 33, length: 4096 };

test('frames – a header round-trips through its 40 bytes; unknown kinds, huge lengths and numbers past 2^53 are refused by reason', () => {
  const bytes = encodeHeader(header);
  assert.equal(bytes.length, HEADER_BYTES);
  assert.deepEqual(decodeHeader(bytes), header);
  const reason = (b: Buffer) => { try { decodeHeader(b); return 'accepted'; } catch (err) { return (err as WireInvalid).reason; } };
  const kind = Buffer.from(bytes); kind[0] = 9;
  assert.equal(reason(kind), 'undecodable');
  assert.equal(reason(encodeHeader({ ...header, length: MAX_FRAME_BYTES + 1 })), 'oversized');
  const far = Buffer.from(bytes); far.writeBigUInt64LE(2n ** 60n, 24);
  assert.equal(reason(far), 'undecodable');
});

/** Frames of random kinds and sizes, each payload a distinct pattern, as one byte stream. */
function stream(n: number, random: () => number): { frames: { h: FrameHeader; payload: Uint8Array }[]; bytes: Buffer } {
  const frames = Array.from({ length: n }, (_, i) => {
    const length = [0, 1, 3, 40, 1000][Math.floor(random() * 5)];
    const payload = Uint8Array.from({ length }, (_, k) => (i * 31 + k) & 255);
    return { h: { ...header, tensor: i, length }, payload };
  });
  return { frames, bytes: Buffer.concat(frames.flatMap((f) => [encodeHeader(f.h), f.payload])) };
}

test('frames – any split of the stream gives the same frames, each payload in the buffer its handler chose', () => {
  const random = rng(3);
  const { frames, bytes } = stream(60, random);
  for (let trial = 0; trial < 20; trial++) {
    const got: { h: FrameHeader; payload: Uint8Array }[] = [];
    const reader = new FrameReader({
      target: (h) => { got.push({ h, payload: new Uint8Array(h.length) }); return got[got.length - 1].payload; },
      landed: (h) => assert.deepEqual(h, got[got.length - 1].h),
    });
    for (let at = 0; at < bytes.length;) {
      const n = 1 + Math.floor(random() * (trial < 10 ? 7 : 3000));
      reader.feed(bytes.subarray(at, at + n));
      at += n;
    }
    assert.ok(reader.idle);
    assert.deepEqual(got, frames);
  }
});

test('frames – a handler that refuses a frame stops the reader with its error; a stream cut mid-frame is not idle', () => {
  const reader = new FrameReader({ target: () => { throw new WireInvalid('no', 'unexpected'); }, landed: () => {} });
  assert.throws(() => reader.feed(encodeHeader(header)), /no/);
  const partial = new FrameReader({ target: (h) => new Uint8Array(h.length), landed: () => {} });
  partial.feed(encodeHeader(header).subarray(0, 10));
  assert.equal(partial.idle, false);
});

test('frames – over loopback, 24 MiB of frames land straight in their destination (onread on both an accepted and a connecting socket)', async () => {
  const MiB = 2 ** 20;
  const source = new Float32Array(6 * MiB).map((_, i) => i);
  const bytes = new Uint8Array(source.buffer);
  const dest = new Float32Array(source.length);
  const destBytes = new Uint8Array(dest.buffer);
  let landed = 0;
  const done = new Promise<void>((resolve, reject) => {
    const server = createServer({ pauseOnConnect: true }, (accepted) => {
      const reader = new FrameReader({
        target: (h) => destBytes.subarray(h.offset, h.offset + h.length), // the bytes' final place: nothing to copy afterwards
        landed: (h) => { landed += h.length; if (landed === bytes.length) { server.close(); resolve(); } },
      });
      readFrames(accepted, reader, reject);
    });
    server.listen(0, '127.0.0.1', async () => {
      const echo = new FrameReader({ target: (h) => new Uint8Array(h.length), landed: () => {} });
      const socket = connect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', onread: onreadInto(echo, reject) });
      await new Promise((r) => socket.once('connect', r));
      const writer = new FrameWriter(socket);
      for (let offset = 0; offset < bytes.length; offset += 8 * MiB) {
        await writer.send({ kind: FrameKind.GRADIENT, dtype: DType.FLOAT32, offset }, bytes.subarray(offset, offset + 8 * MiB));
      }
      socket.end();
    });
  });
  await done;
  assert.deepEqual(dest, source);
});

test('frames – a ticket opens its own live session once; a spent, unknown or forgotten one opens nothing', () => {
  const session = (alive = true) => Object.assign(new WorkerSession('w', 'b', { write: async () => {}, end: () => {}, fail: () => {} }, [], [DType.FLOAT32], { train: 1, val: 1 }, true), { alive });
  const tickets = new Tickets();
  const a = session();
  const t = tickets.issue(a);
  assert.equal(t.length, 32);
  assert.notDeepEqual(tickets.issue(session()), t, 'random, not derived from the session');
  assert.equal(tickets.redeem(new Uint8Array(32)), null);
  assert.equal(tickets.redeem(t), a);
  assert.equal(tickets.redeem(t), null, 'single use');
  const dead = session();
  const d = tickets.issue(dead);
  dead.alive = false;
  assert.equal(tickets.redeem(d), null, 'its session has ended');
  const gone = session();
  const g = tickets.issue(gone);
  tickets.forget(gone);
  assert.equal(tickets.redeem(g), null);
});
