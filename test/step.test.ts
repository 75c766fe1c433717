// The coordinator's step (coordinator/step.ts, through the Cluster that runs
// it) against every fault mode of its failure policy, with fake workers and a
// fake clock: no gRPC, no tfjs, no sleeping. Whatever fails, the step's
// gradient must be the mean over exactly the global batch, computed here by
// hand, and the ledger must hold every example once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DeadlineExceeded, JobDiverged, WireInvalid } from '../core/errors';
import { FakeClock } from './fake-clock';
import { Behaviour, fakeCluster, FakeWorker, joinDataWorker, joinWorker, settle } from './fleet-fakes';

// The global batch: examples 0..7. Its mean gradient, by hand (see sliceGradient):
// kernel = [mean k, mean k²] = [28/8, 140/8], bias = [mean (10 − k)] = [52/8]; loss = mean k.
const BATCH = Uint32Array.from({ length: 8 }, (_, i) => i);
const EPOCHS = new Uint32Array(8);
const EXPECTED = { kernel: [3.5, 17.5], bias: [6.5], loss: 3.5 };

interface FaultCase {
  name: string;
  workers: Behaviour[];
  /** Joins after the first assignments went out (with their behaviour). */
  joins?: Behaviour[];
  /** Workers that must have been dropped with this error. */
  dropped?: { index: number; error: new (...a: never[]) => Error }[];
}

const CASES: FaultCase[] = [
  { name: 'none', workers: ['ok', 'ok', 'ok', 'ok'] },
  { name: 'fail before sending', workers: ['ok', 'fail-before-sending', 'ok', 'ok'] },
  { name: 'fail mid-gradient', workers: ['ok', 'ok', 'fail-mid-gradient', 'ok'] },
  { name: 'fail after StepDone', workers: ['fail-after-done', 'ok', 'ok', 'ok'] },
  { name: 'straggle past the deadline', workers: ['ok', 'straggle', 'ok', 'ok'], dropped: [{ index: 1, error: DeadlineExceeded }] },
  { name: 'a NaN gradient (bad message)', workers: ['ok', 'ok', 'ok', 'nan-gradient'], dropped: [{ index: 3, error: WireInvalid }] },
  { name: 'two workers fail in the same round', workers: ['fail-before-sending', 'ok', 'fail-mid-gradient', 'ok'] },
  { name: 'three workers fail in the same round', workers: ['fail-before-sending', 'fail-mid-gradient', 'ok', 'fail-before-sending'] },
  { name: 'a straggler and a failure in the same round', workers: ['straggle', 'fail-before-sending', 'ok', 'ok'], dropped: [{ index: 0, error: DeadlineExceeded }] },
  { name: 'a join during the round', workers: ['ok', 'ok', 'ok', 'ok'], joins: ['ok'] },
  { name: 'every worker fails, then one joins and takes every slice', workers: ['fail-before-sending', 'fail-mid-gradient', 'fail-before-sending', 'fail-before-sending'], joins: ['ok'] },
  { name: 'a single worker straggles, then one joins', workers: ['straggle'], joins: ['ok'], dropped: [{ index: 0, error: DeadlineExceeded }] },
];

/** Run one step over `workers`, acting for them until it completes (moving the clock only when nothing else can happen). */
async function runStep(c: FaultCase) {
  const clock = new FakeClock();
  const cluster = fakeCluster(clock);
  const workers: FakeWorker[] = c.workers.map((b, i) => joinWorker(cluster, `w${i}`, b));
  let finished = false;
  const result = cluster.gradients(0, BATCH, EPOCHS).finally(() => { finished = true; });
  let joined = false;
  for (let round = 0; round < 50 && !finished; round++) {
    await settle();
    const acted = workers.map((w) => w.act()).some(Boolean);
    if (!joined && c.joins) {
      joined = true;
      c.joins.forEach((b, i) => workers.push(joinWorker(cluster, `joined${i}`, b)));
    } else if (!acted) {
      clock.advance(11_000); // past the 10 s slice deadline
    }
  }
  assert.ok(finished, `${c.name}: the step finished`);
  return { mean: await result, cluster, workers, clock };
}

for (const c of CASES) {
  test(`step – fault mode "${c.name}": the mean over exactly the global batch, every example once`, async () => {
    const { mean, cluster, workers, clock } = await runStep(c);
    const close = (got: Float32Array, want: number[], what: string) =>
      want.forEach((v, i) => assert.ok(Math.abs(got[i] - v) <= 1e-6 * Math.abs(v), `${what}[${i}] = ${got[i]}, by hand ${v}`));
    close(mean.grads.get('dense/kernel')!, EXPECTED.kernel, 'kernel');
    close(mean.grads.get('dense/bias')!, EXPECTED.bias, 'bias');
    assert.ok(Math.abs(mean.loss - EXPECTED.loss) < 1e-6, `loss ${mean.loss}`);
    const report = cluster.ledger.report(0);
    assert.equal(report.complete, true, 'every example of the batch exactly once');
    for (const e of report.entries) {
      const w = workers.find((x) => x.id === e.workerId)!;
      assert.ok(['ok', 'fail-after-done'].includes(w.behaviour), `${e.workerId} (${w.behaviour}) cannot have computed a slice`);
    }
    for (const w of workers) {
      for (const [name, n] of w.paramSends()) assert.equal(n, 1, `${w.id} got ${name} ${n} times at one version`);
    }
    for (const d of c.dropped ?? []) assert.ok(workers[d.index].failedWith instanceof d.error, `w${d.index} ended with ${workers[d.index].failedWith}`);
    assert.equal(clock.pending, 0, 'no deadline left running after the step');
  });
}

