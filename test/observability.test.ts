// observability – with real servers: a real nats-server receives every event
// kind with its documented payload, and a run survives nats-server being
// killed; a real Prometheus scrapes a run and every dashboard query returns
// data; promtool finds no problem in the coordinator's and a worker's /metrics.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, JSONCodec } from 'nats';
import { initBackend } from '../core/backend/backends';
import { parseJob } from '../core/job/config';
import { EVENT_TYPES, TrainingEvent } from '../core/observe/events';
import { NatsPublisher } from '../core/observe/nats';
import { CLI, freePort, runJob, spawnShard } from './cluster-helpers';
import { tempDir, writeIdxSet } from './fixtures';
import { missing } from './needs';

let dataDir = '';
const servers: ChildProcess[] = [];
before(async () => {
  await initBackend('wasm');
  dataDir = tempDir();
  writeIdxSet(dataDir, 200, 40);
});
after(() => { for (const s of servers) s.kill('SIGKILL'); });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function job(overrides: Record<string, unknown> = {}) {
  return parseJob({
    name: 'obs', backend: 'wasm', data: { path: dataDir, download: false },
    // A spike guard so tight that some step is judged a spike (step.skipped).
    train: { iterations: 12, batchSize: 32, evalEvery: 4, logEvery: 2, checkpointEvery: 6, outDir: tempDir(), targetAccuracy: 0.01, spikeGuard: { factor: 1.01, window: 2, warmup: 1 } },
    optimizer: { lr: 0.02, layers: [{ match: 'head/*', lrMult: 10 }], policy: { type: 'step', gamma: 0.5, stepSize: 5 } },
    metrics: { port: null, workerPort: null },
    ...overrides,
  });
}

