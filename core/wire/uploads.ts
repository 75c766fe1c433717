// One worker's gradient uploads, one per outstanding slice. On the gRPC
// stream a StepDone always follows its gradients; on the data plane they
// travel on two connections, so either may arrive first, and a worker with
// two slices may be well into its second upload before its first StepDone
// lands. So an upload is sealed the moment its last tensor is complete and
// waits, in order, for the StepDone that claims it. Buffers are allocated on
// first use and reused: a session that never uploads costs none.
import { ParamSpec } from '../model/params';
import { TensorAssembler } from './tensors';
import { DType, TensorChunk } from '../../proto/gen/tunefleet/v1/tunefleet';

/** One upload: its tensors and their squared L2 norm so far. */
export interface Upload {
  assembler: TensorAssembler;
  squares: number;
}

export class Uploads {
  private current: Upload | null = null;
  private spare: TensorAssembler | null = null;
  private readonly sealed: Upload[] = [];

  constructor(private readonly specs: ParamSpec[], private readonly dtypes: DType[]) {}

  private get open(): TensorAssembler {
    this.current ??= { assembler: this.spare ?? new TensorAssembler(this.specs, this.dtypes), squares: 0 };
    this.spare = null;
    return this.current.assembler;
  }

  /** Complete uploads waiting for their StepDone. */
  get ready(): number {
    return this.sealed.length;
  }

  /** Place a gRPC chunk in the open upload; the tensor's name when it completed it. */
  add(chunk: TensorChunk): string | null {
    return this.open.add(chunk);
  }

  /** Where a frame's payload goes in the open upload (TensorAssembler.destination). */
  destination(name: string, dtype: DType, offset: number, byteLength: number): Uint8Array {
    return this.open.destination(name, dtype, offset, byteLength);
  }

  landed(): string | null {
    return this.open.landed();
  }

  /** A tensor of the open upload (to check once it is complete). */
  tensor(name: string): Float32Array {
    return this.open.tensors.get(name)!;
  }

  /** A complete, checked tensor of the open upload had this sum of squares. */
  addSquares(squares: number): void {
    this.current!.squares += squares;
  }

  /** Seal the open upload if every tensor has arrived; returns it if it was. */
  sealIfComplete(): Upload | null {
    const upload = this.current;
    if (!upload?.assembler.complete()) return null;
    this.sealed.push(upload);
    this.current = null;
    return upload;
  }

  /** The oldest sealed upload, for the StepDone that claims it; give it back with recycle() once used. */
  take(): Upload | null {
    return this.sealed.shift() ?? null;
  }

  recycle(upload: Upload): void {
    upload.assembler.reset();
    this.spare ??= upload.assembler;
  }
}
