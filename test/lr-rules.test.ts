// lr-rules – per-variable multipliers from ordered globs, resolved once, and
// the layer groups the learning-rate metric reports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { frozenStatisticsLayers, groupRates, layerDepths, multiplierRows, multipliersFor, resolveMultipliers, ruleProblems } from '../core/train/lr-rules';

test('lr-rules – first matching glob wins; unmatched gets 1', () => {
  const rules = [{ match: 'head/*', lrMult: 10 }, { match: 'conv?/kernel', lrMult: 0.5, decayMult: 2 }, { match: '*', lrMult: 0.1 }];
  assert.deepEqual(multipliersFor('head/bias', rules), { lrMult: 10, decayMult: 1, group: 'head/*' });
  assert.deepEqual(multipliersFor('conv2/kernel', rules), { lrMult: 0.5, decayMult: 2, group: 'conv?/kernel' });
  assert.deepEqual(multipliersFor('conv12/kernel', rules), { lrMult: 0.1, decayMult: 1, group: '*' });
  assert.deepEqual(multipliersFor('fc1.bias', [{ match: 'fc1/*', lrMult: 3 }]), { lrMult: 1, decayMult: 1, group: 'default' }, '. is literal');
});

test('lr-rules – each group\'s rate is the base rate × its rule\'s lr_mult, from the one resolution', () => {
  const resolved = resolveMultipliers(['head/kernel', 'head/bias', 'conv1/kernel', 'extra/w'], [{ match: 'head/*', lrMult: 10 }, { match: 'conv*', lrMult: 0 }]);
  assert.deepEqual([...groupRates(resolved, 0.01)], [['head/*', 0.1], ['conv*', 0], ['default', 0.01]]);
});

const SEED_CNN = ['conv1/kernel', 'conv1/bias', 'conv2/kernel', 'conv2/bias', 'fc1/kernel', 'fc1/bias', 'head/kernel', 'head/bias'];

test('lr-rules – layer decay: lr_mult × γ^depth, depth in layers from the head down the model\'s order, each layer its own group', () => {
  assert.deepEqual([...layerDepths(SEED_CNN).values()], [3, 3, 2, 2, 1, 1, 0, 0]);
  const resolved = resolveMultipliers(SEED_CNN, [{ match: 'head/*', lrMult: 10 }], 0.5);
  // By hand: head 10·0.5⁰; fc1 1·0.5¹; conv2 0.5²; conv1 0.5³.
  assert.deepEqual([...resolved].map(([n, m]) => [n, m.lrMult]), [
    ['conv1/kernel', 0.125], ['conv1/bias', 0.125], ['conv2/kernel', 0.25], ['conv2/bias', 0.25],
    ['fc1/kernel', 0.5], ['fc1/bias', 0.5], ['head/kernel', 10], ['head/bias', 10],
  ]);
  assert.deepEqual([...groupRates(resolved, 0.01)], [['conv1', 0.00125], ['conv2', 0.0025], ['fc1', 0.005], ['head', 0.1]]);
  const frozen = resolveMultipliers(SEED_CNN, [{ match: 'conv1/*', lrMult: 0 }], 0.5);
  assert.equal(frozen.get('conv1/kernel')!.lrMult, 0, 'frozen stays frozen');
  assert.deepEqual(resolveMultipliers(SEED_CNN, [], 1).get('conv1/kernel'), { lrMult: 1, decayMult: 1, group: 'default' }, 'γ = 1 is the plain rules');
});

