// The coordinator's gRPC server. It only translates: wire messages in,
// Cluster calls out, and a worker's session Channel over its stream. Any
// error becomes a gRPC status in one place (`toStatus`); an error a handler
// throws ends that worker's session, and the job goes on with the others
// (see round.ts).
import * as grpc from '@grpc/grpc-js';
import { ConnectionLost, DeadlineExceeded, endedBecause, JobDiverged, JobFailed, rejectReason, Unauthenticated, WireInvalid, WorkerRefused } from '../core/errors';
import { logger, logRefusal } from '../core/observe/log';
import { authorized, cleartextTokenWarning, serverCredentials, ServerTls } from '../core/wire/security';
import { MAX_MESSAGE_BYTES } from '../core/wire/tensors';
import { portProblem } from '../core/wire/data-plane';
import { keepalive, writeWithBackpressure } from '../core/wire/backpressure';
import { CoordinatorMessage, CoordinatorService, LedgerRequest, ShardCommand, ShardMessage, ShardsService, WorkerMessage } from '../proto/gen/tunefleet/v1/tunefleet';
import { Cluster } from './cluster';
import { Channel, WorkerSession } from './session';
import { ShardPeer } from './shard-set';

type SessionCall = grpc.ServerDuplexStream<WorkerMessage, CoordinatorMessage>;
type ShardCall = grpc.ServerDuplexStream<ShardMessage, ShardCommand>;

const log = logger('server');

/** The one mapping from an error to the gRPC status that ends a session. */
export function toStatus(err: unknown): Partial<grpc.StatusObject> {
  return { code: statusCode(err), details: err instanceof Error ? endedBecause(err) : String(err) };
}

function statusCode(err: unknown): grpc.status {
  if (err instanceof WireInvalid) return err.reason === 'oversized' ? grpc.status.RESOURCE_EXHAUSTED : grpc.status.INVALID_ARGUMENT;
  if (err instanceof DeadlineExceeded) return grpc.status.DEADLINE_EXCEEDED;
  if (err instanceof ConnectionLost) return grpc.status.UNAVAILABLE;
  if (err instanceof Unauthenticated) return grpc.status.UNAUTHENTICATED;
  if (err instanceof WorkerRefused) return grpc.status.PERMISSION_DENIED;
  if (err instanceof JobFailed || err instanceof JobDiverged) return grpc.status.FAILED_PRECONDITION;
  return grpc.status.INTERNAL;
}

/** A worker session's Channel over its gRPC stream. */
function streamChannel(call: SessionCall, stallSeconds: number): Channel {
  return {
    write: (msg) => writeWithBackpressure(call, msg, stallSeconds),
    end: () => call.end(),
    fail: (err) => call.emit('error', toStatus(err)),
  };
}

function handleSession(cluster: Cluster, opts: ServerOptions, call: SessionCall): void {
  // Messages are matched to this stream's own session, so a reconnected
  // worker's new session is never touched by its old stream's late messages.
  let session: WorkerSession | null = null;
  let closed = false;
  const fail = (err: unknown) => {
    if (session) return cluster.drop(session.id, err instanceof Error ? err : new Error(String(err)));
    if (closed) return;
    closed = true;
    clearTimeout(joinTimer);
    const status = toStatus(err);
    const reason = rejectReason(err) ?? 'internal'; // before Join no slice, so no deadline
    logRefusal(log, reason, status.details);
    cluster.metrics.rejected(reason);
    call.emit('error', status);
  };
  const joinTimer = setTimeout(() => fail(new WireInvalid(`no Join within ${opts.joinTimeoutSeconds} s`, 'no-join')), opts.joinTimeoutSeconds * 1000);
  if (!authorized(opts.token, call.metadata)) return fail(new Unauthenticated('missing or wrong worker token (--token-file or TUNEFLEET_TOKEN)'));
  call.on('data', (msg: Incoming) => {
    if (closed) return; // refused before Join: nothing after counts, not even a Join
    try {
      if (msg.invalid) throw msg.invalid;
      const kind = msg.kind;
      if (!session) {
        if (kind?.$case !== 'join') throw new WireInvalid('the first message must be Join', 'no-join');
        session = cluster.join(kind.value, streamChannel(call, cluster.stallSeconds));
        clearTimeout(joinTimer);
        return;
      }
      if (!session.alive) return; // dropped: the stream is closing
      switch (kind?.$case) {
        case 'gradient': return cluster.steps.onGradient(session.id, kind.value);
        case 'stepDone': return cluster.steps.onStepDone(session.id, kind.value);
        case 'evalDone': return cluster.evaluations.onEvalDone(session.id, kind.value);
        case 'shardTrouble': return cluster.onShardTrouble(session.id, kind.value);
        case 'leave': cluster.leave(session.id, `left: ${kind.value.reason.slice(0, 100)}`, true); return call.end();
        default: throw new WireInvalid(`unexpected ${kind?.$case ?? 'empty'} message`, 'unexpected');
      }
    } catch (err) {
      fail(err);
    }
  });
  const gone = (reason: string) => () => {
    clearTimeout(joinTimer);
    if (session?.alive) cluster.leave(session.id, reason);
  };
  call.on('end', () => {
    // The worker half-closed its side: end ours too, so the call gets a
    // status rather than hanging open; before Join that is a refused session.
    if (!session) return fail(new WireInvalid('the stream ended before Join', 'no-join'));
    gone('stream ended')();
    if (!call.writableEnded) call.end();
  });
  call.on('cancelled', gone('cancelled'));
  call.on('close', gone('stream closed'));
  call.on('error', gone('stream error'));
}

