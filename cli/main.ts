#!/usr/bin/env node
// The `tunefleet` command. Each subcommand parses its flags, loads the job
// config and hands off to core/; errors are printed as one line
// (`Name: what to do`) and exit non-zero, never as a stack trace.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadJobFile, parseJob, JobConfig } from '../core/job/config';
import { defaultsYaml } from '../core/job/config-docs';
import { ConfigInvalid, JobStopped, TunefleetError } from '../core/errors';
import { errorLine, setLogContext } from '../core/observe/log';
import { routeGrpcLogs } from '../core/wire/grpc-log';
import { loadExperiment } from '../core/job/experiment';
import { readToken } from '../core/wire/security';
import { runStages } from '../core/job/stages';
import { EventBus } from '../core/observe/events';
import { train } from '../core/train/trainer';
import { TrainResult } from '../core/train/loop';
import { runCoordinator } from '../coordinator/coordinator';
import { runWorker } from '../worker/worker';
import { runShard } from '../shard/run';
import { DEFAULT_KEEPALIVE_SECONDS } from '../core/wire/backpressure';
import { FlagSpec, parseArgs } from './args';
import { runCompare } from './compare';
import { summaryTables } from './compare-report';
import { runLocal } from './local';
import { HELP, USAGE } from './usage';
import { fetchStatus, statusText } from './status';
import { ProgressLine } from './progress';
import { runDoctor } from './doctor';
import { runWorkerGroup } from './gpus';
import { runWatch } from './watch';
import { explainFile } from './explain';

/** Every command's flags: the parser rejects anything else (and deploy tests check manifests against this). */
export const FLAGS: Record<string, FlagSpec> = {
  train: { config: 'string', backend: 'string', data: 'string', resume: 'boolean', fresh: 'boolean' },
  coordinator: { config: 'string', backend: 'string', data: 'string', resume: 'boolean', port: 'string', workers: 'string', shards: 'string', insecure: 'boolean' },
  worker: { coordinator: 'string', gpus: 'string', backend: 'string', id: 'string', 'metrics-port': 'string', 'metrics-host': 'string', 'token-file': 'string', 'tls-ca': 'string', 'tls-cert': 'string', 'tls-key': 'string', 'reconnect-for': 'string', 'keepalive-seconds': 'string' },
  shard: { coordinator: 'string', 'data-port': 'string', host: 'string', advertise: 'string', 'metrics-port': 'string', 'metrics-host': 'string', 'token-file': 'string', 'reconnect-for': 'string', 'keepalive-seconds': 'string',
    'tls-ca': 'string', 'tls-cert': 'string', 'tls-key': 'string', 'tls-client-ca': 'string' },
  local: { config: 'string', backend: 'string', data: 'string', resume: 'boolean', fresh: 'boolean', workers: 'string' },
  compare: { config: 'string', workers: 'string', out: 'string', fresh: 'boolean', backend: 'string' },
  doctor: { config: 'string', backend: 'string', coordinator: 'string', 'token-file': 'string', 'tls-ca': 'string', 'tls-cert': 'string', 'tls-key': 'string' },
  status: { coordinator: 'string', 'token-file': 'string', 'tls-ca': 'string', 'tls-cert': 'string', 'tls-key': 'string', json: 'boolean' },
  watch: { nats: 'string', job: 'string' },
  config: { explain: 'string', backend: 'string', data: 'string' },
};

/** --reconnect-for: seconds to keep joining again after losing the coordinator (default 300). */
function reconnectFlag(args: Record<string, unknown>): number {
  const seconds = Number(args['reconnect-for'] ?? 300);
  if (!(seconds >= 0)) throw new ConfigInvalid(`--reconnect-for must be a number of seconds >= 0, not ${args['reconnect-for']}`);
  return seconds;
}

/** --keepalive-seconds: ping the coordinator after this long, and lose it when it does not answer within as long again (default 30). */
function keepaliveFlag(args: Record<string, unknown>): number {
  const seconds = Number(args['keepalive-seconds'] ?? DEFAULT_KEEPALIVE_SECONDS);
  if (!(seconds > 0)) throw new ConfigInvalid(`--keepalive-seconds must be a number of seconds > 0, not ${args['keepalive-seconds']}`);
  return seconds;
}

// Flag values are checked by the job schema's own rule for the same field.
const backendFlag = (v: unknown) => parseJob({ backend: v }, '--backend').backend;
function workersFlag(v: unknown): number {
  if (!/^\d+$/.test(String(v))) throw new ConfigInvalid(`--workers must be a whole number of workers (1 or more), not '${v}'`);
  return parseJob({ cluster: { workers: Number(v) } }, '--workers').cluster.workers;
}

/**
 * --coordinator HOST[:PORT]: without a port, the coordinator's default
 * (cluster.port, 7070) — grpc-js would otherwise dial 443 and retry there.
 */
