// `tunefleet doctor [--config job.yaml] [--backend B] [--coordinator HOST:PORT]`:
// what a job on this machine needs, one line per check — `ok`, `warn`, `--`
// (not available, not needed) or `PROBLEM` with what to do — and exit 1 if
// any is a problem. The questions users of distributed trainers ask first:
// which backend runs and how fast, are the GPUs visible, is a GPU build
// computing the right gradients, and does the job find its data, model,
// ports, credentials, NATS and coordinator.
import { createServer } from 'node:net';
import { BackendName, BACKENDS, initBackend, reason } from '../core/backend/backends';
import { webgpuAdapter } from '../core/backend/webgpu';
import { ConfigInvalid, describeError } from '../core/errors';
import { dataPortOf, JobConfig, loadJobFile } from '../core/job/config';
import { loadPretrained } from '../core/job/model';
import { resolveDatasetDir } from '../core/data/resolve';
import { maxRelativeDiff, paramSpecs, readParams, writeParams } from '../core/model/params';
import { buildModel } from '../core/model/zoo';
import { setQuiet } from '../core/observe/log';
import { computeGradients } from '../core/train/gradients';
import { rng } from '../core/util/rng';
import { cleartextTokenWarning, ClientTls, openAccessProblem, readToken, serverCredentials } from '../core/wire/security';
import { listGpus } from './gpus';
import { fetchStatus } from './status';

type Verdict = 'ok' | 'warn' | '--' | 'PROBLEM';
interface Check { verdict: Verdict; what: string; detail: string }

const BATCH = 64;
const TOLERANCE = 1e-4; // max relative difference of a backend's gradients from cpu's

/** What tfjs-node(-gpu) needs, named when it does not load. */
function nativeHint(name: string, reason: string): string {
  if (/Cannot find module/.test(reason)) return `not installed: npm install @tensorflow/tfjs-node${name === 'tensorflow-gpu' ? '-gpu' : ''} with its install script allowed (it downloads libtensorflow 2.9.1)`;
  const lib = /lib[\w+.-]+\.so[\w.]*/.exec(reason)?.[0];
  const needs = name === 'tensorflow-gpu' ? 'tfjs-node-gpu 4.22 needs libtensorflow 2.9.1 built for CUDA 11.2 and cuDNN 8.1' : 'tfjs-node 4.22 needs libtensorflow 2.9.1';
  return `${lib ? `${lib} not found` : reason}; ${needs}`;
}

type Batch = { x: Float32Array; y: Int32Array; shape: [number, number, number] };

function randomBatch(n: number, random: () => number): Batch {
  return { x: Float32Array.from({ length: n * 784 }, random), y: Int32Array.from({ length: n }, () => Math.floor(random() * 10)), shape: [28, 28, 1] };
}

/**
 * On the active backend: the seed CNN's gradients on `check` (with `params`
 * when given, so backends compare like with like) and, when `timed` is given,
 * examples/s over three steps on it.
 */
async function seedStep(params: Map<string, Float32Array> | null, check: Batch, timed?: Batch) {
  const model = buildModel('seed-cnn', [28, 28, 1], 10, 1);
  if (params) writeParams(model, params);
  const trainable = paramSpecs(model).map((s) => s.name);
  const { grads } = await computeGradients(model, trainable, check);
  let perSecond = NaN;
  if (timed) {
    await computeGradients(model, trainable, timed); // warm-up
    const started = performance.now();
    for (let i = 0; i < 3; i++) await computeGradients(model, trainable, timed);
    perSecond = (3 * timed.y.length) / ((performance.now() - started) / 1000);
  }
  const result = { params: await readParams(model), grads, perSecond };
  model.dispose();
  return result;
}

/** What the webgpu backend runs on, and the advice when that is only a CPU. */
function adapterLine(): { software: boolean; text: string } {
  const a = webgpuAdapter()!;
  const kind = a.software ? 'software: a CPU Vulkan driver, fine for tests, auto will not pick it; on a GPU node install its Vulkan driver' : 'hardware';
  return { software: a.software, text: `adapter ${a.description} (${a.vendor}, ${kind})` };
}

async function backendChecks(wanted: BackendName): Promise<Check[]> {
  const random = rng(7);
  const check = randomBatch(8, random), timed = randomBatch(BATCH, random);
  await initBackend('cpu');
  const reference = await seedStep(null, check); // pure JS is slow: a small batch, untimed
  const checks: Check[] = [{ verdict: 'ok', what: 'backend cpu', detail: 'loads (pure JS, ~100× slower than wasm: the reference the others are checked against)' }];
  for (const name of BACKENDS.filter((b) => b !== 'cpu')) {
    try {
      await initBackend(name);
    } catch (err) {
      const why = reason((err as Error).cause ?? err); // the loader's own error, not initBackend's advice
      const detail = name === 'wasm' || name === 'webgpu' ? why : nativeHint(name, why);
      checks.push({ verdict: wanted === name ? 'PROBLEM' : '--', what: `backend ${name}`, detail: `unavailable: ${detail}` });
      continue;
    }
    const adapter = name === 'webgpu' ? adapterLine() : null;
    const step = await seedStep(reference.params, check, timed);
    const diff = maxRelativeDiff(step.grads, reference.grads); // relative to the cpu reference
    const ok = diff <= TOLERANCE;
    checks.push({
      verdict: !ok ? 'PROBLEM' : adapter?.software ? 'warn' : 'ok', what: `backend ${name}`,
      detail: `loads${adapter ? ` on ${adapter.text}` : ''}; seed CNN, batch ${BATCH}: ${Math.round(step.perSecond)} examples/s; gradients ${ok ? 'match' : 'DIFFER FROM'} cpu's (max relative difference ${diff.toExponential(1)}${ok ? '' : `, over ${TOLERANCE}: a broken or miscompiled build`})`,
    });
  }
  return checks;
}