test('lr-rules – a rule that decides no variable is named, with the nearest names or the earlier rule that took its matches', () => {
  assert.deepEqual(ruleProblems(SEED_CNN, [{ match: 'head/*', lrMult: 10 }, { match: '*', lrMult: 0.1 }]), []);
  const [typo] = ruleProblems(SEED_CNN, [{ match: 'heda/*', lrMult: 10 }]);
  assert.equal(typo, 'optimizer.layers[0] match "heda/*" matches no variable of the model; nearest: head/*, head/kernel, head/bias');
  const [shadowed] = ruleProblems(SEED_CNN, [{ match: '*', lrMult: 0.1 }, { match: 'head/*', lrMult: 10 }]);
  assert.match(shadowed, /^optimizer\.layers\[1\] match "head\/\*" decides no variable: head\/kernel, head\/bias already matched optimizer\.layers\[0\] "\*" \(the first match wins/);
  assert.deepEqual(ruleProblems(SEED_CNN, [{ match: 'conv1/kernel', lrMult: 0 }, { match: 'conv1/*', lrMult: 2 }]), [], 'a rule that decides some of its matches is fine');
  const rows = (rules: { match: string; lrMult: number }[]) => multiplierRows(resolveMultipliers(SEED_CNN, rules, 0.5), rules);
  assert.deepEqual(rows([{ match: 'head/*', lrMult: 10 }, { match: 'conv*', lrMult: 0 }])[0], ['conv1/kernel', '[1] conv*', '3', '0', '1', 'frozen']);
  assert.deepEqual(rows([{ match: 'head/*', lrMult: 10 }])[4], ['fc1/kernel', '(none: ×1)', '1', '0.5', '1', '']);
});

const BN_CNN = ['conv1/kernel', 'conv1_bn/gamma', 'conv1_bn/beta', 'fc1/kernel', 'head/kernel', 'head/bias', 'conv1_bn/moving_mean', 'conv1_bn/moving_variance'];

test('lr-rules – BatchNorm statistics never train (lr_mult 0 whatever the rule or decay) and are estimated unless their rule has freezeStats; they have no rate group', () => {
  const rules = [{ match: 'head/*', lrMult: 10 }, { match: 'conv1_bn/*', lrMult: 0.1, freezeStats: true }, { match: '*', lrMult: 0.1 }];
  const resolved = resolveMultipliers(BN_CNN, rules, 0.5);
  assert.deepEqual(resolved.get('conv1_bn/moving_mean'), { lrMult: 0, decayMult: 0, group: 'conv1_bn/*', statistics: 'frozen' });
  assert.equal(resolved.get('conv1_bn/gamma')!.lrMult, 0.1 * 0.5 ** 2, 'γ and β train with their rule and depth');
  assert.deepEqual(frozenStatisticsLayers(resolved), ['conv1_bn']);
  const estimated = resolveMultipliers(BN_CNN, [{ match: '*', lrMult: 2 }]);
  assert.deepEqual(estimated.get('conv1_bn/moving_variance'), { lrMult: 0, decayMult: 0, group: '*', statistics: 'estimated' });
  assert.deepEqual(frozenStatisticsLayers(estimated), []);
  assert.deepEqual([...groupRates(estimated, 0.01).keys()], ['*']);
  assert.deepEqual(multiplierRows(resolved, rules).find((r) => r[0] === 'conv1_bn/moving_mean')!.slice(3), ['0', '0', 'statistics frozen']);
});

test('lr-rules – a freezeStats rule that decides no BatchNorm statistics is named: the model\'s BatchNorm layers, or that it has none', () => {
  assert.deepEqual(ruleProblems(BN_CNN, [{ match: 'conv1_bn/gamma', lrMult: 1, freezeStats: true }]), [
    'optimizer.layers[0] match "conv1_bn/gamma" has freezeStats but decides no BatchNorm statistics (<layer>/moving_mean); BatchNorm layers: conv1_bn',
  ]);
  const [plain] = ruleProblems(SEED_CNN, [{ match: '*', lrMult: 1, freezeStats: true }]);
  assert.match(plain, /the model has no BatchNorm layer \(a zoo model gets them with model.batchNorm: true\)/);
  assert.deepEqual(ruleProblems(BN_CNN, [{ match: '*/moving_*', lrMult: 1, freezeStats: true }]), []);
});