async function startNats(): Promise<{ url: string; proc: ChildProcess }> {
  const port = await freePort();
  const proc = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  servers.push(proc);
  const url = `nats://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try { await (await connect({ servers: url })).close(); return { url, proc }; } catch { await sleep(50); }
  }
  throw new Error('nats-server did not start');
}

// The documented payload of each event (docs/observability.md), beyond job, time and type.
const PAYLOAD: Record<string, string[]> = {
  'job.started': ['backend', 'iterations', 'startIteration', 'batchSize', 'trainExamples'],
  'job.finished': ['iteration', 'valAccuracy', 'seconds'],
  'job.failed': ['error'],
  'worker.joined': ['worker', 'backend', 'live'],
  'worker.left': ['worker', 'reason', 'live'],
  'worker.lost': ['worker', 'reason', 'live'],
  progress: ['iteration', 'iterations', 'loss', 'lr', 'examplesPerSec'],
  evaluation: ['iteration', 'valAccuracy', 'valLoss', 'trainLoss', 'wallSeconds', 'evalSeconds'],
  'checkpoint.written': ['iteration', 'dir', 'bytes', 'seconds'],
  'lr.changed': ['iteration', 'lr'],
  'step.skipped': ['iteration', 'gradNorm', 'medianNorm'],
  'target.reached': ['iteration', 'valAccuracy', 'target', 'wallSeconds'],
  'shard.joined': ['shard', 'address', 'live'],
  'shard.lost': ['shard', 'reason', 'live'],
  'job.rewound': ['iteration', 'reason'],
};

test('observability – a real nats-server receives every event kind with its documented payload', { skip: missing('nats-server') }, async () => {
  const { url } = await startNats();
  const nc = await connect({ servers: url });
  const got: { subject: string; e: TrainingEvent }[] = [];
  const sub = nc.subscribe('tunefleet.>');
  const codec = JSONCodec<TrainingEvent>();
  void (async () => { for await (const m of sub) got.push({ subject: m.subject, e: codec.decode(m.data) }); })();
  await nc.flush();
  // `tunefleet watch` follows the same stream.
  const watch = spawn(process.execPath, [CLI, 'watch', '--nats', url, '--job', 'obs'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let watched = '';
  watch.stdout.on('data', (d) => { watched += d; });
  await sleep(500);
  // A run in which one of three workers is killed (worker.lost) ...
  let killed = false;
  await runJob(job({ metrics: { port: null, workerPort: null, nats: url } }), 3, (cluster, _port, procs) => {
    const t = setInterval(() => { if (cluster.ledger.report(0).examplesUsed >= 64 && !killed) { killed = true; procs[2].kill('SIGKILL'); clearInterval(t); } }, 5);
  });
  // ... one with parameter shards, one of which is killed and replaced (shard.joined, shard.lost, job.rewound) ...
  let shardKilled = false;
  await runJob(job({ name: 'obs-shards', metrics: { port: null, workerPort: null, nats: url }, cluster: { shards: 2 }, train: { iterations: 12, batchSize: 32, evalEvery: 12, checkpointEvery: 4, outDir: tempDir() } }), 1, (cluster, port, _procs, shards) => {
    const t = setInterval(() => {
      if (cluster.ledger.report(0).examplesUsed >= 6 * 32 && !shardKilled) { shardKilled = true; shards[1].kill('SIGKILL'); shards.push(spawnShard(port)); clearInterval(t); }
    }, 5);
  });
  assert.ok(shardKilled);
  // ... and one that fails: its checkpoint folder cannot be created (job.failed).
  const notADir = join(tempDir(), 'file');
  writeFileSync(notADir, 'x');
  await assert.rejects(runJob(job({ name: 'obs-fail', metrics: { port: null, workerPort: null, nats: url }, train: { iterations: 6, batchSize: 32, evalEvery: 6, checkpointEvery: 3, outDir: join(notADir, 'out') } }), 1));
  await nc.flush();
  await sleep(300);
  await nc.close();
  watch.kill();
  assert.match(watched, /obs: started on wasm: 12 iterations/);
  assert.match(watched, /obs: iteration 4: validation accuracy \d+\.\d+%/);
  assert.match(watched, /obs: worker w2 LOST/);
  assert.match(watched, /obs: TARGET 1\.00% reached at iteration 4/);
  assert.match(watched, /obs: step \d+ SKIPPED: gradient norm/);
  assert.doesNotMatch(watched, /obs-fail/, '--job filters other jobs out');
  for (const type of EVENT_TYPES) {
    const hit = got.find((g) => g.e.type === type);
    assert.ok(hit, `no ${type} event`);
    assert.equal(hit.subject, `tunefleet.${hit.e.job}.events.${type}`);
    for (const key of ['job', 'time', ...PAYLOAD[type]]) assert.ok(key in hit.e, `${type} lacks ${key}`);
  }
  assert.ok(got.filter((g) => g.e.type === 'lr.changed').length >= 3, 'step policy changes the rate at 5 and 10');
});

test('observability – nats-server killed in the middle of a run: the run completes and drops are counted', { skip: missing('nats-server') }, async () => {
  const { url, proc } = await startNats();
  const metricsPort = await freePort();
  let metricsText = '';
  const result = await runJob(job({ metrics: { port: metricsPort, workerPort: null, nats: url }, train: { iterations: 30, batchSize: 32, evalEvery: 10, logEvery: 2, checkpointEvery: 30, outDir: tempDir() } }), 1, (cluster) => {
    const t = setInterval(async () => {
      if (cluster.ledger.report(0).examplesUsed >= 96 && proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      if (cluster.ledger.report(3).examplesUsed > 0) { clearInterval(t); metricsText = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text(); }
    }, 5);
  });
  assert.equal(result.curve[result.curve.length - 1].iteration, 30);
  const dropped = Number(/^tunefleet_events_dropped_total\{[^}]*\} (\d+)/m.exec(metricsText)?.[1]);
  assert.ok(dropped > 0, `dropped ${dropped}`);
});

test('observability – `tunefleet watch` against a NATS that is not up yet says so in a line and keeps trying; once it is up, the events come', { skip: missing('nats-server') }, async () => {
  const port = await freePort();
  const url = `nats://127.0.0.1:${port}`;
  const watch = spawn(process.execPath, [CLI, 'watch', '--nats', url], { stdio: ['ignore', 'pipe', 'pipe'] });
  servers.push(watch);
  let out = '', err = '';
  watch.stdout!.on('data', (d) => { out += d; });
  watch.stderr!.on('data', (d) => { err += d; });
  for (let i = 0; i < 100 && !/cannot reach NATS/.test(err); i++) await sleep(50);
  assert.match(err, new RegExp(`^cannot reach NATS at nats://127\\.0\\.0\\.1:${port} \\(CONNECTION_REFUSED\\); trying again in \\d+ s$`, 'm'));
  assert.equal(watch.exitCode, null, 'still running');
  servers.push(spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' }));
  const publisher = new NatsPublisher(url, () => {});
  for (let i = 0; i < 200 && !/worker w9 joined/.test(out); i++) {
    publisher.publish({ type: 'worker.joined', job: 'late', time: new Date().toISOString(), worker: 'w9', backend: 'wasm', live: 1 });
    await sleep(100);
  }
  await publisher.close();
  watch.kill('SIGTERM');
  assert.match(out, /late: worker w9 joined \(wasm\); 1 live/);
});

function promtool(text: string): string {
  return execFileSync('promtool', ['check', 'metrics'], { input: text }).toString();
}

