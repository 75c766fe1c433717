// fuzz – while a real 2-worker job runs, thousands of malformed or hostile
// messages hit the coordinator: random bytes, no or wrong token, no Join,
// oversized, and — from sessions that joined and hold a slice — unknown
// names, wrong shapes and sizes, NaN/Inf, stale versions, lies about the
// slice. Then the same on the data plane: random bytes, bad, replayed and
// dead tickets, and every frame check, wrong lengths and truncated frames. The job completes with the accuracy of an undisturbed run, every
// epoch exactly once, and every bad message is rejected and counted by reason.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect, Socket } from 'node:net';
import * as tf from '@tensorflow/tfjs';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initBackend } from '../core/backend/backends';
import { REJECT_REASONS, RejectReason } from '../core/errors';
import { parseJob } from '../core/job/config';
import { EventBus } from '../core/observe/events';
import { rng } from '../core/util/rng';
import { runCoordinator } from '../coordinator/coordinator';
import { CoordinatorClient, CoordinatorMessage, DType, TensorChunk, WorkerMessage } from '../proto/gen/tunefleet/v1/tunefleet';
import { spawnWorker } from './cluster-helpers';
import { tempDir } from './fixtures';
import { auth, ended } from './grpc-clients';
import { product } from '../core/util/numbers';
import { paramSpecs } from '../core/model/params';
import { encodeHeader, FrameHeader, FrameKind } from '../core/wire/frames';

const skip = !existsSync('/usr/share/datasets/fashion-mnist') && 'apt-get install dataset-fashion-mnist';
const TOKEN = 'fuzz-token-1234';
const SESSION = '/tunefleet.v1.Coordinator/Session';

let tokenFile = '';
before(async () => {
  await initBackend('wasm');
  tokenFile = join(tempDir(), 'token');
  writeFileSync(tokenFile, TOKEN);
});

const job = (dataPlane: 'tcp' | 'grpc') => parseJob({
  name: 'fuzz', seed: 5, backend: 'wasm',
  data: { dataset: 'fashion-mnist', download: false, limitTotal: 2000, validation: 5000, normalize: 'none' },
  train: { iterations: 400, batchSize: 32, evalEvery: 400, logEvery: 1, checkpointEvery: 400, outDir: tempDir() },
  // Cosine decay to 0: at a fixed rate the end point moves about a point
  // between evaluations, so a slice reassigned under load could fail the
  // 1-point comparison on noise alone (as faults.test.ts's chaos run did).
  optimizer: { lr: 0.02, momentum: 0.9, policy: { type: 'cosine', minLr: 0 } },
  cluster: { workers: 2, host: '127.0.0.1', port: 0, tokenFile, maxRejections: 3, dataPlane },
  metrics: { port: null },
});

/** One session that sends `bytes` as its only message, unparsed. */
function rawSession(address: string, bytes: Buffer, token: string | null = TOKEN): Promise<number> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const call = client.makeBidiStreamRequest(SESSION, (b: Buffer) => b, (b: Buffer) => b, auth(token));
  const done = ended(call);
  call.write(bytes);
  return done.finally(() => client.close());
}

function typedSession(address: string, first: WorkerMessage, token: string | null = TOKEN): Promise<number> {
  const client = new CoordinatorClient(address, grpc.credentials.createInsecure());
  const call = client.session(auth(token));
  const done = ended(call);
  call.write(first);
  return done.finally(() => client.close());
}

type Attack = (shapes: Map<string, number[]>, step: { step: number; version: number; n: number }) => WorkerMessage[];
const floats = (n: number, v: number) => new Uint8Array(new Float32Array(n).fill(v).buffer);
const gradient = (name: string, shape: number[], data: Uint8Array, offset = 0): WorkerMessage =>
  ({ kind: { $case: 'gradient', value: { name, dtype: DType.FLOAT32, shape, offset, data } as TensorChunk } });
const allGradients = (shapes: Map<string, number[]>) => [...shapes].map(([name, shape]) => gradient(name, shape, floats(product(shape), 0.001)));
const stepDone = (s: { step: number; version: number; n: number }, over: Record<string, number> = {}): WorkerMessage =>
  ({ kind: { $case: 'stepDone', value: { step: s.step, version: s.version, examples: s.n, loss: 1, computeSeconds: 0.01, shardSquares: [], ...over } } });
const first = (shapes: Map<string, number[]>) => [...shapes][0];

