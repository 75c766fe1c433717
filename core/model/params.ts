// A model's variables by stable name (`<layer>/<weight>`, tfjs's
// originalName — the name used when weights are saved), and copying their
// values between tfjs and plain Float32Arrays. tfjs itself may uniquify the
// runtime variable name (`conv1/kernel_1`) when several models share a
// process; the stable name never changes.
import * as tf from '@tensorflow/tfjs';
import { ModelInvalid } from '../errors';
import { Tensors } from '../util/tensors';

export interface ParamSpec {
  name: string;
  shape: number[];
}

export function modelVariables(model: tf.LayersModel): Map<string, tf.LayerVariable> {
  const vars = new Map<string, tf.LayerVariable>();
  for (const w of model.weights) {
    if (vars.has(w.originalName)) throw new ModelInvalid(`two variables are named ${w.originalName}; give every layer a unique name`);
    vars.set(w.originalName, w);
  }
  return vars;
}

export function paramSpecs(model: tf.LayersModel): ParamSpec[] {
  return model.weights.map((w) => ({ name: w.originalName, shape: w.shape as number[] }));
}

/** Every variable's values, read asynchronously (a GPU backend has no synchronous read in Node). */
export async function readParams(model: tf.LayersModel): Promise<Tensors> {
  const vars = [...modelVariables(model)];
  const values = await Promise.all(vars.map(([, v]) => v.read().data() as Promise<Float32Array>));
  return new Map(vars.map(([name], i) => [name, values[i]]));
}

/** Write `params` (all, or just those named) into the model's variables. */
export function writeParams(model: tf.LayersModel, params: Tensors): void {
  const vars = modelVariables(model);
  tf.tidy(() => {
    for (const [name, data] of params) {
      const v = vars.get(name);
      if (!v) throw new ModelInvalid(`model has no variable ${name}`);
      v.write(tf.tensor(data, v.shape as number[]));
    }
  });
}

/** The largest difference between two sets of tensors, per tensor relative to its largest magnitude in `b`. */
export function maxRelativeDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  let worst = 0;
  for (const [name, x] of b) {
    const y = a.get(name)!;
    let diff = 0, scale = 0;
    for (let i = 0; i < x.length; i++) { diff = Math.max(diff, Math.abs(x[i] - y[i])); scale = Math.max(scale, Math.abs(x[i])); }
    worst = Math.max(worst, diff / (scale || 1));
  }
  return worst;
}
