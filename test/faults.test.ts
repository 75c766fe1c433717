// faults – real coordinator, real worker processes, real signals, on real
// Fashion-MNIST: a straggler (SIGSTOP) dropped at the step deadline and back
// after SIGCONT; the same as an evaluation starts; the coordinator SIGKILLed
// and restarted, ending with the parameters of a run that never stopped; chaos
// (random SIGKILLs and joins) with every epoch used exactly once and the
// accuracy of an undisturbed run.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initBackend } from '../core/backend/backends';
import { parseJob } from '../core/job/config';
import { EventBus, TrainingEvent } from '../core/observe/events';
import { Ledger } from '../core/train/ledger';
import { rng } from '../core/util/rng';
import { Cluster } from '../coordinator/cluster';
import { exitOf, freePort, runJob, running, spawnCoordinator, spawnWorker } from './cluster-helpers';
import { tempDir } from './fixtures';

const skip = !existsSync('/usr/share/datasets/fashion-mnist') && 'apt-get install dataset-fashion-mnist';
const TRAIN_EXAMPLES = 2000;

before(async () => { await initBackend('wasm'); });

function fashionJob(train: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return parseJob({
    name: 'faults', seed: 3, backend: 'wasm',
    data: { dataset: 'fashion-mnist', download: false, limitTotal: TRAIN_EXAMPLES, validation: 5000, normalize: 'none' },
    train: { batchSize: 64, logEvery: 1, outDir: tempDir(), ...train },
    optimizer: { lr: 0.02, momentum: 0.9 },
    metrics: { port: null },
    ...extra,
  });
}

/** Check each epoch the moment the next one starts (the ledger keeps only the last two). */
function epochChecker(cluster: () => Cluster | null) {
  const complete: boolean[] = [];
  return {
    complete,
    onEvent(e: TrainingEvent) {
      const c = cluster();
      if (e.type !== 'progress' || !c) return;
      while (c.ledger.report(complete.length + 1).examplesUsed > 0) complete.push(c.ledger.report(complete.length).complete);
    },
  };
}

test('faults – a straggler (SIGSTOP) is dropped at the step deadline, its slice redone by the other; after SIGCONT it joins again', { skip, timeout: 180_000 }, async () => {
  const cfg = fashionJob({ iterations: 120, evalEvery: 120, checkpointEvery: 120 }, { cluster: { sliceDeadline: { minSeconds: 1, factor: 5 } } });
  const events = new EventBus();
  const seen: TrainingEvent[] = [];
  let procs: ChildProcess[] = [];
  let cluster: Cluster | null = null;
  const epochs = epochChecker(() => cluster);
  events.subscribe((e) => {
    seen.push(e);
    epochs.onEvent(e);
    if (e.type === 'progress' && e.iteration === 20) procs[1].kill('SIGSTOP');
    if (e.type === 'worker.lost' && e.worker === 'w1') procs[1].kill('SIGCONT');
  });
  const { curve } = await runJob(cfg, 2, (c, _port, p) => { cluster = c; procs = p; }, { events });
  const lost = seen.find((e) => e.type === 'worker.lost' && e.worker === 'w1');
  assert.match(lost && 'reason' in lost ? lost.reason : '', /deadline: no result within the step deadline of \d+\.\d s/);
  const rejoined = seen.filter((e) => e.type === 'worker.joined' && e.worker === 'w1').length;
  assert.equal(rejoined, 2, 'w1 joined, was dropped, and joined again by itself');
  assert.equal(curve[curve.length - 1].iteration, 120, 'the job completed');
  assert.ok(epochs.complete.length >= 3 && epochs.complete.every(Boolean), `every finished epoch exactly once: ${epochs.complete}`);
});

