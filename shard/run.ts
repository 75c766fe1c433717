// `tunefleet shard --coordinator HOST:PORT`: serve a data port, then join the
// coordinator's Shards service and do what it says until the job ends. Like a
// worker, a shard that loses the coordinator joins again with backoff
// (core/wire/reconnect.ts), for up to `reconnectSeconds`; every new session
// starts from a new Welcome, so a restarted coordinator (or one that went back
// to its checkpoint) hands it a slot and that slot's state afresh.
import * as grpc from '@grpc/grpc-js';
import { startHttpServer } from '../core/observe/http-server';
import { logger } from '../core/observe/log';
import { Metrics } from '../core/observe/metrics';
import { DEFAULT_KEEPALIVE_SECONDS, keepalive, writeWithBackpressure } from '../core/wire/backpressure';
import { cleartextTokenWarning, clientCredentials, ClientTls, tokenMetadata } from '../core/wire/security';
import { MAX_MESSAGE_BYTES } from '../core/wire/tensors';
import { ShardCommand, ShardMessage, ShardsClient } from '../proto/gen/tunefleet/v1/tunefleet';
import { startDataPlane } from '../core/wire/data-plane';
import { keepJoining } from '../core/wire/reconnect';
import { Shard } from './shard';

const log = logger('shard');

export interface ShardOptions {
  /** Address the data port binds (default every interface). */
  host?: string;
  /** The data port workers connect to; 0 = any free port. */
  dataPort?: number;
  /** Where workers reach the data port; absent = the address the coordinator sees this shard's connection come from. */
  advertise?: string;
  token?: string | null;
  /** Port for /metrics, /healthz, /readyz; null = off. */
  metricsPort?: number | null;
  metricsHost?: string;
  reconnectSeconds?: number;
  /** A worker's data connection must send its HELLO within this long. */
  helloSeconds?: number;
  /**
   * TLS: `ca` verifies the coordinator; `cert`/`key` are this shard's own,
   * presented to the coordinator (mutual TLS) and served to workers on the
   * data port; `clientCa`: workers must present a certificate it signed.
   */
  tls?: ClientTls & { clientCa?: string };
  /** gRPC keepalive to the coordinator: a coordinator that does not answer a ping within this long is lost (the shard joins again). */
  keepaliveSeconds?: number;
}

type Call = grpc.ClientDuplexStream<ShardMessage, ShardCommand>;

export async function runShard(address: string, opts: ShardOptions = {}): Promise<void> {
  const metrics = new Metrics('', 'shard');
  let joined = false;
  let call: Call | null = null;
  // A report the coordinator does not take within stallSeconds ends the session (it joins again); never an unhandled rejection.
  const shard: Shard = new Shard(metrics, (m): Promise<void> => (call ? writeWithBackpressure(call, m, shard.stallSeconds).catch(() => call?.cancel()) : Promise.resolve()));
  const tls = opts.tls ?? {};
  const data = await startDataPlane(shard, { host: opts.host ?? '0.0.0.0', port: opts.dataPort ?? 7072, helloSeconds: opts.helloSeconds ?? 10, portSetting: '--data-port (0 = any free port; each shard on a host needs its own)', cert: tls.cert ?? null, key: tls.key ?? null, clientCa: tls.clientCa ?? null });
  const http = opts.metricsPort === null || opts.metricsPort === undefined ? null : await startHttpServer(metrics, opts.metricsHost ?? '0.0.0.0', opts.metricsPort, { ready: () => joined });
  const client = new ShardsClient(address, clientCredentials(tls), {
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES, 'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    ...keepalive(opts.keepaliveSeconds ?? DEFAULT_KEEPALIVE_SECONDS),
  });
  const cleartext = cleartextTokenWarning(opts.token ?? null, Boolean(tls.ca || tls.cert), 'shard');
  if (cleartext) log.warn('INSECURE', { problem: cleartext });
  try {
    await keepJoining(address, opts.reconnectSeconds ?? 300, log, async (welcomed) => {
      const session = (call = client.session(tokenMetadata(opts.token ?? null)));
      try {
        await serve(session, shard, { dataPort: data.port, advertise: opts.advertise ?? '' }, () => { joined = true; welcomed(); });
      } catch (err) {
        session.cancel();
        shard.reset();
        joined = false;
        throw err;
      }
    });
    log.info('finished', { coordinator: address });
  } finally {
    client.close();
    data.server.close();
    http?.close();
  }
}

/** One session with the coordinator: join, then handle its commands in order until it ends the stream (the job is over). */
async function serve(call: Call, shard: Shard, join: { dataPort: number; advertise: string }, welcomed: () => void): Promise<void> {
  await writeWithBackpressure(call, { kind: { $case: 'join', value: { dataPort: join.dataPort, dataHost: join.advertise } } });
  for await (const cmd of call as AsyncIterable<ShardCommand>) {
    if (cmd.kind?.$case === 'welcome') welcomed();
    await shard.handle(cmd);
  }
}
