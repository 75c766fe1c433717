// partition – how shards split the model: every element in exactly one piece,
// shards balanced by bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { partition, piecesByVariable } from '../core/train/partition';

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