/** Attacks from a session that joined and holds a slice, with the reason each must be rejected for. */
const IN_STEP: [RejectReason, Attack][] = [
  ['unknown-name', () => [gradient('evil/kernel', [1], floats(1, 0))]],
  ['shape', (sh) => [gradient(first(sh)[0], [...first(sh)[1], 2], floats(1, 0))]],
  ['size', (sh) => [gradient(first(sh)[0], first(sh)[1], floats(3, 0), 2)]],
  ['non-finite', (sh) => allGradients(sh).map((m, i) => (i === 0 ? gradient(first(sh)[0], first(sh)[1], floats(product(first(sh)[1]), NaN)) : m))],
  ['non-finite', (sh) => allGradients(sh).map((m, i) => (i === 1 ? gradient([...sh][1][0], [...sh][1][1], floats(product([...sh][1][1]), Infinity)) : m))],
  ['non-finite', (sh, s) => [...allGradients(sh), stepDone(s, { loss: NaN })]],
  ['non-finite', (sh, s) => [...allGradients(sh), stepDone(s, { computeSeconds: NaN })]],
  ['stale', (sh, s) => [...allGradients(sh), stepDone(s, { version: s.version - 1 })]],
  ['stale', (sh, s) => [...allGradients(sh), stepDone(s, { step: s.step + 7 })]],
  ['examples', (sh, s) => [...allGradients(sh), stepDone(s, { examples: s.n + 1 })]],
  ['incomplete', (_sh, s) => [stepDone(s)]],
  ['unexpected', () => [{ kind: { $case: 'evalDone', value: { evalId: 0, examples: 1, correct: 1, lossSum: 0 } } }]],
];

/** Join as `id`, learn the tensor shapes from the parameters sent, wait for a Step, then attack. */
function inStepSession(address: string, id: string, attack: Attack): Promise<number> {
  const client = new CoordinatorClient(address, grpc.credentials.createInsecure());
  const call = client.session(auth(TOKEN));
  const shapes = new Map<string, number[]>();
  call.on('data', (m: CoordinatorMessage) => {
    if (m.kind?.$case === 'param') shapes.set(m.kind.value.name, m.kind.value.shape);
    if (m.kind?.$case === 'step') {
      const s = m.kind.value;
      for (const msg of attack(shapes, { step: s.step, version: s.version, n: s.indices.length })) call.write(msg);
    }
  });
  const done = ended(call);
  call.write({ kind: { $case: 'join', value: { workerId: id, backend: 'fuzz', device: 'fuzz', capacity: 1 } } });
  return done.finally(() => client.close());
}

function randomNonJoin(random: () => number): Buffer {
  for (;;) {
    const bytes = Buffer.from(Array.from({ length: 1 + Math.floor(random() * 200) }, () => Math.floor(random() * 256)));
    try {
      if (WorkerMessage.decode(bytes).kind?.$case === 'join') continue;
    } catch { /* undecodable: what we want */ }
    return bytes;
  }
}

function rejectedCounts(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^tunefleet_rejected_messages_total\{[^}]*reason="([^"]+)"[^}]*\} (\d+)/gm)) out.set(m[1], Number(m[2]));
  return out;
}

async function inBatches(n: number, size: number, one: (i: number) => Promise<number>): Promise<number[]> {
  const codes: number[] = [];
  for (let i = 0; i < n; i += size) codes.push(...await Promise.all(Array.from({ length: Math.min(size, n - i) }, (_, k) => one(i + k))));
  return codes;
}

function runWithWorkers(dataPlane: 'tcp' | 'grpc', onListening?: (address: string) => void) {
  const procs: ChildProcess[] = [];
  const events = new EventBus();
  const finished = new Promise<void>((r) => events.subscribe((e) => { if (e.type === 'job.finished') r(); }));
  const result = runCoordinator(job(dataPlane), {
    events,
    onListening: (port) => {
      for (const id of ['w0', 'w1']) procs.push(spawnWorker(port, id, 'off', ['--token-file', tokenFile]));
      onListening?.(`127.0.0.1:${port}`);
    },
  });
  return { result, finished, events };
}

// The undisturbed run both fuzz tests compare with (the planes compute the same: distributed.test.ts).
let calmRun: ReturnType<typeof runWithWorkers>['result'] | null = null;
const calm = () => (calmRun ??= runWithWorkers('grpc').result);

/** A job to fuzz: `training` resolves with its address once training has begun. */
function jobToFuzz(dataPlane: 'tcp' | 'grpc') {
  let begun!: (address: string) => void;
  const training = new Promise<string>((r) => { begun = r; });
  let address = '';
  const run = runWithWorkers(dataPlane, (a) => { address = a; });
  run.events.subscribe((e) => { if (e.type === 'progress' && e.iteration === 1) begun(address); });
  return { run, training };
}