test('step – data plane: two slices answered at once, every frame before any StepDone or every StepDone before any frame: the same mean', async () => {
  for (const order of ['frames-first', 'stepdone-first'] as const) {
    const cluster = fakeCluster(new FakeClock());
    const [w1, w0] = [joinWorker(cluster, 'w1', 'fail-before-sending'), joinDataWorker(cluster, 'w0', order)];
    const step = cluster.gradients(0, BATCH, EPOCHS);
    await settle();
    w1.act(); // lost: its slice goes to w0, which then holds two
    await settle();
    assert.equal(w0.inbox.filter((m) => m.kind?.$case === 'step').length, 2);
    w0.act();
    const mean = await step;
    assert.deepEqual([...mean.grads.get('dense/kernel')!], EXPECTED.kernel, order);
    assert.deepEqual([...mean.grads.get('dense/bias')!], EXPECTED.bias, order);
    assert.equal(cluster.ledger.report(0).complete, true);
    assert.equal(w0.failedWith, null, `${order}: w0 was not dropped`);
  }
});

test('step – a StepDone is checked before anything changes: stale, non-finite, wrong count, incomplete, unassigned', async () => {
  const clock = new FakeClock();
  const cluster = fakeCluster(clock);
  joinWorker(cluster, 'w0', 'straggle');
  const step = cluster.gradients(3, BATCH, EPOCHS);
  await settle();
  const good = { step: 3, version: 0, examples: 8, loss: 1, computeSeconds: 0.5, shardSquares: [] as number[] };
  const bad: [Partial<typeof good>, string][] = [
    [{ step: 2 }, 'stale'], [{ version: 1 }, 'stale'], [{ loss: NaN }, 'non-finite'],
    [{ computeSeconds: NaN }, 'non-finite'], [{ computeSeconds: Infinity }, 'non-finite'], [{ computeSeconds: -1 }, 'non-finite'],
    [{ examples: 7 }, 'examples'], [{}, 'incomplete'], [{ shardSquares: [1] }, 'incomplete'],
  ];
  for (const [change, reason] of bad) {
    assert.throws(() => cluster.steps.onStepDone('w0', { ...good, ...change }), (e: WireInvalid) => e.reason === reason, JSON.stringify(change));
  }
  assert.throws(() => cluster.evaluations.onEvalDone('w0', { evalId: 1, examples: 8, correct: 1, lossSum: 1 }), (e: WireInvalid) => e.reason === 'unexpected');
  cluster.leave('w0', 'test over');
  const w1 = joinWorker(cluster, 'w1');
  await settle();
  w1.act();
  assert.ok(Math.abs((await step).loss - EXPECTED.loss) < 1e-6, 'the slice went to the next worker, unharmed by the rejected messages');
});

/** Drive `work` to completion: act for every worker, move the clock past the deadline when nothing else happens. */
async function drive<T>(work: Promise<T>, workers: FakeWorker[], clock: FakeClock): Promise<T> {
  let finished = false;
  void work.finally(() => { finished = true; });
  for (let i = 0; i < 50 && !finished; i++) {
    await settle();
    if (!workers.map((w) => w.act()).some(Boolean)) clock.advance(11_000);
  }
  return work;
}

test('evaluation – workers lost or straggling mid-evaluation: the same accuracy and loss over every example', async () => {
  for (const behaviours of [['ok', 'ok', 'ok'], ['ok', 'fail-before-sending', 'straggle'], ['fail-before-sending', 'ok', 'fail-after-done']] as Behaviour[][]) {
    const clock = new FakeClock();
    const cluster = fakeCluster(clock);
    const workers = behaviours.map((b, i) => joinWorker(cluster, `w${i}`, b));
    const r = await drive(cluster.evaluate(), workers, clock);
    assert.deepEqual(r, { correct: 4, accuracy: 0.5, loss: 3.5, count: 8 }, behaviours.join(','));
  }
});

