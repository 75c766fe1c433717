// A data-plane connection's two halves over a node socket: frames out
// (header and payload written as they are, backpressure respected) and
// frames in (FrameReader, zero-copy where node allows it).
import { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { ConnectionLost } from '../errors';
import { DEFAULT_STALL_SECONDS, drained } from './backpressure';
import { encodeHeader, FrameHeader, FrameKind, FrameReader } from './frames';

/** Largest single read: node's default is 64 KiB, and bigger reads are what makes the receive side fast. */
const MAX_READ = 4 << 20;

export class FrameWriter {
  private closed = false;
  private lastWrite: Promise<void> = Promise.resolve();

  /** `stallSeconds`: a peer that takes none of our bytes for this long is cut off (backpressure.ts). */
  constructor(private readonly socket: Socket, private readonly stallSeconds = DEFAULT_STALL_SECONDS) {
    socket.once('close', () => { this.closed = true; });
  }

  /**
   * Resolves once every payload sent so far has been handed to the kernel (or
   * the connection is gone): until then the socket may still hold views of
   * the sender's arrays, which must not change.
   */
  get written(): Promise<void> {
    return this.lastWrite;
  }

  /**
   * Write one frame. `payload` goes out as it is (a view of the caller's
   * array, not copied: it must not change until the peer has answered).
   * Resolves once the socket accepted it, waiting while its buffer is full;
   * rejects when the connection is gone, or (DeadlineExceeded) when the peer
   * stops reading for stallSeconds.
   */
  async send(h: Partial<FrameHeader> & { kind: FrameKind }, payload?: Uint8Array): Promise<void> {
    if (this.closed) throw new ConnectionLost('the data connection is closed');
    const length = payload?.length ?? 0;
    this.socket.cork();
    this.socket.write(encodeHeader({ ...h, length }));
    let room = true;
    if (length > 0) this.lastWrite = new Promise((resolve) => { room = this.socket.write(payload!, () => resolve()); });
    this.socket.uncork();
    if (room) return;
    await drained(this.socket, this.stallSeconds, 'reject').catch((err) => {
      this.socket.destroy(err); // a peer that stopped reading: the connection is over (its 'error' says why)
      throw err;
    });
  }
}

/** The `onread` option for a plain socket whose frames `reader` cuts: the kernel copies straight into each frame's destination. */
export function onreadInto(reader: FrameReader, fail: (err: unknown) => void): { buffer: () => Uint8Array; callback: (n: number) => boolean } {
  return {
    buffer: () => { const b = reader.nextBuffer(); return b.length > MAX_READ ? b.subarray(0, MAX_READ) : b; },
    callback: (n) => {
      try { reader.advance(n); } catch (err) { fail(err); return false; }
      return true;
    },
  };
}

/**
 * Read `socket`'s frames into `reader`. A plain socket gets `onread`
 * (withOnread); a TLS socket decrypts into buffers of its own, so its chunks
 * are copied in, once.
 */
export function readFrames(socket: Socket, reader: FrameReader, fail: (err: unknown) => void): Socket {
  if (socket instanceof TLSSocket) return feedFrames(socket, reader, fail);
  return withOnread(socket, onreadInto(reader, fail));
}

/** Feed a socket's own chunks (TLS: decrypted into buffers of its own) to `reader`, one copy each. */
export function feedFrames(socket: Socket, reader: FrameReader, fail: (err: unknown) => void): Socket {
  return socket.on('data', (chunk: Buffer) => {
    try { reader.feed(chunk); } catch (err) { fail(err); socket.pause(); }
  });
}

/**
 * A socket accepted by a net.Server (with pauseOnConnect) cannot be given
 * `onread` (node only takes it when creating a socket), so it is wrapped anew
 * around the same handle: from then on the wrapper owns the connection, and
 * the original object must not be used (nor does the server count it).
 */
export function withOnread(accepted: Socket, onread: { buffer: () => Uint8Array; callback: (n: number) => boolean }): Socket {
  const handle = (accepted as unknown as { _handle: unknown })._handle;
  const own = new Socket({ handle, onread } as ConstructorParameters<typeof Socket>[0]);
  own.resume();
  return own;
}