test('fuzz – thousands of hostile messages during a real job (tensors on gRPC): each rejected and counted; the job completes as if they never came', { skip, timeout: 300_000 }, async (t) => {
  const undisturbed = await calm();
  const random = rng(99);
  const { run, training } = jobToFuzz('grpc');
  const fuzzing = training.then(async (address) => {
    const sent = new Map<string, number>();
    const codes = new Map<string, number[]>();
    const note = (reason: string, got: number[]) => {
      sent.set(reason, (sent.get(reason) ?? 0) + got.length);
      codes.set(reason, [...(codes.get(reason) ?? []), ...got]);
    };
    // Random bytes: undecodable, or (rarely) a decodable message that is not
    // a Join (a random Join would be a worker that never answers: the deadline test's case).
    const garbage = await inBatches(1500, 50, () => rawSession(address, randomNonJoin(random)));
    note('undecodable|no-join', garbage);
    const join: WorkerMessage = { kind: { $case: 'join', value: { workerId: '', backend: 'x', device: 'x', capacity: 1 } } };
    note('auth', await inBatches(300, 50, (i) => typedSession(address, join, i % 2 ? null : 'wrong-token')));
    note('no-join', await inBatches(200, 50, () => typedSession(address, stepDone({ step: 1, version: 1, n: 1 }))));
    note('oversized', await inBatches(4, 2, () => rawSession(address, Buffer.alloc(9 << 20, 1))));
    // Over twice the limit gRPC refuses it from the length prefix, before our code (not counted).
    codes.set('beyond-grpc-limit', [await rawSession(address, Buffer.alloc(17 << 20, 1))]);
    for (let i = 0; i < IN_STEP.length * 3; i++) {
      const [reason, attack] = IN_STEP[i % IN_STEP.length];
      note(reason, [await inStepSession(address, `fuzz-${i}`, attack)]);
    }
    // A repeat offender: three rejected sessions, then refused at Join.
    for (let i = 0; i < 5; i++) note(i < 3 ? 'unexpected' : 'refused', [await inStepSession(address, 'evil', IN_STEP[IN_STEP.length - 1][1])]);
    return { sent, codes };
  });
  let finishedFirst = false;
  void run.finished.then(() => { finishedFirst = true; });
  const { sent, codes } = await fuzzing;
  assert.equal(finishedFirst, false, 'the fuzzing ended while the job was still running');
  const hurt = await run.result;

  const total = [...sent.values()].reduce((a, b) => a + b, 0);
  assert.ok(total >= 2000, `${total} hostile messages`);
  const counted = rejectedCounts(await hurt.cluster.metrics.text());
  const get = (r: string) => counted.get(r) ?? 0;
  assert.equal(get('undecodable') + get('no-join'), sent.get('undecodable|no-join')! + sent.get('no-join')!, 'random bytes and messages before Join');
  // Every other reason of the vocabulary: counted exactly as often as sent (0 for those never sent, such as 'internal').
  for (const reason of Object.keys(REJECT_REASONS) as RejectReason[]) {
    if (reason === 'undecodable' || reason === 'no-join') continue;
    assert.equal(get(reason), sent.get(reason) ?? 0, `rejected for ${reason}: counted ${get(reason)}, sent ${sent.get(reason) ?? 0}`);
  }
  for (const reason of counted.keys()) assert.ok(reason in REJECT_REASONS, `counted under '${reason}', which is not in the vocabulary`);
  assert.equal([...counted.values()].reduce((a, b) => a + b, 0), total, 'every bad message counted once, nothing else');
  const S = grpc.status;
  assert.deepEqual(new Set(codes.get('auth')), new Set([S.UNAUTHENTICATED]));
  assert.deepEqual(new Set(codes.get('oversized')), new Set([S.RESOURCE_EXHAUSTED]));
  assert.deepEqual(codes.get('beyond-grpc-limit'), [S.RESOURCE_EXHAUSTED]);
  assert.deepEqual(new Set(codes.get('stale')), new Set([S.INVALID_ARGUMENT]));
  assert.deepEqual(new Set(codes.get('refused')), new Set([S.PERMISSION_DENIED]));

  const [a, b] = [undisturbed, hurt].map((r) => r.curve[r.curve.length - 1].valAccuracy);
  assert.ok(a > 0.6, `the undisturbed run learned (${a})`);
  t.diagnostic(`validation accuracy: undisturbed ${a}, fuzzed ${b}`);
  assert.ok(Math.abs(a - b) <= 0.01, `accuracy ${b} vs undisturbed ${a}`);
  assert.equal(hurt.cluster.ledger.report(5).complete, true, 'the last finished epoch exactly once');
  assert.ok(hurt.cluster.ledger.snapshot().every((e) => !e.workerId.startsWith('fuzz') && e.workerId !== 'evil'), 'no hostile slice was accepted');
});

