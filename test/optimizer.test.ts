// optimizer – momentum SGD and per-variable multipliers, against hand-derived values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Sgd, sgdUpdate } from '../core/train/optimizer';
import { resolveMultipliers } from '../core/train/lr-rules';

const close = (a: ArrayLike<number>, b: number[], eps = 1e-6) =>
  assert.ok(Array.from(a).every((v, i) => Math.abs(v - b[i]) < eps), `${Array.from(a)} ≉ ${b}`);

test('optimizer – plain momentum SGD matches hand-computed steps', () => {
  const w = Float32Array.of(1, -2), v = new Float32Array(2);
  const o = { momentum: 0.9, nesterov: false, weightDecay: 0 };
  sgdUpdate(w, Float32Array.of(0.5, 1), v, 0.1, 0, o);
  close(v, [0.5, 1]); close(w, [0.95, -2.1]);
  sgdUpdate(w, Float32Array.of(0.5, 1), v, 0.1, 0, o);
  // v = 0.9·0.5 + 0.5 = 0.95, 0.9·1 + 1 = 1.9; w = 0.95 − 0.095, −2.1 − 0.19
  close(v, [0.95, 1.9]); close(w, [0.855, -2.29]);
});

test('optimizer – weight decay and Nesterov', () => {
  const w = Float32Array.of(2), v = Float32Array.of(1);
  sgdUpdate(w, Float32Array.of(0.5), v, 0.1, 0.25, { momentum: 0.5, nesterov: true, weightDecay: 0.25 });
  // d = 0.5 + 0.25·2 = 1; v = 0.5·1 + 1 = 1.5; w = 2 − 0.1·(1 + 0.5·1.5) = 1.825
  close(v, [1.5]); close(w, [1.825]);
});

test('optimizer – per-variable multipliers: head ×10, base ×0.1, frozen ×0 untouched', () => {
  const rules = [{ match: 'head/*', lrMult: 10 }, { match: 'conv1/*', lrMult: 0 }, { match: '*', lrMult: 0.1, decayMult: 0 }];
  const names = ['head/kernel', 'conv1/kernel', 'fc1/bias'];
  const sgd = new Sgd({ momentum: 0, nesterov: false, weightDecay: 1 }, resolveMultipliers(names, rules));
  const params = new Map(names.map((n) => [n, Float32Array.of(1)]));
  sgd.step(params, new Map(names.map((n) => [n, Float32Array.of(1)])), 0.01);
  close(params.get('head/kernel')!, [1 - 0.01 * 10 * (1 + 1)]); // decay 1·1
  close(params.get('conv1/kernel')!, [1]);
  close(params.get('fc1/bias')!, [1 - 0.01 * 0.1 * 1]);         // decayMult 0
  assert.equal(sgd.velocity.has('conv1/kernel'), false, 'no buffer for a frozen variable');
});