test('evaluation – with fewer examples than workers, the others sit it out', async () => {
  const clock = new FakeClock();
  const cluster = fakeCluster(clock, 1);
  const workers = ['ok', 'ok', 'ok'].map((b, i) => joinWorker(cluster, `w${i}`, b as Behaviour));
  const r = await drive(cluster.evaluate(), workers, clock);
  assert.deepEqual(r, { correct: 1, accuracy: 1, loss: 0, count: 1 });
  const evals = workers.map((w) => w.inbox.filter((m) => m.kind?.$case === 'eval').length);
  assert.deepEqual(evals, [1, 0, 0], 'one Eval, to the first worker');
});

test('evaluation – an EvalDone must name this evaluation and add up', async () => {
  const clock = new FakeClock();
  const cluster = fakeCluster(clock);
  joinWorker(cluster, 'w0', 'straggle');
  const evaluation = cluster.evaluate();
  await settle();
  const good = { evalId: 1, examples: 8, correct: 3, lossSum: 2 };
  const bad: [Partial<typeof good>, string][] = [
    [{ evalId: 0 }, 'stale'], [{ examples: 9 }, 'examples'], [{ correct: 9, examples: 8 }, 'examples'],
    [{ lossSum: NaN }, 'non-finite'], [{ lossSum: -1 }, 'non-finite'],
  ];
  for (const [change, reason] of bad) {
    assert.throws(() => cluster.evaluations.onEvalDone('w0', { ...good, ...change }), (e: WireInvalid) => e.reason === reason, JSON.stringify(change));
  }
  cluster.evaluations.onEvalDone('w0', good);
  assert.deepEqual(await evaluation, { correct: 3, accuracy: 3 / 8, loss: 2 / 8, count: 8 });
  const second = cluster.evaluate();
  await settle();
  assert.throws(() => cluster.evaluations.onEvalDone('w0', good), (e: WireInvalid) => e.reason === 'stale', "the first evaluation's id is stale in the second");
  cluster.evaluations.onEvalDone('w0', { ...good, evalId: 2 });
  await second;
});

test('step – the same slice non-finite twice is the model, not the workers: the step fails with JobDiverged', async () => {
  const clock = new FakeClock();
  const cluster = fakeCluster(clock);
  const first = [joinWorker(cluster, 'w0', 'nan-gradient'), joinWorker(cluster, 'w1', 'nan-gradient')];
  const step = cluster.gradients(4, BATCH, EPOCHS);
  step.catch(() => {});
  for (let i = 0; i < 3; i++) { await settle(); first.forEach((w) => w.act()); }
  assert.ok(first.every((w) => w.failedWith instanceof WireInvalid), 'each first report is blamed on its worker');
  const rejoined = joinWorker(cluster, 'w0', 'nan-gradient'); // a worker reconnects and is handed the orphaned slices
  await settle();
  rejoined.act();
  await assert.rejects(step, (e: Error) => e instanceof JobDiverged && /step 4: dense\/bias: gradient holds NaN or Inf for the same 4 examples twice: the model has diverged\. Lower optimizer\.lr/.test(e.message));
  assert.equal(cluster.ledger.report(0).examplesUsed, 0, 'nothing of the step was recorded');
});

test('step – a non-finite loss counts the same way: once the worker, twice the model', async () => {
  const clock = new FakeClock();
  const cluster = fakeCluster(clock);
  joinWorker(cluster, 'w0', 'straggle');
  const step = cluster.gradients(0, BATCH, EPOCHS);
  step.catch(() => {});
  await settle();
  const done = { step: 0, version: 0, examples: 8, loss: NaN, computeSeconds: 0.1, shardSquares: [] };
  assert.throws(() => cluster.steps.onStepDone('w0', done), (e: WireInvalid) => e.reason === 'non-finite');
  assert.throws(() => cluster.steps.onStepDone('w0', done), (e: Error) => e instanceof JobDiverged);
  await assert.rejects(step, JobDiverged);
});

test('step – with three or more workers a poisoned (finite, absurd) gradient is an outlier: refused, its slice redone, the mean unharmed', async () => {
  const clock = new FakeClock();
  const cluster = fakeCluster(clock, 8, { train: { spikeGuard: { factor: 10, window: 50, warmup: 4 } } });
  const workers = ['ok', 'ok', 'ok', 'ok'].map((b, i) => joinWorker(cluster, `w${i}`, b as Behaviour));
  for (let step = 0; step < 2; step++) await drive(cluster.gradients(step, BATCH, EPOCHS), workers, clock); // 8 honest norms: warm
  workers[2].behaviour = 'poison';
  const mean = await drive(cluster.gradients(2, BATCH, EPOCHS), workers, clock);
  assert.ok(workers[2].failedWith instanceof WireInvalid && workers[2].failedWith.reason === 'outlier', String(workers[2].failedWith));
  assert.ok(Math.abs(mean.grads.get('dense/kernel')![1] - EXPECTED.kernel[1]) < 1e-5, 'the mean over the batch, without the poison');
  assert.match(await cluster.metrics.text(), /tunefleet_rejected_messages_total\{[^}]*reason="outlier"[^}]*\} 1/);
});