// ---- the data plane: frames ------------------------------------------------

interface InStep { sock: Socket; call: grpc.ClientDuplexStream<WorkerMessage, CoordinatorMessage>; sizes: number[]; step: number; version: number; n: number }
type FrameAttack = (s: InStep) => void;
const frame = (h: Partial<FrameHeader> & { kind: FrameKind }, payload: Uint8Array = new Uint8Array(0)) => Buffer.concat([encodeHeader({ length: payload.length, ...h }), payload]);
const gradientFrame = (s: InStep, tensor: number, values: Uint8Array, over: Partial<FrameHeader> = {}) =>
  frame({ kind: FrameKind.GRADIENT, dtype: DType.FLOAT32, tensor, step: s.step, version: s.version, ...over }, values);
const allFrames = (s: InStep, poison?: number) => Buffer.concat(s.sizes.map((n, i) => gradientFrame(s, i, floats(n, i === poison ? NaN : 0.001))));

/** Attacks from a session that joined, opened its data connection and holds a slice, with the reason each must be rejected for. */
const FRAME_ATTACKS: [RejectReason, FrameAttack][] = [
  ['unknown-name', (s) => s.sock.write(gradientFrame(s, 999, floats(1, 0)))],
  ['dtype', (s) => s.sock.write(gradientFrame(s, 0, floats(1, 0), { dtype: 9 as DType }))],
  ['size', (s) => s.sock.write(gradientFrame(s, 0, floats(1, 0), { offset: 2 }))],
  ['size', (s) => s.sock.write(gradientFrame(s, 0, floats(s.sizes[0] + 1, 0)))],
  ['oversized', (s) => s.sock.write(encodeHeader({ kind: FrameKind.GRADIENT, dtype: DType.FLOAT32, length: (64 << 20) + 4 }))],
  ['undecodable', (s) => s.sock.write(frame({ kind: 99 as FrameKind }))],
  ['non-finite', (s) => s.sock.write(allFrames(s, 1))],
  ['stale', (s) => s.sock.write(gradientFrame(s, 0, floats(s.sizes[0], 0), { step: s.step + 7 }))],
  ['unexpected', (s) => s.sock.write(frame({ kind: FrameKind.PARAM, dtype: DType.FLOAT32 }, floats(1, 0)))],
  ['unexpected', (s) => s.call.write(gradient('conv1/kernel', [3, 3, 1, 16], floats(144, 0)))],
  ['examples', (s) => { s.sock.write(allFrames(s)); s.call.write(stepDone(s, { examples: s.n + 1 })); }],
  ['truncated', (s) => { s.sock.write(gradientFrame(s, 2, floats(s.sizes[2], 0)).subarray(0, 40 + 2 * s.sizes[2])); setTimeout(() => s.sock.destroy(), 50); }],
];

function connectData(port: number, bytes: Uint8Array): Socket {
  const sock = connect(port, '127.0.0.1');
  sock.on('error', () => {});
  sock.resume(); // the parameters the coordinator sends are not read
  sock.write(bytes);
  return sock;
}

const hello = (ticket: Uint8Array) => frame({ kind: FrameKind.HELLO }, ticket);
const closed = (sock: Socket) => new Promise((r) => (sock.destroyed ? r(null) : sock.once('close', r)));

/**
 * Join as `id`, open the data connection with the Welcome's ticket, wait for
 * a Step, present the same ticket again on a second connection (a replay:
 * refused), then attack on the data connection.
 */