test('observability – a real Prometheus scrapes a run; every dashboard query returns data; promtool approves the metrics', { skip: missing('prometheus', 'promtool') }, async () => {
  const [coordPort, w0, w1, s0, promPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  const dir = tempDir();
  writeFileSync(join(dir, 'prometheus.yml'), `global: { scrape_interval: 250ms, evaluation_interval: 1s }
scrape_configs:
  - job_name: tunefleet
    static_configs: [{ targets: ['127.0.0.1:${coordPort}', '127.0.0.1:${w0}', '127.0.0.1:${w1}', '127.0.0.1:${s0}'] }]
`);
  const prom = spawn('prometheus', [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${promPort}`], { stdio: 'ignore' });
  servers.push(prom);
  const api = `http://127.0.0.1:${promPort}/api/v1`;
  for (let i = 0; i < 200; i++) { try { if ((await fetch(`http://127.0.0.1:${promPort}/-/ready`)).ok) break; } catch { /* starting */ } await sleep(100); }
  const texts: string[] = [];
  const start = Date.now() / 1000;
  const probes: number[] = [];
  // Long enough (a few seconds) for rate() over a 3 s window to have two scrapes.
  await runJob(job({ metrics: { port: coordPort, workerPort: null }, train: { iterations: 400, batchSize: 32, evalEvery: 50, logEvery: 5, checkpointEvery: 200, outDir: tempDir(), targetAccuracy: 0.01 } }), 2, (cluster) => {
    const t = setInterval(async () => {
      if (cluster.ledger.report(4).examplesUsed > 0) {
        clearInterval(t);
        for (const port of [coordPort, w0]) for (const path of ['livez', 'readyz', 'healthz']) probes.push((await fetch(`http://127.0.0.1:${port}/${path}`)).status);
        texts.push(await (await fetch(`http://127.0.0.1:${coordPort}/metrics`)).text(), await (await fetch(`http://127.0.0.1:${w0}/metrics`)).text());
      }
    }, 20);
  }, { workerMetricsPorts: [w0, w1] });
  // Then the same job with a parameter shard, whose metrics fill the shard panels.
  let shardText = '';
  await runJob(job({ metrics: { port: coordPort, workerPort: null }, cluster: { shards: 1 }, train: { iterations: 300, batchSize: 32, evalEvery: 300, logEvery: 5, checkpointEvery: 300, outDir: tempDir() } }), 1, (cluster) => {
    const t = setInterval(async () => {
      if (cluster.ledger.report(4).examplesUsed > 0) { clearInterval(t); shardText = await (await fetch(`http://127.0.0.1:${s0}/metrics`)).text(); }
    }, 20);
  }, { shardMetricsPorts: [s0] });
  const end = Date.now() / 1000;
  await sleep(500);
  assert.equal(texts.length, 2);
  assert.deepEqual(probes, [200, 200, 200, 200, 200, 200], '/livez, /readyz and /healthz answer on coordinator and worker');
  for (const text of [...texts, shardText]) assert.equal(promtool(text).trim(), '', 'promtool check metrics reports problems');
  assert.match(shardText, /tunefleet_shard_seconds_count\{job_name="obs",role="shard",phase="update"\} [1-9]/);
  assert.match(texts[1], /tunefleet_worker_compute_seconds_count\{job_name="obs",role="worker",worker="w0"\} [1-9]/);
  const dashboard = JSON.parse(readFileSync(join(__dirname, '..', '..', 'deploy', 'grafana', 'dashboards', 'tunefleet.json'), 'utf8'));
  const exprs: string[] = dashboard.panels.flatMap((p: { targets: { expr: string }[] }) => p.targets.map((t) => t.expr));
  assert.ok(exprs.length >= 12);
  for (const expr of exprs) {
    const q = expr.replaceAll('$job', 'obs').replaceAll('$__rate_interval', '3s');
    const url = `${api}/query_range?query=${encodeURIComponent(q)}&start=${start}&end=${end}&step=0.5`;
    const body = await (await fetch(url)).json() as { status: string; data: { result: { values: [number, string][] }[] } };
    assert.equal(body.status, 'success', q);
    const values = body.data.result.flatMap((r) => r.values).filter(([, v]) => v !== 'NaN');
    assert.ok(values.length > 0, `no data for dashboard query: ${q}`);
  }
  // Each gauge comes only from the role that owns it: a worker or shard exporting the coordinator's as 0 drew a flat line per pod.
  const owners = new Map<string, Set<string>>();
  const group = `group by (__name__, role) (last_over_time({job_name="obs",__name__=~"tunefleet_.+"}[10m]))`;
  const found = await (await fetch(`${api}/query?query=${encodeURIComponent(group)}&time=${end}`)).json() as { data: { result: { metric: { __name__: string; role: string } }[] } };
  for (const { metric } of found.data.result) owners.set(metric.__name__, (owners.get(metric.__name__) ?? new Set()).add(metric.role));
  const coordinatorOnly = ['tunefleet_validation_accuracy_ratio', 'tunefleet_validation_loss', 'tunefleet_train_loss', 'tunefleet_iteration', 'tunefleet_epoch',
    'tunefleet_workers_live', 'tunefleet_shards_live', 'tunefleet_learning_rate', 'tunefleet_gradient_norm', 'tunefleet_examples_per_second', 'tunefleet_worker_losses_total'];
  for (const name of coordinatorOnly) assert.deepEqual([...(owners.get(name) ?? [])], ['coordinator'], name);
  assert.deepEqual([...(owners.get('tunefleet_shard_seconds_count') ?? [])], ['shard']);
  assert.deepEqual([...(owners.get('tunefleet_received_bytes_total') ?? [])].sort(), ['coordinator', 'shard', 'worker']);
  const jobs = await (await fetch(`${api}/label/job_name/values`)).json() as { data: string[] };
  assert.ok(jobs.data.includes('obs'), 'the job selector finds the job');
});
