// shard-optimizer – a shard's mean and SGD update over its pieces are
// bit-for-bit the coordinator's over whole variables.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { partition, pieceName, pieceViews } from '../core/train/partition';
import { ShardOptimizer } from '../core/train/shard-optimizer';
import { Tensors } from '../core/util/tensors';
import { GradientAverager } from '../core/train/aggregator';
import { Sgd } from '../core/train/optimizer';
import { Multipliers } from '../core/train/lr-rules';
import { rng } from '../core/util/rng';

test('shard-optimizer – mean and SGD over pieces are bit-identical to the whole-variable aggregator and Sgd', () => {
  const rand = rng(7);
  const variables = [{ name: 'conv/kernel', shape: [37, 11] }, { name: 'conv/bias', shape: [11] }, { name: 'frozen/w', shape: [13] }, { name: 'head/kernel', shape: [101] }];
  const multipliers = new Map<string, Multipliers>([
    ['conv/kernel', { lrMult: 0.1, decayMult: 1 }], ['conv/bias', { lrMult: 0.2, decayMult: 0 }],
    ['frozen/w', { lrMult: 0, decayMult: 1 }], ['head/kernel', { lrMult: 10, decayMult: 1 }],
  ]);
  const options = { momentum: 0.9, nesterov: true, weightDecay: 5e-4 };
  const trainable = variables.filter((v) => v.name !== 'frozen/w');
  const fill = (n: number, scale: number) => Float32Array.from({ length: n }, () => (rand() * 2 - 1) * scale);
  const size = (v: { shape: number[] }) => v.shape.reduce((a, b) => a * b, 1);

  const whole: Tensors = new Map(variables.map((v) => [v.name, fill(size(v), 1)]));
  const sgd = new Sgd(options, multipliers);
  const layout = partition(variables.map(size), 3, 64); // 16-element partitions: every variable is cut
  const shards = layout.map((pieces) => new ShardOptimizer(pieces, variables, multipliers, options));
  shards.forEach((s, i) => { for (const [name, view] of pieceViews(layout[i], variables, whole)) s.params.get(name)!.set(view); });

  for (let step = 0; step < 5; step++) {
    const contributions = [3, 5, 1].map((examples) => ({ examples, grads: new Map(trainable.map((v) => [v.name, fill(size(v), 1e-2)])) as Tensors }));
    const averager = new GradientAverager(trainable);
    for (const c of contributions) averager.add(c.grads, c.examples, 0);
    const { grads } = averager.take();
    let squares = 0;
    shards.forEach((s, i) => {
      for (const c of contributions) s.fold(pieceViews(layout[i], variables, c.grads), c.examples);
      squares += s.average();
      s.apply(0.05 * (step + 1));
    });
    sgd.step(whole, grads, 0.05 * (step + 1));
    const wholeSquares = [...grads.values()].reduce((a, g) => a + g.reduce((b, x) => b + x * x, 0), 0);
    assert.ok(Math.abs(squares - wholeSquares) <= 1e-12 * wholeSquares, 'the shards\' Σg² add up to the whole mean\'s');
  }
  shards.forEach((s, i) => {
    for (const [name, view] of pieceViews(layout[i], variables, whole)) assert.deepEqual(s.params.get(name), view, `${name} after 5 steps`);
  });
  // Momentum buffers too, piece by piece against the whole variable's.
  shards.forEach((s, i) => layout[i].forEach((p, k) => {
    const name = variables[p.variable].name;
    if (name === 'frozen/w') return assert.equal(s.velocity.has(pieceName(k)), false, 'a frozen piece has no momentum');
    assert.deepEqual(s.velocity.get(pieceName(k)), sgd.velocity.get(name)!.subarray(p.start, p.start + p.count));
  }));
});