test('faults – a worker that hangs (SIGSTOP) as an evaluation starts is dropped at the evaluation deadline; the other finishes it', { skip, timeout: 180_000 }, async () => {
  const cfg = fashionJob({ iterations: 40, evalEvery: 20, checkpointEvery: 40 }, {
    data: { dataset: 'fashion-mnist', download: false, limitTotal: TRAIN_EXAMPLES, validation: 1000, normalize: 'none' },
    cluster: { sliceDeadline: { minSeconds: 1, factor: 5 } },
  });
  const seen: TrainingEvent[] = [];
  let procs: ChildProcess[] = [];
  const events = new EventBus();
  events.subscribe((e) => {
    seen.push(e);
    // Progress for iteration 20 is emitted just before its evaluation is handed out.
    if (e.type === 'progress' && e.iteration === 20) procs[1].kill('SIGSTOP');
    if (e.type === 'worker.lost' && e.worker === 'w1') procs[1].kill('SIGCONT');
  });
  const { curve } = await runJob(cfg, 2, (_c, _port, p) => { procs = p; }, { events });
  const lost = seen.find((e) => e.type === 'worker.lost' && e.worker === 'w1');
  assert.match(lost && 'reason' in lost ? lost.reason : '', /deadline: no result within the evaluation deadline of \d+\.\d s/);
  assert.deepEqual(curve.map((p) => p.iteration), [20, 40], 'both evaluations completed');
  assert.equal(seen.filter((e) => e.type === 'worker.joined' && e.worker === 'w1').length, 2, 'w1 joined again after SIGCONT');
  // The same 20 steps undisturbed: the same parameters, so the same accuracy over the whole validation set.
  const undisturbed = await runJob({ ...cfg, train: { ...cfg.train, iterations: 20, outDir: tempDir() } }, 2);
  assert.equal(curve[0].valAccuracy, undisturbed.curve[0].valAccuracy);
});

function writeJob(dir: string, port: number): string {
  const file = join(dir, 'job.yaml');
  const cfg = fashionJob({ iterations: 60, evalEvery: 60, checkpointEvery: 20, logEvery: 5, outDir: join(dir, 'run') }, { cluster: { workers: 2, host: '127.0.0.1', port } });
  writeFileSync(file, JSON.stringify(cfg)); // JSON is YAML
  return file;
}

/**
 * Run the 2-worker job in its own coordinator process; `interrupt` may stop
 * it once with that signal (after iteration 30) and restart it with --resume.
 */
async function coordinatorRun(interrupt: 'SIGKILL' | 'SIGTERM' | null): Promise<{ weights: Buffer; ledger: Ledger; restarted: boolean; stopped: { code: number | null; stderr: string } | null; dir: string }> {
  const dir = tempDir();
  const port = await freePort();
  const file = writeJob(dir, port);
  let coordinator = spawnCoordinator(file, false);
  const workers = ['w0', 'w1'].map((id) => spawnWorker(port, id, 'off', ['--reconnect-for', '60']));
  let restarted = false, log = '';
  let stopped: { code: number | null; stderr: string } | null = null;
  if (interrupt) {
    await new Promise<void>((resolve) => {
      coordinator.stderr!.on('data', (d) => {
        log += d;
        if (/progress iteration=(3\d|4\d)/.test(log) && !restarted) { restarted = true; resolve(); }
      });
    });
    coordinator.kill(interrupt);
    stopped = { code: await exitOf(coordinator), stderr: log };
    coordinator = spawnCoordinator(file, true);
  }
  assert.equal(await exitOf(coordinator), 0, 'the coordinator finished the job');
  for (const w of workers) assert.equal(await exitOf(w), 0, 'each worker was told the job finished');
  const run = join(dir, 'run');
  const ledger = new Ledger(TRAIN_EXAMPLES, JSON.parse(readFileSync(join(run, 'ckpt-00000060', 'ledger.json'), 'utf8')));
  return { weights: readFileSync(join(run, 'model', 'weights.bin')), ledger, restarted, stopped, dir: run };
}

test('faults – the coordinator SIGKILLed mid-run and restarted resumes from its checkpoint; workers rejoin; the final parameters equal an uninterrupted run\'s', { skip, timeout: 180_000 }, async () => {
  const calm = await coordinatorRun(null);
  const hurt = await coordinatorRun('SIGKILL');
  assert.ok(hurt.restarted, 'killed after the checkpoint at 20, between iterations 30 and 49');
  assert.ok(calm.weights.equals(hurt.weights), 'bit-identical final weights');
  assert.equal(hurt.ledger.report(0).complete, true, 'epoch 0 exactly once, though steps after the checkpoint ran twice');
  assert.deepEqual(hurt.ledger.report(0).entries.map((e) => e.step), calm.ledger.report(0).entries.map((e) => e.step));
});

test('faults – the coordinator SIGTERMed mid-run checkpoints after the step under way and exits 143, not telling workers the job finished; restarted with --resume it goes on from that step, bit-identical', { skip, timeout: 180_000 }, async () => {
  const calm = await coordinatorRun(null);
  const stopped = await coordinatorRun('SIGTERM');
  assert.equal(stopped.stopped?.code, 143);
  const at = Number(/JobStopped: stopped by SIGTERM after iteration (\d+) of 60, with a checkpoint there: run it again with --resume to continue/.exec(stopped.stopped!.stderr)?.[1]);
  assert.ok(at >= 30 && at < 60, `stopped at ${at}: ${stopped.stopped!.stderr.slice(-300)}`);
  assert.ok(existsSync(join(stopped.dir, `ckpt-${String(at).padStart(8, '0')}`)), 'its checkpoint is where it stopped, not at the last periodic one (20 or 40)');
  assert.ok(calm.weights.equals(stopped.weights), 'bit-identical final weights');
  assert.equal(stopped.ledger.report(0).complete, true);
});