export function coordinatorFlag(v: unknown): string {
  if (v === undefined || v === true || v === '') throw new ConfigInvalid('--coordinator HOST:PORT is required');
  const address = String(v);
  if (/^\[.*\]:\d+$/.test(address) || /^[^:]+:\d+$/.test(address)) return address;
  if (/^\[.*\]$/.test(address) || !address.includes(':')) return `${address}:${DEFAULT_COORDINATOR_PORT}`;
  if (address.split(':').length > 2) return `[${address}]:${DEFAULT_COORDINATOR_PORT}`; // a bare IPv6 address
  throw new ConfigInvalid(`--coordinator ${address}: not HOST:PORT (e.g. tunefleet-coordinator:7070 or 10.0.0.5:7070)`);
}
const DEFAULT_COORDINATOR_PORT = parseJob({}).cluster.port;

function jobFrom(args: Record<string, string | boolean | undefined>): JobConfig {
  if (!args.config) throw new ConfigInvalid('--config job.yaml is required: `tunefleet config > job.yaml` writes one with every field at its default, and examples/ has ready ones');
  return withFlags(loadJobFile(String(args.config)), args);
}

/** `cfg` with --backend and --data applied. */
function withFlags(cfg: JobConfig, args: Record<string, string | boolean | undefined>): JobConfig {
  if (args.backend) cfg.backend = backendFlag(args.backend);
  if (args.data) cfg.data.path = String(args.data);
  return cfg;
}

const tlsFlags = (args: Record<string, string | boolean | undefined>) =>
  ({ ca: args['tls-ca'] as string | undefined, cert: args['tls-cert'] as string | undefined, key: args['tls-key'] as string | undefined });

/**
 * Run a command's stages with a live progress line on a terminal (iteration,
 * accuracy, examples/s, ETA; see progress.ts); elsewhere the usual log lines.
 * `begin(stage)` names each stage as it starts.
 */
async function withProgress<T>(run: (events: EventBus, begin: (stage: JobConfig) => void) => Promise<T>): Promise<T> {
  const progress = new ProgressLine();
  const events = new EventBus();
  events.subscribe(progress.onEvent);
  try {
    return await run(events, (stage) => progress.begin(`${stage.name}${stage.model.from ? ' (fine-tune)' : ''}`));
  } finally {
    progress.end();
  }
}

