// The chaos soak (`npm run soak`): one job, a coordinator process and 8
// worker processes on loopback, and more than 30 events while it trains —
// two and three workers SIGKILLed within the same step, stragglers
// (SIGSTOP, later SIGCONT), joins and rejoins with new and reused ids, a
// flood of 1,000 hostile join-and-leave sessions, and the coordinator
// itself SIGKILLed and restarted with --resume. It must finish; every
// completed epoch must have used each example exactly once (asked of the
// coordinator's ledger as each epoch ends); the final accuracy must be within
// 1 point of an undisturbed run; the coordinator's memory after the chaos
// within 50 MiB of before it, and flat across the flood.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initBackend } from '../core/backend/backends';
import { parseJob } from '../core/job/config';
import { CoordinatorClient, LedgerReport, WorkerMessage } from '../proto/gen/tunefleet/v1/tunefleet';
import { CLI, exitOf, freePort, runJob, running, spawnWorker } from './cluster-helpers';
import { tempDir } from './fixtures';
import { auth } from './grpc-clients';

const skip = !existsSync('/usr/share/datasets/fashion-mnist') && 'apt-get install dataset-fashion-mnist';
const TOKEN = 'soak-token';
const ITERATIONS = 240;
const WORKERS = 8;

const job = (outDir: string, port: number, tokenFile: string | null) => parseJob({
  name: 'soak', seed: 4, backend: 'wasm',
  data: { dataset: 'fashion-mnist', download: false, limitTotal: 2000, validation: 5000, normalize: 'none' },
  train: { iterations: ITERATIONS, batchSize: 64, logEvery: 1, evalEvery: ITERATIONS, checkpointEvery: 40, outDir },
  // The rate drops for the last quarter, so the final model is a settled one and
  // the accuracy comparison is not at the mercy of where the last steps bounced.
  optimizer: { lr: 0.02, momentum: 0.9, policy: { type: 'step', gamma: 0.1, stepSize: 180 } },
  cluster: { workers: WORKERS, host: '127.0.0.1', port, tokenFile, sliceDeadline: { minSeconds: 2, factor: 5, joinSeconds: 60 } },
  metrics: { port: null },
});

