// Composing kernels out of other kernels of the same backend.
//
// A kernel function must not call tf ops (they would land on the gradient
// tape and in the engine's bookkeeping), so composite kernels call the
// backend's registered kernel functions directly. Every intermediate result
// is tracked and freed when the composite kernel returns; only the output
// survives.
import * as tf from '@tensorflow/tfjs';

type Attrs = Record<string, unknown>;

export type KernelArgs = Parameters<tf.KernelFunc>[0];

/** What our kernels use of the wasm backend beyond tf.KernelBackend. */
export interface WasmBackend extends tf.KernelBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  /** A view into the wasm heap; any later allocation may grow the heap and detach it. */
  typedArrayFromHeap(t: tf.TensorInfo): tf.backend_util.TypedArray;
}

export class KernelCalls {
  private readonly temps: tf.TensorInfo[] = [];
  private readonly backend: tf.KernelBackend;

  constructor(args: KernelArgs, private readonly backendName: string) {
    this.backend = args.backend as tf.KernelBackend;
  }

  /** Run a kernel by name, or a given kernel function (e.g. the stock one we replaced). */
  run(kernel: string | tf.KernelFunc, inputs: Record<string, tf.TensorInfo> | tf.TensorInfo[], attrs: Attrs = {}): tf.TensorInfo {
    const func = typeof kernel === 'string' ? tf.getKernel(kernel, this.backendName)?.kernelFunc : kernel;
    if (!func) throw new Error(`kernel ${kernel} is not registered for ${this.backendName}`);
    const out = func({ inputs: inputs as tf.NamedTensorInfoMap, backend: this.backend, attrs: attrs as tf.NamedAttrMap });
    const info = Array.isArray(out) ? out[0] : out;
    this.temps.push(info);
    return info;
  }

  /** A new float32 tensor filled by `fill` (given views of it and of `inputs`, taken after allocating it). */
  compute(shape: number[], inputs: tf.TensorInfo[], fill: (out: Float32Array, ...inputs: Float32Array[]) => void): tf.TensorInfo {
    const backend = this.backend as WasmBackend;
    const out = backend.makeOutput(shape, 'float32');
    this.temps.push(out);
    const view = (t: tf.TensorInfo) => backend.typedArrayFromHeap(t) as Float32Array;
    fill(view(out), ...inputs.map(view));
    return out;
  }

  transpose(x: tf.TensorInfo, perm: number[]): tf.TensorInfo {
    return this.run('Transpose', { x }, { perm });
  }

  reshape(x: tf.TensorInfo, shape: number[]): tf.TensorInfo {
    return this.run('Reshape', { x }, { shape });
  }

  slice(x: tf.TensorInfo, begin: number[], size: number[]): tf.TensorInfo {
    return this.run('Slice', { x }, { begin, size });
  }

  pad(x: tf.TensorInfo, paddings: [number, number][]): tf.TensorInfo {
    return this.run('PadV2', { x }, { paddings, constantValue: 0 });
  }

  /**
   * Insert `s - 1` zeros between neighbouring rows and columns of an NHWC
   * tensor: the "dilated" output gradient a strided conv's input gradient
   * needs. Done as reshape → pad → reshape → slice so it stays in wasm.
   */
  interleaveZeros(x: tf.TensorInfo, sh: number, sw: number): tf.TensorInfo {
    if (sh === 1 && sw === 1) return x;
    const [b, h, w, c] = x.shape;
    const split = this.reshape(x, [b, h, 1, w, 1, c]);
    const padded = this.pad(split, [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]]);
    const merged = this.reshape(padded, [b, h * sh, w * sw, c]);
    return this.slice(merged, [0, 0, 0, 0], [b, (h - 1) * sh + 1, (w - 1) * sw + 1, c]);
  }

  /** Free every intermediate except `keep`, which is returned. */
  finish(keep: tf.TensorInfo): tf.TensorInfo {
    // Compare objects, not data ids: a reshape shares its input's data and
    // holds its own reference count on it.
    for (const t of this.temps) if (t !== keep) this.backend.disposeData(t.dataId);
    return keep;
  }
}
