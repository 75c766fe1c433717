// Writing without outrunning the peer, and without waiting on it forever.
// When a write reports a full buffer we wait for 'drain' — but a peer that
// stays connected and stops reading (SIGSTOPped, hung in a driver call, a
// path that drops packets while TCP stays open) never drains it. So the wait
// is bounded by progress: if the buffered bytes do not shrink for
// `stallSeconds` (cluster.stallSeconds), the wait fails with
// DeadlineExceeded, and the writer ends the connection, blaming the peer that
// stopped reading.
// Progress, not a total time, so a large write to an honest peer on a slow
// link is never cut.
import { Writable } from 'node:stream';
import { ConnectionLost, DeadlineExceeded } from '../errors';

/** cluster.stallSeconds's default: what a worker or a shard uses until its Welcome says the job's. */
export const DEFAULT_STALL_SECONDS = 30;

/**
 * Resolve once `stream`'s buffer has drained. Rejects with ConnectionLost if
 * it closes first (`onClose: 'reject'`; 'resolve' leaves telling of the close
 * to whoever watches the stream), and with DeadlineExceeded once its buffer
 * has not shrunk for `stallSeconds`: the caller then ends the connection.
 */
export function drained(stream: Writable, stallSeconds: number, onClose: 'resolve' | 'reject'): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (stream.destroyed) return onClose === 'resolve' ? resolve() : reject(new ConnectionLost('the connection is closed'));
    let left = stream.writableLength;
    let lastProgress = Date.now();
    const check = setInterval(() => {
      if (stream.writableLength < left) { left = stream.writableLength; lastProgress = Date.now(); return; }
      if (Date.now() - lastProgress < stallSeconds * 1000) return;
      const err = new DeadlineExceeded(`the peer took none of the bytes written to it for ${stallSeconds} s (cluster.stallSeconds): it is not reading`);
      finish();
      reject(err);
    }, Math.max(10, (stallSeconds * 1000) / 10));
    const finish = () => { clearInterval(check); stream.off('drain', done); stream.off('close', gone); };
    const done = () => { finish(); resolve(); };
    const gone = () => { finish(); onClose === 'resolve' ? resolve() : reject(new ConnectionLost('the connection closed while sending')); };
    stream.on('drain', done);
    stream.on('close', gone);
  });
}

/**
 * `waiting`, bounded the same way from the other side: it fails with
 * DeadlineExceeded once `progress()` (bytes read from the peer) has not grown
 * for `stallSeconds` — a peer that should be sending and sends nothing.
 */
export function arriving<T>(waiting: Promise<T>, progress: () => number, stallSeconds: number, what: string): Promise<T> {
  let seen = progress();
  let lastProgress = Date.now();
  let check: NodeJS.Timeout | undefined;
  const stalled = new Promise<never>((_, reject) => {
    check = setInterval(() => {
      const now = progress();
      if (now !== seen) { seen = now; lastProgress = Date.now(); return; }
      if (Date.now() - lastProgress >= stallSeconds * 1000) reject(new DeadlineExceeded(`the peer sent no bytes of ${what} for ${stallSeconds} s (cluster.stallSeconds): it is not sending`));
    }, Math.max(10, (stallSeconds * 1000) / 10));
  });
  return Promise.race([waiting, stalled]).finally(() => clearInterval(check));
}

/** Write one message to a gRPC stream; when its buffer is full, wait as `drained` says (a close ends the wait quietly: the stream's own events report it). */
export async function writeWithBackpressure<T>(stream: Writable, msg: T, stallSeconds = DEFAULT_STALL_SECONDS): Promise<void> {
  if (stream.write(msg)) return;
  await drained(stream, stallSeconds, 'resolve');
}

/** What a worker or shard uses for gRPC keepalive (`--keepalive-seconds`); the coordinator's is cluster.keepaliveSeconds. */
export const DEFAULT_KEEPALIVE_SECONDS = 30;

/**
 * gRPC channel or server options: ping the peer after `seconds` and close the
 * connection if it does not answer within `seconds` more. A SIGSTOPped peer,
 * or a path that drops packets while TCP stays open, ends the call instead of
 * leaving it open forever.
 */
export function keepalive(seconds: number): Record<string, number> {
  return { 'grpc.keepalive_time_ms': seconds * 1000, 'grpc.keepalive_timeout_ms': seconds * 1000, 'grpc.keepalive_permit_without_calls': 1 };
}
