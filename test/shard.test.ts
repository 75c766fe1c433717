// shard – a parameter shard's state machine (shard/shard.ts) driven directly:
// the coordinator's commands in through handle(), its reports out through the
// report callback, a worker's frames through the DataPlaneHost calls the data
// plane makes, parameters out through a recording TensorLink. No sockets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WireInvalid } from '../core/errors';
import { Metrics } from '../core/observe/metrics';
import { pieceName } from '../core/train/partition';
import { TensorLink } from '../core/wire/data-plane';
import { FrameKind } from '../core/wire/frames';
import { chunksOf } from '../core/wire/tensors';
import { DType, ShardCommand, ShardMessage } from '../proto/gen/tunefleet/v1/tunefleet';
import { Shard } from '../shard/shard';

// The job's own rules say ×5 for everything: the shard must apply the Welcome's multipliers (a ×2, b frozen) instead.
const JOB = JSON.stringify({ optimizer: { lr: 1, momentum: 0, weightDecay: 0, layers: [{ match: '*', lrMult: 5 }] } });
const VARIABLES = [{ name: 'a', shape: [4], lrMult: 2, decayMult: 1 }, { name: 'b', shape: [2], lrMult: 0, decayMult: 1 }];
const TICKET = new Uint8Array(32).fill(7);

/** A shard welcomed with `a` = [1, 2, 3, 4] (piece p0) and `b` = [5, 6] (p1), holding version 0. */
async function held(trainable = ['a']) {
  const reports: ShardMessage[] = [];
  const shard = new Shard(new Metrics('', 'shard'), async (m) => { reports.push(m); });
  const send = (kind: ShardCommand['kind']) => shard.handle({ kind });
  await send({ $case: 'welcome', value: { index: 0, shards: 1, jobConfigJson: JOB, variables: VARIABLES, trainable } });
  for (const value of chunksOf(pieceName(0), [4], Float32Array.of(1, 2, 3, 4))) await send({ $case: 'param', value });
  for (const value of chunksOf(pieceName(1), [2], Float32Array.of(5, 6))) await send({ $case: 'param', value });
  for (const value of chunksOf(pieceName(0), [4], new Float32Array(4))) await send({ $case: 'velocity', value });
  await send({ $case: 'hold', value: { version: 0 } });
  return { shard, send, reports };
}

/** A TensorLink that records what the shard pushes: values by (version, piece). */
function recordingLink() {
  const sent = new Map<string, Float32Array>();
  const done: number[] = [];
  const link: TensorLink = {
    sendParam: async (tensor, version, offset, bytes) => { sent.set(`${version}/${tensor}@${offset}`, new Float32Array(bytes.slice().buffer)); },
    paramsDone: async (version) => { done.push(version); },
    flushed: async () => {},
    close: () => {},
  };
  return { link, sent, done };
}

const settle = () => new Promise((r) => setImmediate(r));

test('shard – welcome, load, serve, take an upload, fold, average, apply with the Welcome\'s multipliers (not its own reading of the rules)', async () => {
  const { shard, send, reports } = await held();
  await send({ $case: 'expect', value: { workerId: 'w0', session: 1, ticket: TICKET } });
  assert.deepEqual(reports.at(-1), { kind: { $case: 'expecting', value: { workerId: 'w0' } } });
  const { link, sent, done } = recordingLink();
  shard.tickets.redeem(TICKET)!.attach(link);
  await settle();
  assert.deepEqual([...sent.get('0/0@0')!], [1, 2, 3, 4], 'a connecting worker gets every piece');
  assert.deepEqual([...sent.get('0/1@0')!], [5, 6]);
  assert.deepEqual(done, [0]);

  const g = Float32Array.of(0.5, -1, 0, 2);
  const h = { kind: FrameKind.GRADIENT, dtype: DType.FLOAT32, tensor: 0, step: 0, version: 0, offset: 0, length: 16 };
  shard.gradientTarget('w0', h).set(new Uint8Array(g.buffer));
  shard.gradientLanded('w0', h);
  assert.deepEqual(reports.at(-1), { kind: { $case: 'uploaded', value: { workerId: 'w0', step: 0, version: 0, squares: 5.25, session: 1 } } });

  await send({ $case: 'fold', value: { workerId: 'w0', examples: 4 } });
  await send({ $case: 'average', value: { step: 0 } });
  assert.deepEqual(reports.at(-1), { kind: { $case: 'averaged', value: { step: 0, squares: 5.25 } } });
  await send({ $case: 'apply', value: { version: 1, lr: 0.1 } });
  await settle();
  // a −= lr × lrMult(2) × g; b is frozen and not pushed again.
  assert.deepEqual([...sent.get('1/0@0')!], [1 - 0.1, 2 + 0.2, 3, 4 - 0.4].map(Math.fround));
  assert.equal(sent.has('1/1@0'), false);
  assert.deepEqual(done, [0, 1]);
});

test('shard – commands that break the contract are refused with WireInvalid: before a Welcome, a Fold with no upload, a Welcome whose trainable list its multipliers contradict', async () => {
  const fresh = new Shard(new Metrics('', 'shard'), async () => {});
  await assert.rejects(fresh.handle({ kind: { $case: 'hold', value: { version: 0 } } }), (e: WireInvalid) => e.reason === 'unexpected' && /before welcoming/.test(e.message));
  const { send } = await held();
  await assert.rejects(send({ $case: 'fold', value: { workerId: 'nobody', examples: 1 } }), (e: WireInvalid) => e.reason === 'unexpected' && /no complete upload/.test(e.message));
  await assert.rejects(held(['a', 'b']), (e: WireInvalid) => /trainable variables \(2\) are not those its multipliers leave unfrozen \(1\)/.test(e.message));
});

test('shard – a gradient frame for another version or another step than its upload is stale', async () => {
  const { shard, send } = await held();
  await send({ $case: 'expect', value: { workerId: 'w0', session: 1, ticket: TICKET } });
  const h = { kind: FrameKind.GRADIENT, dtype: DType.FLOAT32, tensor: 0, step: 0, version: 3, offset: 0, length: 8 };
  assert.throws(() => shard.gradientTarget('w0', h), (e: WireInvalid) => e.reason === 'stale');
  shard.gradientTarget('w0', { ...h, version: 0 }).fill(0);
  shard.gradientLanded('w0', { ...h, version: 0 });
  assert.throws(() => shard.gradientTarget('w0', { ...h, version: 0, step: 1, offset: 8 }), (e: WireInvalid) => e.reason === 'stale' && /step 1 in an upload for step 0/.test(e.message));
});
