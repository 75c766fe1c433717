// Tensors on the wire: split a named Float32Array into TensorChunk messages of
// at most CHUNK_BYTES (as float32, or as float16 for half the bytes), and put
// received chunks back into place as float32. The receiving side checks every
// chunk at the boundary — known name, an accepted dtype, the exact shape it
// expects, offset and length inside the tensor, element-aligned — and rejects
// anything else with a WireInvalid naming the problem.
import { DType, TensorChunk } from '../../proto/gen/tunefleet/v1/tunefleet';
import { WireInvalid } from '../errors';
import { fromFloat16, toFloat16 } from './fp16';
import { ParamSpec } from '../model/params';
import { product } from '../util/numbers';

export const CHUNK_BYTES = 1 << 20; // 1 MiB: far below gRPC's 4 MiB default message limit
/** Both sides refuse larger messages; our chunks stay far below it, so only a broken or hostile peer hits it. */
export const MAX_MESSAGE_BYTES = 8 << 20;

const BYTES_PER_ELEMENT: Partial<Record<DType, number>> = { [DType.FLOAT32]: 4, [DType.FLOAT16]: 2 };

/** A tensor's bytes on the wire: as float32 a view of `values`' bytes, as float16 one converted copy. */
export function wireBytes(values: Float32Array, dtype: DType): Uint8Array {
  const typed = dtype === DType.FLOAT16 ? toFloat16(values) : values;
  return new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
}

/** `bytes` cut into views of at most `size` bytes, with their offsets; an empty tensor is one empty piece, so the receiver sees it complete. */
export function* piecesOf(bytes: Uint8Array, size: number): Generator<{ offset: number; data: Uint8Array }> {
  for (let offset = 0; offset < bytes.length || offset === 0; offset += size) {
    yield { offset, data: bytes.subarray(offset, offset + size) };
    if (bytes.length === 0) return;
  }
}

/** The chunks of one tensor (gRPC plane), each a view of wireBytes(). */
export function* chunksOf(name: string, shape: number[], values: Float32Array, chunkBytes = CHUNK_BYTES, dtype = DType.FLOAT32): Generator<TensorChunk> {
  for (const { offset, data } of piecesOf(wireBytes(values, dtype), chunkBytes)) yield { name, dtype, shape, offset, data };
}

/**
 * Reassembles chunks into preallocated tensors, one per expected name, and
 * reuses those buffers for every later transfer of the same tensor.
 * Within one transfer (between resets) each tensor's chunks must arrive in
 * order, each element exactly once: every chunk starts where the previous one
 * ended. So coverage, not a byte count, decides when a tensor is complete —
 * overlapping chunks whose sizes add up are refused — and a peer cannot keep
 * a stream busy by re-sending. `complete()` says whether every tensor arrived.
 */
export class TensorAssembler {
  readonly tensors = new Map<string, Float32Array>();
  private readonly shapes = new Map<string, string>();
  /** Elements received so far in this transfer, by tensor: where its next chunk must start. */
  private received = new Map<string, number>();
  /** The piece destination() handed out, until it has landed. */
  private pending: { name: string; start: number; count: number; half: Uint16Array | null } | null = null;

  /** `dtypes`: what the wire may carry (float32 always lands as float32). */
  constructor(specs: ParamSpec[], private readonly dtypes: DType[] = [DType.FLOAT32]) {
    for (const s of specs) {
      this.tensors.set(s.name, new Float32Array(product(s.shape)));
      this.shapes.set(s.name, s.shape.join('x'));
    }
  }

  /** An assembler that lands in `tensors` themselves (views of bigger arrays: a worker's pieces of its parameters, with shards). */
  static over(tensors: Map<string, Float32Array>, dtypes: DType[] = [DType.FLOAT32]): TensorAssembler {
    const a = new TensorAssembler([], dtypes);
    for (const [name, values] of tensors) {
      a.tensors.set(name, values);
      a.shapes.set(name, String(values.length));
    }
    return a;
  }

  /** Forget what arrived (the buffers are reused for the next transfer). */
  reset(): void {
    this.received = new Map();
    this.pending = null;
  }

  /** Place one chunk; returns the tensor's name when that chunk completed it. */
  add(chunk: TensorChunk): string | null {
    if (this.tensors.has(chunk.name) && chunk.shape.join('x') !== this.shapes.get(chunk.name)) {
      throw new WireInvalid(`${chunk.name}: shape [${chunk.shape}] is not the expected [${this.shapes.get(chunk.name)!.split('x')}]`, 'shape');
    }
    this.destination(chunk.name, chunk.dtype, chunk.offset, chunk.data.length).set(chunk.data);
    return this.landed();
  }

  /**
   * Where `byteLength` bytes of `name` (as `dtype`) at byte `offset` go,
   * checked as a chunk would be: a float32 piece lands straight in the
   * tensor, a float16 one in a scratch buffer that landed() converts. Write
   * the bytes there, then call landed() before the next destination().
   */
  destination(name: string, dtype: DType, offset: number, byteLength: number): Uint8Array {
    const target = this.tensors.get(name);
    if (!target) throw new WireInvalid(`unknown tensor '${name}'`, 'unknown-name');
    if (!this.dtypes.includes(dtype)) throw new WireInvalid(`${name}: dtype ${DType[dtype] ?? dtype} is not ${this.dtypes.map((d) => DType[d]).join(' or ')}`, 'dtype');
    const size = BYTES_PER_ELEMENT[dtype]!;
    const start = offset / size, count = byteLength / size; // in elements
    if (!Number.isInteger(start) || !Number.isInteger(count) || start + count > target.length) {
      throw new WireInvalid(`${name}: bytes [${offset}, ${offset + byteLength}) do not fit a ${target.length}-element ${DType[dtype]} tensor`, 'size');
    }
    const sofar = this.received.get(name); // undefined: nothing of it yet in this transfer
    const next = sofar ?? 0;
    // An empty piece only for an empty tensor, once (chunksOf sends one so it completes).
    if (start !== next || (count === 0 && (target.length > 0 || sofar !== undefined))) {
      throw new WireInvalid(`${name}: a chunk of ${count} elements at element ${start}; the next must start at element ${next} (in order, each element once)`, 'size');
    }
    // float16 lands in an aligned buffer of its own: a view of received bytes may sit at an odd offset.
    const half = dtype === DType.FLOAT16 ? new Uint16Array(count) : null;
    this.pending = { name, start, count, half };
    return half ? new Uint8Array(half.buffer) : new Uint8Array(target.buffer, target.byteOffset + start * 4, byteLength);
  }

  /** The piece destination() gave is in place; returns the tensor's name when it completed the tensor. */
  landed(): string | null {
    const { name, start, count, half } = this.pending!;
    this.pending = null;
    const target = this.tensors.get(name)!;
    if (half) fromFloat16(half, target.subarray(start, start + count));
    this.received.set(name, start + count);
    return start + count === target.length ? name : null;
  }

  complete(names: Iterable<string> = this.tensors.keys()): boolean {
    for (const n of names) if (!this.received.has(n) || this.received.get(n) !== this.tensors.get(n)!.length) return false;
    return true;
  }
}
