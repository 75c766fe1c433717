// partition and shard-optimizer – how shards split the model, and that a
// shard's update over its pieces is bit-for-bit the coordinator's update over
// whole variables.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { partition, pieceName, piecesByVariable, pieceViews } from '../core/train/partition';
import { ShardOptimizer } from '../core/train/shard-optimizer';
import { GradientAverager } from '../core/train/aggregator';
import { Sgd, Tensors } from '../core/train/optimizer';
import { Multipliers } from '../core/train/lr-rules';
import { rng } from '../core/util/rng';

/** For each element of the flat vector, how many pieces cover it. */
function coverage(sizes: number[], layout: ReturnType<typeof partition>): number[] {
  const offsets = sizes.map((_, i) => sizes.slice(0, i).reduce((a, n) => a + n, 0));
  const cover = new Array(sizes.reduce((a, n) => a + n, 0)).fill(0);
  for (const pieces of layout) for (const p of pieces) for (let e = 0; e < p.count; e++) cover[offsets[p.variable] + p.start + e]++;
  return cover;
}

const shardBytes = (layout: ReturnType<typeof partition>) => layout.map((pieces) => pieces.reduce((a, p) => a + 4 * p.count, 0));

test('partition – every element in exactly one piece, shards balanced by bytes, variables spanning partitions', () => {
  const cases: [number[], number, number][] = [
    [[1000, 7, 3000, 1], 3, 400],     // small partitions: variables cut across them
    [[10, 20, 30], 4, 1 << 20],       // fewer bytes than shards x partition: still every shard gets a share
    [[5], 8, 1 << 20],                // fewer elements than shards: some shards hold nothing
    [[6_553_600, 4096, 2_621_440, 10], 4, 4 << 20], // a 36 MiB model in 4 MiB partitions
  ];
  for (const [sizes, shards, bytes] of cases) {
    const layout = partition(sizes, shards, bytes);
    assert.equal(layout.length, shards);
    assert.ok(coverage(sizes, layout).every((c) => c === 1), `${sizes} over ${shards}: every element once`);
    const per = shardBytes(layout);
    const partitionBytes = Math.min(Math.floor(bytes / 4) * 4, 4 * Math.ceil(sizes.reduce((a, n) => a + n, 0) / shards));
    assert.ok(Math.max(...per) - Math.min(...per) <= partitionBytes, `${sizes} over ${shards}: shard bytes ${per} within one partition`);
    for (const pieces of layout) for (const p of pieces) assert.ok(4 * p.count <= Math.max(4, partitionBytes) && p.count > 0);
  }
  const big = partition([6_553_600, 4096, 2_621_440, 10], 4, 4 << 20);
  const spans = piecesByVariable(big, 4)[0];
  assert.ok(spans.length > 1 && new Set(spans.map((s) => s.shard)).size > 1, 'the 25 MiB variable is spread over several shards');
  assert.deepEqual(shardBytes(big).map((b) => Math.round(b / 2 ** 20)), [9, 9, 9, 9], '36 MiB: 9 MiB per shard');
  assert.deepEqual(partition([3, 4], 1, 1 << 20), [[{ variable: 0, start: 0, count: 3 }, { variable: 1, start: 0, count: 4 }]], 'one shard: every variable whole');
});

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