/** The host a stream comes from, as grpc-js names its peer (`1.2.3.4:5678`, `[::1]:5678`, `ipv4:…`). */
export function peerHost(peer: string): string {
  const address = peer.replace(/^ipv[46]:/, '');
  return address.slice(0, address.lastIndexOf(':')).replace(/^\[(.*)\]$/, '$1').replace(/^::ffff:/, '');
}

/** A parameter shard's stream (shard-set.ts): ShardJoin first, then its reports, until it ends (the shard is lost) or the job does. */
function handleShardSession(cluster: Cluster, token: string | null, call: ShardCall): void {
  const shards = cluster.shards;
  let peer: ShardPeer | null = null;
  const fail = (err: unknown) => {
    if (peer) shards!.left(peer, err instanceof Error ? err.message : String(err));
    call.emit('error', toStatus(err));
  };
  if (!authorized(token, call.metadata)) return fail(new Unauthenticated('missing or wrong token (--token-file or TUNEFLEET_TOKEN)'));
  if (!shards) return fail(new JobFailed('this job runs without parameter shards (cluster.shards: 0)'));
  call.on('data', (msg: ShardMessage) => {
    try {
      if (peer) return shards.onMessage(peer, msg);
      if (msg.kind?.$case !== 'join') throw new WireInvalid('the first message must be ShardJoin', 'no-join');
      peer = shards.join(msg.kind.value, peerHost(call.getPeer()), {
        write: (cmd) => writeWithBackpressure(call, cmd, cluster.stallSeconds),
        end: () => call.end(),
        fail: (err) => call.emit('error', toStatus(err)),
      });
    } catch (err) {
      fail(err);
    }
  });
  const gone = (reason: string) => () => { if (peer) shards.left(peer, reason); };
  call.on('end', () => { gone('stream ended')(); if (!call.writableEnded) call.end(); });
  call.on('cancelled', gone('cancelled'));
  call.on('close', gone('stream closed'));
  call.on('error', gone('stream error'));
}

/** A unary RPC that answers only calls carrying the token. */
function guarded<Req, Res>(token: string | null, answer: (request: Req) => Res) {
  return (call: grpc.ServerUnaryCall<Req, Res>, cb: grpc.sendUnaryData<Res>) => {
    if (!authorized(token, call.metadata)) return cb(toStatus(new Unauthenticated('missing or wrong token')));
    cb(null, answer(call.request));
  };
}

export interface ServerOptions extends ServerTls {
  host: string;
  port: number;
  token: string | null;
  joinTimeoutSeconds: number;
  /** cluster.keepaliveSeconds: a connection whose peer does not answer a ping is closed (its sessions end). */
  keepaliveSeconds: number;
}

/**
 * Bytes that do not decode as a WorkerMessage, or a message over
 * MAX_MESSAGE_BYTES, become a message carrying its WireInvalid, so the
 * session handler rejects and counts them like any other bad message (gRPC
 * itself would end the call before our code saw it, uncounted). gRPC's own
 * limit is twice ours: larger messages are refused from their length prefix,
 * before anything is buffered, and are the one kind not counted.
 */
type Incoming = WorkerMessage & { invalid?: WireInvalid };

function checkedService(): typeof CoordinatorService {
  const session = CoordinatorService.session;
  const requestDeserialize = (bytes: Buffer): Incoming => {
    if (bytes.length > MAX_MESSAGE_BYTES) {
      return { kind: undefined, invalid: new WireInvalid(`a ${bytes.length}-byte message is over the ${MAX_MESSAGE_BYTES}-byte limit`, 'oversized') };
    }
    try {
      return session.requestDeserialize(bytes);
    } catch (err) {
      return { kind: undefined, invalid: new WireInvalid(`not a WorkerMessage (${(err as Error).message})`, 'undecodable') };
    }
  };
  return { ...CoordinatorService, session: { ...session, requestDeserialize } };
}

export async function startServer(cluster: Cluster, opts: ServerOptions): Promise<{ server: grpc.Server; port: number }> {
  const { host, port } = opts;
  const server = new grpc.Server({
    'grpc.max_receive_message_length': 2 * MAX_MESSAGE_BYTES, 'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    ...keepalive(opts.keepaliveSeconds),
  });
  server.addService(checkedService(), {
    session: (call: SessionCall) => handleSession(cluster, opts, call),
    getLedger: guarded(opts.token, (r: LedgerRequest) => cluster.ledger.report(r.epoch)),
    getStatus: guarded(opts.token, () => cluster.status.report()),
  });
  server.addService(ShardsService, { session: (call: ShardCall) => handleShardSession(cluster, opts.token, call) });
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${port}`, serverCredentials(opts), (err, p) => {
      if (!err) return resolve(p);
      // grpc-js folds the socket's error into its message.
      const code = /EADDRINUSE|EACCES/.exec(err.message)?.[0];
      reject(code ? portProblem(Object.assign(err, { code }), host, port, 'cluster.port (or --port)') : err);
    }));
  const cleartext = cleartextTokenWarning(opts.token, Boolean(opts.cert), 'coordinator');
  if (cleartext) log.warn('INSECURE', { problem: cleartext });
  log.info('listening', { address: `${host}:${bound}`, tls: opts.cert ? (opts.clientCa ? 'mutual' : 'server') : 'off', token: opts.token ? 'required' : 'off' });
  return { server, port: bound };
}