function inStepFrameSession(address: string, id: string, attack: FrameAttack): Promise<number> {
  const client = new CoordinatorClient(address, grpc.credentials.createInsecure());
  const call = client.session(auth(TOKEN));
  let sock: Socket | null = null;
  let sizes: number[] = [];
  let replay = () => Promise.resolve(null as unknown);
  call.on('data', async (m: CoordinatorMessage) => {
    if (m.kind?.$case === 'welcome') {
      const w = m.kind.value;
      const model = await tf.models.modelFromJSON({ modelTopology: JSON.parse(w.modelTopologyJson) } as tf.io.ModelJSON);
      const shapes = new Map(paramSpecs(model).map((p) => [p.name, p.shape]));
      model.dispose();
      sizes = w.trainable.map((name) => product(shapes.get(name)!));
      sock = connectData(w.dataPort, hello(w.dataTicket));
      replay = () => closed(connectData(w.dataPort, hello(w.dataTicket)));
    }
    if (m.kind?.$case === 'step') {
      const step = m.kind.value;
      await replay(); // the parameters came on `sock` before this Step: the ticket is spent
      attack({ sock: sock!, call, sizes, step: step.step, version: step.version, n: step.indices.length });
    }
  });
  const done = ended(call);
  call.write({ kind: { $case: 'join', value: { workerId: id, backend: 'fuzz', device: 'fuzz', capacity: 1 } } });
  return done.finally(() => { sock?.destroy(); client.close(); });
}

/** A ticket whose session ended before using it. */
async function deadTicket(address: string): Promise<{ port: number; ticket: Uint8Array }> {
  const client = new CoordinatorClient(address, grpc.credentials.createInsecure());
  const call = client.session(auth(TOKEN));
  const welcome = new Promise<{ port: number; ticket: Uint8Array }>((r) => call.on('data', (m: CoordinatorMessage) => {
    if (m.kind?.$case === 'welcome') r({ port: m.kind.value.dataPort, ticket: m.kind.value.dataTicket });
  }));
  const done = ended(call);
  call.write({ kind: { $case: 'join', value: { workerId: '', backend: 'fuzz', device: 'fuzz', capacity: 1 } } });
  const t = await welcome;
  call.end();
  await done;
  client.close();
  return t;
}

test('fuzz – hostile frames on the data plane during a real job: bad, replayed and dead tickets, random bytes, every frame check; each counted, the job unaffected', { skip, timeout: 300_000 }, async (t) => {
  const undisturbed = await calm();
  const random = rng(7);
  const { run, training } = jobToFuzz('tcp');
  const sent = new Map<string, number>();
  const note = (reason: string, n = 1) => sent.set(reason, (sent.get(reason) ?? 0) + n);
  const fuzzing = training.then(async (address) => {
    const dataPort = (await deadTicket(address)).port;
    // Anything but a HELLO with a live ticket first: random bytes, random tickets, dead tickets.
    for (let i = 0; i < 400; i += 50) {
      await Promise.all(Array.from({ length: 50 }, () => closed(connectData(dataPort, Buffer.from(Array.from({ length: 1 + Math.floor(random() * 200) }, () => Math.floor(random() * 256)))).end())));
    }
    note('bad-ticket', 400);
    await Promise.all(Array.from({ length: 100 }, () => closed(connectData(dataPort, hello(randomBytes(32))))));
    note('bad-ticket', 100);
    for (let i = 0; i < 5; i++) {
      const t = await deadTicket(address);
      await closed(connectData(t.port, hello(t.ticket)));
    }
    note('bad-ticket', 5);
    for (let i = 0; i < FRAME_ATTACKS.length * 2; i++) {
      const [reason, attack] = FRAME_ATTACKS[i % FRAME_ATTACKS.length];
      await inStepFrameSession(address, `frames-${i}`, attack);
      note(reason);
      note('bad-ticket'); // its replayed ticket
    }
  });
  let finishedFirst = false;
  void run.finished.then(() => { finishedFirst = true; });
  await fuzzing;
  assert.equal(finishedFirst, false, 'the fuzzing ended while the job was still running');
  const hurt = await run.result;

  const counted = rejectedCounts(await hurt.cluster.metrics.text());
  for (const reason of Object.keys(REJECT_REASONS) as RejectReason[]) {
    assert.equal(counted.get(reason) ?? 0, sent.get(reason) ?? 0, `rejected for ${reason}: counted ${counted.get(reason) ?? 0}, sent ${sent.get(reason) ?? 0}`);
  }
  assert.equal(hurt.cluster.tickets.size, 0, 'no ticket outlives its session');
  const [a, b] = [undisturbed, hurt].map((r) => r.curve[r.curve.length - 1].valAccuracy);
  t.diagnostic(`validation accuracy: undisturbed ${a}, fuzzed ${b}`);
  assert.ok(Math.abs(a - b) <= 0.01, `accuracy ${b} vs undisturbed ${a}`);
  assert.equal(hurt.cluster.ledger.report(5).complete, true, 'the last finished epoch exactly once');
  assert.ok(hurt.cluster.ledger.snapshot().every((e) => e.workerId === 'w0' || e.workerId === 'w1'), 'no hostile slice was accepted');
});
