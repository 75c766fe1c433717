// The data plane's framing (cluster.dataPlane: tcp): parameters and gradients
// as raw bytes on a TCP (or TLS) connection beside the gRPC session. A frame
// is a fixed 40-byte little-endian header and then `length` payload bytes:
//
//   offset  size  field
//        0     1  kind      HELLO | PARAM | PARAMS_END | GRADIENT
//        1     1  dtype     DType (FLOAT32, FLOAT16); 0 when there is no tensor
//        2     2  (zero)
//        4     4  tensor    index: PARAM into the Welcome's model variables in
//                           topology order, GRADIENT into Welcome.trainable
//        8     8  step      GRADIENT: the step the gradient is for
//       16     8  version   PARAM / PARAMS_END / GRADIENT: parameter version
//       24     8  offset    byte offset of the payload within the whole tensor
//       32     4  length    payload bytes
//       36     4  (zero)
//
// HELLO's payload is the session's ticket (TICKET_BYTES); PARAMS_END says
// every parameter of `version` has been sent. Payloads are the tensors' own
// bytes, never encoded: a sender writes views of its arrays, and a receiver
// reads each payload straight into its destination (FrameReader).
import { WireInvalid } from '../errors';
import { DType } from '../../proto/gen/tunefleet/v1/tunefleet';

export enum FrameKind { HELLO = 1, PARAM = 2, PARAMS_END = 3, GRADIENT = 4 }

export interface FrameHeader {
  kind: FrameKind;
  dtype: DType;
  tensor: number;
  step: number;
  version: number;
  offset: number;
  length: number;
}

export const HEADER_BYTES = 40;
/** Senders split tensors into frames of this many bytes (several MiB: the header's cost vanishes, a frame's scratch stays small). */
export const FRAME_BYTES = 8 << 20;
/** Receivers refuse a frame declaring more (as `oversized`). */
export const MAX_FRAME_BYTES = 64 << 20;
/** The single-use ticket a session's data connection opens with: 256 random bits. */
export const TICKET_BYTES = 32;

export function encodeHeader(h: Partial<FrameHeader> & { kind: FrameKind }): Buffer {
  const b = Buffer.alloc(HEADER_BYTES);
  b.writeUInt8(h.kind, 0);
  b.writeUInt8(h.dtype ?? 0, 1);
  b.writeUInt32LE(h.tensor ?? 0, 4);
  b.writeBigUInt64LE(BigInt(h.step ?? 0), 8);
  b.writeBigUInt64LE(BigInt(h.version ?? 0), 16);
  b.writeBigUInt64LE(BigInt(h.offset ?? 0), 24);
  b.writeUInt32LE(h.length ?? 0, 32);
  return b;
}

function safe(b: Buffer, at: number, what: string): number {
  const v = b.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new WireInvalid(`frame ${what} ${v} is out of range`, 'undecodable');
  return Number(v);
}

/** The header in `b` (HEADER_BYTES bytes); an unknown kind or an out-of-range number is `undecodable`, a length over MAX_FRAME_BYTES `oversized`. */
export function decodeHeader(b: Buffer): FrameHeader {
  const kind = b.readUInt8(0);
  if (!(kind in FrameKind)) throw new WireInvalid(`frame kind ${kind} is not one of HELLO, PARAM, PARAMS_END, GRADIENT`, 'undecodable');
  const length = b.readUInt32LE(32);
  if (length > MAX_FRAME_BYTES) throw new WireInvalid(`a frame declares ${length} bytes, over the ${MAX_FRAME_BYTES}-byte limit`, 'oversized');
  return { kind, dtype: b.readUInt8(1), tensor: b.readUInt32LE(4), step: safe(b, 8, 'step'), version: safe(b, 16, 'version'), offset: safe(b, 24, 'offset'), length };
}

/** What a FrameReader's owner does with frames. */
export interface FrameHandler {
  /** Where the payload of `h` goes: exactly `h.length` bytes. Throws (a WireInvalid) to refuse the frame. */
  target(h: FrameHeader): Uint8Array;
  /** The payload of `h` is in its target. */
  landed(h: FrameHeader): void;
}

/**
 * Cuts a byte stream into frames without copying payloads: the header goes
 * into a small buffer of the reader's own, each payload straight into the
 * buffer its handler's `target` returned. With net's `onread`, the socket
 * reads into `nextBuffer()` itself (no copy at all); `feed` serves streams
 * that hand out their own chunks (TLS), at one copy. A read never crosses a
 * frame boundary, because nextBuffer() is never larger than what is left of
 * the current header or payload.
 */
export class FrameReader {
  private readonly header = Buffer.alloc(HEADER_BYTES);
  private filled = 0;
  private frame: { h: FrameHeader; dest: Uint8Array } | null = null;

  constructor(private readonly handler: FrameHandler) {}

  /** True between frames (a stream that ends now ends cleanly). */
  get idle(): boolean {
    return this.frame === null && this.filled === 0;
  }

  nextBuffer(): Uint8Array {
    if (!this.frame) return this.header.subarray(this.filled);
    return this.frame.dest.subarray(this.filled);
  }

  /** `n` bytes were read into the buffer `nextBuffer()` returned. */
  advance(n: number): void {
    this.filled += n;
    if (!this.frame) {
      if (this.filled < HEADER_BYTES) return;
      const h = decodeHeader(this.header);
      const dest = this.handler.target(h); // even for an empty payload: the handler checks every frame
      if (dest.length !== h.length) throw new Error(`frame target of ${dest.length} bytes for a ${h.length}-byte payload`);
      this.frame = { h, dest };
      this.filled = 0;
    }
    if (this.filled < this.frame.dest.length) return;
    const { h } = this.frame;
    this.frame = null;
    this.filled = 0;
    this.handler.landed(h);
  }

  /** Copy `chunk` through the same buffers (for a stream that reads into its own). */
  feed(chunk: Uint8Array): void {
    while (chunk.length > 0) {
      const into = this.nextBuffer();
      const n = Math.min(into.length, chunk.length);
      into.set(chunk.subarray(0, n));
      chunk = chunk.subarray(n);
      this.advance(n);
    }
  }
}