test('faults – a worker SIGTERMed mid-job finishes its slice, says Leave and exits 0: a worker.left, not a loss; the job finishes, every epoch once', { skip, timeout: 180_000 }, async () => {
  // 40 steps of 64 over 2000 examples: epoch 0 complete, epoch 1 under way.
  const cfg = fashionJob({ iterations: 40, evalEvery: 40, checkpointEvery: 40 });
  const bus = new EventBus();
  const leaves: TrainingEvent[] = [];
  let w1: ChildProcess | null = null;
  bus.subscribe((e) => {
    if (e.type === 'worker.left' || e.type === 'worker.lost') leaves.push(e);
    if (e.type === 'progress' && e.iteration === 10) w1?.kill('SIGTERM');
  });
  let stderr = '';
  const result = await runJob(cfg, 2, (_c, _port, p) => { w1 = p[1]; w1.stderr!.on('data', (d) => { stderr += d; }); }, { events: bus });
  const procs = result.procs;
  assert.equal(procs[1].exitCode, 0, stderr.slice(-500));
  assert.match(stderr, /info worker: leaving worker="w1" reason="SIGTERM"/);
  assert.match(stderr, /info worker: left worker="w1"/);
  const ofW1 = leaves.filter((e) => 'worker' in e && e.worker === 'w1');
  assert.deepEqual(ofW1.map((e) => [e.type, 'reason' in e ? e.reason : '']), [['worker.left', 'left: SIGTERM']], 'a leave, and only that');
  assert.match(await result.cluster.metrics.text(), /tunefleet_worker_losses_total\{[^}]*\} 0/);
  assert.equal(result.curve[result.curve.length - 1].iteration, 40);
  assert.equal(result.cluster.ledger.report(0).complete, true, 'epoch 0 exactly once');
});

test('faults – chaos: workers SIGKILLed at random steps while new ones join; every epoch exactly once; accuracy within 1 point of an undisturbed run', { skip, timeout: 180_000 }, async (t) => {
  const iterations = 150;
  // Cosine decay to 0: at a fixed rate the last steps move validation accuracy
  // by about a point either way, so two end points would differ by noise
  // alone; annealed, both runs end settled and the 1-point bound tests the chaos.
  const optimizer = { lr: 0.02, momentum: 0.9, policy: { type: 'cosine', minLr: 0 } };
  const cfg = () => fashionJob({ iterations, evalEvery: iterations, checkpointEvery: iterations }, { optimizer });
  const calm = await runJob(cfg(), 2);
  const random = rng(11);
  const killAt = new Set(Array.from({ length: 4 }, (_, k) => 15 + k * 30 + Math.floor(random() * 20)));
  const events = new EventBus();
  let procs: ChildProcess[] = [];
  let cluster: Cluster | null = null, port = 0, kills = 0;
  const epochs = epochChecker(() => cluster);
  events.subscribe((e) => {
    epochs.onEvent(e);
    if (e.type !== 'progress' || !killAt.has(e.iteration)) return;
    const live = procs.filter(running);
    live[Math.floor(random() * live.length)].kill('SIGKILL');
    kills++;
    procs.push(spawnWorker(port, `new-${kills}`));
  });
  const hurt = await runJob(cfg(), 2, (c, p, ps) => { cluster = c; port = p; procs = ps; }, { events });
  assert.equal(kills, 4);
  const computed = new Set(cluster!.ledger.snapshot().map((e) => e.workerId));
  assert.ok([...computed].some((w) => w.startsWith('new-')), `workers that joined computed slices: ${[...computed]}`);
  assert.ok(epochs.complete.length >= 3 && epochs.complete.every(Boolean), `every finished epoch exactly once: ${epochs.complete}`);
  const [a, b] = [calm, hurt].map((r) => r.curve[r.curve.length - 1].valAccuracy);
  t.diagnostic(`validation accuracy: undisturbed ${a}, chaos ${b}`);
  assert.ok(a > 0.6, `the undisturbed run learned (${a})`);
  assert.ok(Math.abs(a - b) <= 0.01, `accuracy ${b} vs undisturbed ${a}`);
});
