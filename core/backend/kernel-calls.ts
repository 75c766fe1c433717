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

export class KernelCalls {
  private readonly temps: tf.TensorInfo[] = [];
  private readonly backend: tf.KernelBackend;

  constructor(args: KernelArgs, private readonly backendName: string) {
    this.backend = args.backend as tf.KernelBackend;
  }

  run(name: string, inputs: Record<string, tf.TensorInfo> | tf.TensorInfo[], attrs: Attrs = {}): tf.TensorInfo {
    const kernel = tf.getKernel(name, this.backendName);
    if (!kernel) throw new Error(`kernel ${name} is not registered for ${this.backendName}`);
    const out = kernel.kernelFunc({ inputs: inputs as tf.NamedTensorInfoMap, backend: this.backend, attrs: attrs as tf.NamedAttrMap });
    const info = Array.isArray(out) ? out[0] : out;
    this.temps.push(info);
    return info;
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