/** The coordinator's memory as its /metrics reports it: heap in use plus external (buffers), and RSS. */
async function memory(metricsPort: number): Promise<{ heapAndExternal: number; rss: number }> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const value = (name: string) => Number(text.match(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)`, 'm'))![1]);
  return { heapAndExternal: value('tunefleet_process_nodejs_heap_size_used_bytes') + value('tunefleet_process_nodejs_external_memory_bytes'), rss: value('tunefleet_process_process_resident_memory_bytes') };
}

function ledger(address: string, epoch: number): Promise<LedgerReport> {
  const client = new CoordinatorClient(address, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => client.getLedger({ epoch }, auth(TOKEN), (err, r) => { client.close(); err ? reject(err) : resolve(r); }));
}

/** 1,000 sessions that join (automatic ids) and leave at once, 50 at a time. */
async function flood(address: string): Promise<number> {
  const client = new CoordinatorClient(address, grpc.credentials.createInsecure());
  const join: WorkerMessage = { kind: { $case: 'join', value: { workerId: '', backend: 'flood', device: 'flood', capacity: 1 } } };
  let welcomed = 0;
  for (let batch = 0; batch < 20; batch++) {
    await Promise.all(Array.from({ length: 50 }, () => new Promise<void>((resolve) => {
      const call = client.session(auth(TOKEN));
      call.on('data', (m) => { if (m.kind?.$case === 'welcome') { welcomed++; call.cancel(); } });
      call.on('error', () => resolve());
      call.write(join);
    })));
  }
  client.close();
  return welcomed;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('soak – 8 workers, 30+ faults and a coordinator restart in one job: it finishes, exactly once, accurate, memory flat', { skip, timeout: 900_000 }, async (t) => {
  await initBackend('wasm');
  const calm = await runJob(job(tempDir(), 0, null), WORKERS);
  const calmAccuracy = calm.curve[calm.curve.length - 1].valAccuracy;

  const dir = tempDir();
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, TOKEN);
  const port = await freePort(), metricsPort = await freePort();
  const address = `127.0.0.1:${port}`;
  const file = join(dir, 'job.yaml');
  const cfg = job(join(dir, 'run'), port, tokenFile);
  writeFileSync(file, JSON.stringify({ ...cfg, metrics: { ...cfg.metrics, port: metricsPort } }));

  let iteration = 0, finishedCoordinator = false, finalAccuracy = NaN;
  const warnings: string[] = [];
  const startCoordinator = (resume: boolean) => {
    const p = spawn(process.execPath, [CLI, 'coordinator', '--config', file, ...(resume ? ['--resume'] : [])], { stdio: ['ignore', 'ignore', 'pipe'] });
    p.stderr!.on('data', (d: Buffer) => {
      for (const m of String(d).matchAll(/progress iteration=(\d+)/g)) iteration = Number(m[1]);
      for (const m of String(d).matchAll(new RegExp(`evaluation iteration=${ITERATIONS} valAccuracy=(\\S+)`, 'g'))) finalAccuracy = Number(m[1]);
      for (const line of String(d).split('\n')) if (/ warn (coordinator|trainer): /.test(line)) warnings.push(line); // drops, skipped steps
    });
    return p;
  };
  let coordinator = startCoordinator(false);
  const workers = new Map<string, ChildProcess>();
  const events: string[] = [];
  const start = (id: string) => { workers.set(id, spawnWorker(port, id, 'off', ['--token-file', tokenFile, '--reconnect-for', '120'])); events.push(`join ${id}`); };
  const live = () => [...workers].filter(([, p]) => running(p)).map(([id]) => id);
  const kill = (n: number) => { const ids = live().slice(0, n); for (const id of ids) { workers.get(id)!.kill('SIGKILL'); events.push(`kill ${id}`); } return ids; };
  const until = async (it: number) => { while (iteration < it) await sleep(50); };
  for (let i = 0; i < WORKERS; i++) start(`w${i}`);

  // Exactly once: ask the ledger about each epoch once the next has begun (it keeps only two). The
  // step that crosses into the next epoch may still be in flight, so an incomplete answer is asked
  // again; an epoch dropped from the ledger before it was ever seen complete counts as a failure.
  const complete = new Map<number, boolean>();
  let next = 0, asking = false;
  t.after(() => { // a failed soak leaves no process or timer behind
    clearInterval(checking);
    for (const p of [coordinator, ...workers.values()]) if (running(p)) p.kill('SIGKILL');
  });
  const checking = setInterval(async () => {
    if (finishedCoordinator || asking) return;
    asking = true;
    try {
      while ((await ledger(address, next + 1)).examplesUsed > 0) {
        const r = await ledger(address, next);
        if (!r.complete && r.examplesUsed > 0) break;
        complete.set(next++, r.complete);
      }
    } catch { /* the coordinator is restarting */ }
    asking = false;
  }, 300);

  // Phase 1: coordinator #1.
  await until(10);
  const before = await memory(metricsPort);
  await until(15);
  for (const id of kill(2)) start(id); // two in one step, back under the same ids
  await until(25);
  const [a, b, c] = kill(3); // three in one step: two come back as new workers, one as itself
  start(`${a}-new`); start(`${b}-new`); start(c);
  await until(35);
  const stopped = 'w7'; // a worker that has computed slices, so it holds one now
  workers.get(stopped)!.kill('SIGSTOP'); events.push(`stop ${stopped}`);
  await until(45);
  workers.get(stopped)!.kill('SIGCONT'); events.push(`cont ${stopped}`);
  await until(50);
  start('extra-1');
  await until(55);
  kill(1);
  await until(60);
  const beforeFlood = await memory(metricsPort);
  const welcomed = await flood(address);
  events.push('flood of 1,000 join-and-leave sessions');
  await sleep(2000);
  const afterFlood = await memory(metricsPort);
  await until(90);
  coordinator.kill('SIGKILL'); events.push('kill the coordinator');
  await exitOf(coordinator);
  coordinator = startCoordinator(true); events.push('restart the coordinator with --resume');

  // Phase 2: coordinator #2 (resumed from the checkpoint at 80).
  await until(100);
  for (const id of kill(2)) start(id);
  await until(110);
  for (const id of kill(3)) start(`${id}-b`);
  await until(120);
  const stragglers = ['w6', 'w7']; // rejoined after the restart at ~90 and computing since
  for (const id of stragglers) { workers.get(id)!.kill('SIGSTOP'); events.push(`stop ${id}`); }
  await until(135);
  for (const id of stragglers) { workers.get(id)!.kill('SIGCONT'); events.push(`cont ${id}`); }
  await until(140);
  start('extra-2'); start('extra-3');
  await until(150);
  for (const id of kill(1)) start(id);
  await until(200);
  const after = await memory(metricsPort);

  assert.equal(await exitOf(coordinator), 0, 'the job finished');
  finishedCoordinator = true;
  clearInterval(checking);
  await Promise.all([...workers.values()].map((p) => (running(p) ? exitOf(p) : null)));
  const logs = `${events.length} events: ${events.join(', ')}`;
  console.log(logs);
  for (const line of warnings) console.log(line);
  const mib = (x: number) => +(x / 2 ** 20).toFixed(1);
  console.log(JSON.stringify({ accuracy: { soak: finalAccuracy, undisturbed: calmAccuracy }, memoryMiB: { before: mib(before.heapAndExternal), beforeFlood: mib(beforeFlood.heapAndExternal), afterFlood: mib(afterFlood.heapAndExternal), after: mib(after.heapAndExternal), rssBefore: mib(before.rss), rssAfter: mib(after.rss) }, epochsChecked: [...complete] }));

  assert.ok(events.length >= 30, logs);
  const deadlineDrops = warnings.filter((l) => /worker dropped .*deadline: no result within the step deadline/.test(l));
  assert.ok(deadlineDrops.length >= 3, `every straggler dropped at its deadline: ${deadlineDrops.length} drops`);
  assert.equal(welcomed, 1000, 'every flood session was let in, then left');
  const epochs = [...complete.values()];
  assert.ok(epochs.length === Math.floor((ITERATIONS * 64) / 2000) && epochs.every(Boolean), `every completed epoch exactly once: ${[...complete]}`);
  assert.ok(after.heapAndExternal - before.heapAndExternal <= 50 * 2 ** 20, `coordinator memory ${mib(before.heapAndExternal)} → ${mib(after.heapAndExternal)} MiB`);
  assert.ok(afterFlood.heapAndExternal - beforeFlood.heapAndExternal <= 50 * 2 ** 20, `flood: ${mib(beforeFlood.heapAndExternal)} → ${mib(afterFlood.heapAndExternal)} MiB`);
  assert.ok(calmAccuracy > 0.6, `the undisturbed run learned (${calmAccuracy})`);
  assert.ok(Math.abs(finalAccuracy - calmAccuracy) <= 0.01, `accuracy ${finalAccuracy} vs undisturbed ${calmAccuracy}`);
});
