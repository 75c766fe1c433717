// unfreeze – gradual unfreezing and the head warm-up against a hand-computed
// schedule of per-variable rates (pure, no tfjs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { groupRates, resolveMultipliers } from '../core/train/lr-rules';
import { atIteration, nextRelease, releaseIterations, schedule, unfreezeProblems } from '../core/train/unfreeze';

const SEED_CNN = ['conv1/kernel', 'conv1/bias', 'conv2/kernel', 'conv2/bias', 'fc1/kernel', 'fc1/bias', 'head/kernel', 'head/bias'];
const rates = (m: Map<string, { lrMult: number }>, lr: number) => SEED_CNN.filter((n) => n.endsWith('kernel')).map((n) => +(lr * m.get(n)!.lrMult).toPrecision(6));

test('unfreeze – ULMFiT by depth with layer decay: each layer trains from its release at its decayed rate', () => {
  const entries = [{ minDepth: 3, at: 300 }, { minDepth: 1, at: 100 }, { minDepth: 2, at: 200 }]; // order does not matter: the latest release wins
  const releases = releaseIterations(SEED_CNN, entries);
  assert.deepEqual([...releases.values()], [300, 300, 200, 200, 100, 100, 0, 0]);
  const resolved = resolveMultipliers(SEED_CNN, [{ match: 'head/*', lrMult: 10 }], 0.5);
  // By hand, lr 0.01, kernels of conv1, conv2, fc1, head: head 0.1 throughout; fc1 0.005 from 100; conv2 0.0025 from 200; conv1 0.00125 from 300.
  assert.deepEqual(rates(atIteration(resolved, releases, 0), 0.01), [0, 0, 0, 0.1]);
  assert.deepEqual(rates(atIteration(resolved, releases, 99), 0.01), [0, 0, 0, 0.1]);
  assert.deepEqual(rates(atIteration(resolved, releases, 100), 0.01), [0, 0, 0.005, 0.1]);
  assert.deepEqual(rates(atIteration(resolved, releases, 250), 0.01), [0, 0.0025, 0.005, 0.1]);
  assert.deepEqual(rates(atIteration(resolved, releases, 300), 0.01), [0.00125, 0.0025, 0.005, 0.1]);
  assert.deepEqual([0, 99, 100, 250, 300].map((i) => nextRelease(releases, i)), [100, 100, 200, 300, null]);
  const plain = resolveMultipliers(SEED_CNN, [{ match: 'head/*', lrMult: 10 }, { match: '*', lrMult: 0.1 }]);
  assert.deepEqual([...groupRates(atIteration(plain, releases, 150), 0.01)], [['* until 300', 0], ['* until 200', 0], ['*', 0.001], ['head/*', 0.1]],
    'the metric: what is released of a group at its rate, the rest apart at 0');
});

test('unfreeze – a head warm-up is the head alone, then every layer; globs release by name; lrMult 0 stays frozen', () => {
  const warm = releaseIterations(SEED_CNN, schedule([], 50));
  assert.deepEqual([...warm.values()], [50, 50, 50, 50, 50, 50, 0, 0]);
  const byName = releaseIterations(SEED_CNN, [{ match: 'conv*', at: 40 }, { match: 'conv1/*', at: 80 }]);
  assert.deepEqual([...byName.values()], [80, 80, 40, 40, 0, 0, 0, 0]);
  const resolved = resolveMultipliers(SEED_CNN, [{ match: 'conv1/*', lrMult: 0 }]);
  assert.deepEqual(rates(atIteration(resolved, byName, 100), 1), [0, 1, 1, 1], 'released, but its rule freezes it');
});

test('unfreeze – an entry that names no variable is an error, like a layer rule', () => {
  assert.deepEqual(unfreezeProblems(SEED_CNN, [{ match: 'conv*', at: 10 }, { minDepth: 3, at: 10 }]), []);
  assert.deepEqual(unfreezeProblems(SEED_CNN, [{ match: 'backbone/*', at: 10 }, { minDepth: 4, at: 20 }]), [
    'optimizer.unfreeze[0] (match "backbone/*") names no variable of the model (depths 0–3)',
    'optimizer.unfreeze[1] (minDepth 4) names no variable of the model (depths 0–3)',
  ]);
});
