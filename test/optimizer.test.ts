// optimizer, lr-rules, lr-schedule – pure math against hand-derived values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Sgd, sgdUpdate } from '../core/train/optimizer';
import { multipliersFor, resolveMultipliers } from '../core/train/lr-rules';
import { learningRate, Schedule } from '../core/train/lr-schedule';

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

test('lr-rules – first matching glob wins; unmatched gets 1', () => {
  const rules = [{ match: 'head/*', lrMult: 10 }, { match: 'conv?/kernel', lrMult: 0.5, decayMult: 2 }, { match: '*', lrMult: 0.1 }];
  assert.deepEqual(multipliersFor('head/bias', rules), { lrMult: 10, decayMult: 1 });
  assert.deepEqual(multipliersFor('conv2/kernel', rules), { lrMult: 0.5, decayMult: 2 });
  assert.deepEqual(multipliersFor('conv12/kernel', rules), { lrMult: 0.1, decayMult: 1 });
  assert.deepEqual(multipliersFor('fc1.bias', [{ match: 'fc1/*', lrMult: 3 }]), { lrMult: 1, decayMult: 1 }, '. is literal');
});

test('lr-schedule – fixed, step, multistep, cosine, warm-up', () => {
  const s = (policy: Schedule['policy'], warmup = { iterations: 0, startFactor: 1 }): Schedule => ({ lr: 0.1, policy, warmup, totalIterations: 100 });
  assert.equal(learningRate(s({ type: 'fixed' }), 77), 0.1);
  close([learningRate(s({ type: 'step', gamma: 0.5, stepSize: 10 }), 25)], [0.025]);
  close([learningRate(s({ type: 'multistep', gamma: 0.1, steps: [10, 50] }), 9)], [0.1]);
  close([learningRate(s({ type: 'multistep', gamma: 0.1, steps: [10, 50] }), 50)], [0.001]);
  close([learningRate(s({ type: 'cosine', minLr: 0 }), 50)], [0.05]);
  close([learningRate(s({ type: 'cosine', minLr: 0.02 }), 100)], [0.02]);
  const warm = s({ type: 'fixed' }, { iterations: 10, startFactor: 0.1 });
  close([learningRate(warm, 0), learningRate(warm, 5), learningRate(warm, 10)], [0.01, 0.055, 0.1]);
});