/** The one stdout line a finished job prints: where its output is and its last evaluation. */
function report(result: TrainResult): void {
  const last = result.curve[result.curve.length - 1];
  process.stdout.write(JSON.stringify({ backend: result.backend, outDir: result.outDir, final: last }) + '\n');
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  setLogContext({ role: command }); // coordinator, worker, shard, train, local…: on every JSON log line
  if (command in USAGE && (rest.includes('--help') || rest.includes('-h'))) {
    process.stdout.write(`Usage:\n  ${USAGE[command]}\n`);
    return;
  }
  switch (command) {
    case 'train': {
      const args = parseArgs(rest, FLAGS.train);
      return report(await withProgress((events, begin) =>
        runStages(jobFrom(args), (stage) => { begin(stage); return train(stage, { resume: Boolean(args.resume), events }); }, { fresh: Boolean(args.fresh) })));
    }
    case 'coordinator': {
      const args = parseArgs(rest, FLAGS.coordinator);
      const cfg = jobFrom(args);
      if (cfg.pretrain) throw new ConfigInvalid('tunefleet coordinator runs one stage: run the pretrain section as its own job (then point model.from at its model), or use tunefleet local');
      if (args.port !== undefined) cfg.cluster.port = parseJob({ cluster: { port: Number(args.port) } }, '--port').cluster.port;
      if (args.workers !== undefined) cfg.cluster.workers = workersFlag(args.workers);
      if (args.insecure) cfg.cluster.insecure = true;
      // Checked with the rest of the job (shards need the tcp data plane).
      if (args.shards !== undefined) Object.assign(cfg, parseJob({ ...cfg, cluster: { ...cfg.cluster, shards: Number(args.shards) } }, '--shards'));
      // SIGTERM (a rollout, a drained node): checkpoint after the step under way, then exit 143; a second one does not wait.
      let stop = false;
      process.on('SIGTERM', () => { if (stop) process.exit(143); stop = true; });
      return report(await runCoordinator(cfg, { resume: Boolean(args.resume), stopRequested: () => stop }));
    }
    case 'worker': {
      const args = parseArgs(rest, FLAGS.worker);
      const coordinator = coordinatorFlag(args.coordinator);
      const backend = args.backend ? backendFlag(args.backend) : undefined;
      const port = args['metrics-port'] ?? '9401';
      const metricsPort = port === 'off' ? null : parseJob({ metrics: { port: Number(port) } }, '--metrics-port').metrics.port;
      const tls = tlsFlags(args);
      if (args.gpus !== undefined) {
        // Each process gets the same flags but its own id and metrics port.
        const shared = Object.entries(args).filter(([k]) => !['gpus', 'id', 'metrics-port'].includes(k)).flatMap(([k, v]) => (v === true ? [`--${k}`] : [`--${k}`, String(v)]));
        return runWorkerGroup(shared, { gpus: String(args.gpus), backend: backend ?? process.env.TUNEFLEET_BACKEND, id: args.id as string | undefined, metricsPort });
      }
      return runWorker(coordinator, { backend, id: args.id as string | undefined, metricsPort, metricsHost: args['metrics-host'] as string | undefined, token: readToken(args['token-file'] as string | undefined), tls, reconnectSeconds: reconnectFlag(args), keepaliveSeconds: keepaliveFlag(args) });
    }
    case 'shard': {
      const args = parseArgs(rest, FLAGS.shard);
      const coordinator = coordinatorFlag(args.coordinator);
      const port = (flag: string, fallback: string) => {
        const v = String(args[flag] ?? fallback);
        return v === 'off' ? null : parseJob({ metrics: { port: Number(v) } }, `--${flag}`).metrics.port;
      };
      return runShard(coordinator, {
        host: args.host as string | undefined, dataPort: port('data-port', '7072') ?? undefined, advertise: args.advertise as string | undefined,
        metricsPort: port('metrics-port', '9402'), metricsHost: args['metrics-host'] as string | undefined,
        token: readToken(args['token-file'] as string | undefined), reconnectSeconds: reconnectFlag(args), keepaliveSeconds: keepaliveFlag(args),
        tls: { ...tlsFlags(args), clientCa: args['tls-client-ca'] as string | undefined },
      });
    }
    case 'local': {
      const args = parseArgs(rest, FLAGS.local);
      const workers = workersFlag(args.workers ?? 1);
      return report(await withProgress((events, begin) => runStages(jobFrom(args), (stage) => {
        begin(stage);
        return runLocal(stage, workers, { resume: Boolean(args.resume), backend: args.backend as string | undefined, events });
      }, { fresh: Boolean(args.fresh) })));
    }
    case 'compare': {
      const args = parseArgs(rest, FLAGS.compare);
      if (!args.config) throw new ConfigInvalid('--config experiment.yaml is required (see examples/fashion-transfer.yaml)');
      const exp = loadExperiment(String(args.config));
      if (args.backend) exp.job.backend = backendFlag(args.backend);
      const workers = workersFlag(args.workers ?? 2);
      const out = String(args.out ?? join('runs', `compare-${exp.job.name}`));
      const results = await runCompare(exp, { workers, out, fresh: Boolean(args.fresh) });
      process.stdout.write(`\n${summaryTables(results)}\nReport: ${join(out, 'report.md')} (results.json, accuracy.svg, accuracy.png beside it)\n`);
      return;
    }
    case 'doctor': {
      const args = parseArgs(rest, FLAGS.doctor);
      const problem = await runDoctor({
        config: args.config as string | undefined, backend: args.backend ? backendFlag(args.backend) : undefined,
        coordinator: args.coordinator === undefined ? undefined : coordinatorFlag(args.coordinator), token: readToken(args['token-file'] as string | undefined), tls: tlsFlags(args),
      });
      process.exitCode = problem ? 1 : 0;
      return;
    }
    case 'status': {
      const args = parseArgs(rest, FLAGS.status);
      const status = await fetchStatus(coordinatorFlag(args.coordinator), readToken(args['token-file'] as string | undefined), tlsFlags(args));
      process.stdout.write(args.json ? `${JSON.stringify(status)}\n` : statusText(status));
      return;
    }
    case 'watch': {
      const args = parseArgs(rest, FLAGS.watch);
      if (!args.nats) throw new ConfigInvalid('--nats URL is required (e.g. nats://localhost:4222)');
      return runWatch(String(args.nats), args.job as string | undefined);
    }
    case 'config': {
      const args = parseArgs(rest, FLAGS.config);
      if (!args.explain) {
        process.stdout.write(defaultsYaml());
        return;
      }
      const { text, problems } = await explainFile(String(args.explain), (cfg) => withFlags(cfg, args));
      process.stdout.write(text);
      if (problems.length > 0) throw new ConfigInvalid(problems.join('; '));
      return;
    }
    case undefined: case 'help': case '--help': case '-h':
      process.stdout.write(HELP + '\n');
      return;
    case '--version': case 'version':
      process.stdout.write(`tunefleet ${(JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version}\n`);
      return;
    default:
      throw new ConfigInvalid(`unknown command '${command}'; run tunefleet help`);
  }
}

if (require.main === module) {
  routeGrpcLogs();
  main(process.argv.slice(2)).catch((err) => {
    process.stderr.write(errorLine(err instanceof Error ? err.name : 'Error', err instanceof Error ? err.message : String(err)) + '\n');
    if (!(err instanceof TunefleetError) && process.env.TUNEFLEET_DEBUG) console.error(err);
    process.exit(err instanceof ConfigInvalid ? 2 : err instanceof JobStopped ? 143 : 1);
  });
}
