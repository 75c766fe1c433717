// Replacing the classifier: the transfer-learning step. The last layer (or a
// named one, and everything after it) is dropped, and a fresh, randomly
// initialised dense softmax layer named `head` with K outputs is attached to
// what fed it. Every other weight is carried over exactly.
import * as tf from '@tensorflow/tfjs';
import { ModelInvalid } from '../errors';
import { findLayer } from './io';
import { head } from './zoo';

export function replaceHead(model: tf.LayersModel, numClasses: number, seed: number, layerName?: string): tf.LayersModel {
  const old = layerName ? findLayer(model, layerName) : model.layers[model.layers.length - 1];
  if (old.getClassName() !== 'Dense') {
    throw new ModelInvalid(`layer '${old.name}' is a ${old.getClassName()}, not a Dense classification layer; name the classifier with model.headLayer`);
  }
  const features = old.input as tf.SymbolicTensor;
  const output = head(numClasses, seed).apply(features) as tf.SymbolicTensor;
  return tf.model({ inputs: model.inputs, outputs: output, name: model.name });
}