function gpuCheck(): Check {
  const { gpus, why } = listGpus();
  return gpus.length ? { verdict: 'ok', what: 'GPUs', detail: `${gpus.length}: ${gpus.map((g) => g.label).join('; ')}` } : { verdict: '--', what: 'GPUs', detail: `none (${why})` };
}

async function attempt(what: string, run: () => Promise<string>): Promise<Check> {
  try {
    return { verdict: 'ok', what, detail: await run() };
  } catch (err) {
    return { verdict: 'PROBLEM', what, detail: describeError(err) };
  }
}

function portFree(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => reject(new ConfigInvalid(`${host}:${port} is taken (${err.code}): stop what holds it or choose another port in the job`)));
    server.listen(port, host, () => server.close(() => resolve(`${host}:${port} is free`)));
  });
}

async function jobChecks(cfg: JobConfig): Promise<Check[]> {
  const c = cfg.cluster;
  const checks = [
    await attempt(`dataset ${cfg.data.dataset}`, async () => `found in ${await resolveDatasetDir(cfg.data.dataset, { path: cfg.data.path ?? undefined, download: false })}`),
    await attempt('coordinator port (cluster.port)', () => portFree(c.host, c.port)),
    await attempt('token and TLS', async () => {
      const token = readToken(c.tokenFile);
      const open = openAccessProblem(token, c.host, c.insecure);
      if (open) throw new ConfigInvalid(open);
      serverCredentials({ cert: c.tlsCert, key: c.tlsKey, clientCa: c.tlsClientCa });
      return `token ${token ? 'required' : c.insecure ? 'off (cluster.insecure)' : 'off (loopback only)'}; TLS ${c.tlsCert ? (c.tlsClientCa ? 'mutual' : 'server') : 'off'}`;
    }),
  ];
  if (c.dataPlane === 'tcp') checks.push(await attempt('data plane port (cluster.dataPort)', () => portFree(c.host, dataPortOf(cfg))));
  if (cfg.metrics.port !== null) checks.push(await attempt('metrics port (metrics.port)', () => portFree(cfg.metrics.host, cfg.metrics.port!)));
  if (cfg.model.from) checks.push(await attempt('model.from', async () => { const m = await loadPretrained(cfg.model.from!); const n = m.layers.length; m.dispose(); return `loads (${n} layers)`; }));
  if (cfg.metrics.nats) checks.push(await attempt('NATS (metrics.nats)', () => natsReachable(cfg.metrics.nats!)));
  const cleartext = checks[2].verdict === 'ok' ? cleartextTokenWarning(readToken(c.tokenFile), Boolean(c.tlsCert), 'coordinator') : null;
  if (cleartext) checks.push({ verdict: 'warn', what: 'token', detail: cleartext });
  return checks;
}

async function natsReachable(url: string): Promise<string> {
  const { connect } = await import('nats');
  const nc = await connect({ servers: url, timeout: 3000, maxReconnectAttempts: 0 });
  await nc.close();
  return 'reachable';
}

export interface DoctorOptions {
  config?: string;
  backend?: BackendName;
  coordinator?: string;
  token?: string | null;
  /** --tls-ca / --tls-cert / --tls-key, for a coordinator that serves TLS (as `status` takes them). */
  tls?: ClientTls;
}

/** Run every check, print one line each, and return whether any is a problem. */
export async function runDoctor(opts: DoctorOptions): Promise<boolean> {
  setQuiet(true); // the backends' own info lines would interleave
  const cfg = opts.config ? loadJobFile(opts.config) : null;
  const wanted = opts.backend ?? cfg?.backend ?? 'auto';
  const checks = [...await backendChecks(wanted), gpuCheck()];
  if (cfg) checks.push(...await jobChecks(cfg));
  if (opts.coordinator) {
    checks.push(await attempt(`coordinator ${opts.coordinator}`, async () => {
      const s = await fetchStatus(opts.coordinator!, opts.token ?? null, opts.tls ?? {});
      return `job ${s.job}: ${s.state}, iteration ${s.iteration}/${s.iterations}, ${s.workers.length} workers`;
    }));
  }
  if (!checks.some((c) => c.what.startsWith('backend ') && c.verdict === 'ok' && c.what !== 'backend cpu')) {
    checks.push({ verdict: 'PROBLEM', what: 'backends', detail: 'only the pure-JS cpu backend loads (~100× slower than wasm): reinstall with npm ci' });
  }
  for (const c of checks) process.stdout.write(`${c.verdict.padEnd(8)} ${c.what}: ${c.detail}\n`);
  return checks.some((c) => c.verdict === 'PROBLEM');
}
