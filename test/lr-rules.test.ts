// lr-rules – per-variable multipliers from ordered globs, resolved once, and
// the layer groups the learning-rate metric reports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { groupRates, multipliersFor, resolveMultipliers } from '../core/train/lr-rules';

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
