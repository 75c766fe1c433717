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

/** The chunks of one tensor. As float32, `data` views `values`' bytes; as float16 it views one converted copy. */
export function* chunksOf(name: string, shape: number[], values: Float32Array, chunkBytes = CHUNK_BYTES, dtype = DType.FLOAT32): Generator<TensorChunk> {
  const typed = dtype === DType.FLOAT16 ? toFloat16(values) : values;
  const bytes = new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
  for (let offset = 0; offset < bytes.length || offset === 0; offset += chunkBytes) {
    yield { name, dtype, shape, offset, data: bytes.subarray(offset, offset + chunkBytes) };
    if (bytes.length === 0) return;
  }
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

  /** `dtypes`: what the wire may carry (float32 always lands as float32). */
  constructor(specs: ParamSpec[], private readonly dtypes: DType[] = [DType.FLOAT32]) {
    for (const s of specs) {
      this.tensors.set(s.name, new Float32Array(product(s.shape)));
      this.shapes.set(s.name, s.shape.join('x'));
    }
  }

  /** Forget what arrived (the buffers are reused for the next transfer). */
  reset(): void {
    this.received = new Map();
  }

  /** Place one chunk; returns the tensor's name when that chunk completed it. */
  add(chunk: TensorChunk): string | null {
    const target = this.tensors.get(chunk.name);
    if (!target) throw new WireInvalid(`unknown tensor '${chunk.name}'`, 'unknown-name');
    if (!this.dtypes.includes(chunk.dtype)) throw new WireInvalid(`${chunk.name}: dtype ${DType[chunk.dtype] ?? chunk.dtype} is not ${this.dtypes.map((d) => DType[d]).join(' or ')}`, 'dtype');
    if (chunk.shape.join('x') !== this.shapes.get(chunk.name)) {
      throw new WireInvalid(`${chunk.name}: shape [${chunk.shape}] is not the expected [${this.shapes.get(chunk.name)!.split('x')}]`, 'shape');
    }
    const size = BYTES_PER_ELEMENT[chunk.dtype]!;
    const { data } = chunk;
    const start = chunk.offset / size, count = data.length / size; // in elements
    if (!Number.isInteger(start) || !Number.isInteger(count) || start + count > target.length) {
      throw new WireInvalid(`${chunk.name}: bytes [${chunk.offset}, ${chunk.offset + data.length}) do not fit a ${target.length}-element ${DType[chunk.dtype]} tensor`, 'size');
    }
    const sofar = this.received.get(chunk.name); // undefined: nothing of it yet in this transfer
    const next = sofar ?? 0;
    // An empty chunk only for an empty tensor, once (chunksOf sends one so it completes).
    if (start !== next || (count === 0 && (target.length > 0 || sofar !== undefined))) {
      throw new WireInvalid(`${chunk.name}: a chunk of ${count} elements at element ${start}; the next must start at element ${next} (in order, each element once)`, 'size');
    }
    if (chunk.dtype === DType.FLOAT16) {
      // Copied into an aligned buffer of its own: received bytes may sit at an
      // odd offset, and are often a Buffer, whose slice() is a view, not a copy.
      fromFloat16(new Uint16Array(new Uint8Array(data).buffer), target.subarray(start, start + count));
    } else {
      new Uint8Array(target.buffer, target.byteOffset + start * 4, data.length).set(data);
    }
    this.received.set(chunk.name, next + count);
    return next + count === target.length ? chunk.name : null;
  }

  complete(names: Iterable<string> = this.tensors.keys()): boolean {
    for (const n of names) if (!this.received.has(n) || this.received.get(n) !== this.tensors.get(n)!.length) return false;
    return true;
  }
}
