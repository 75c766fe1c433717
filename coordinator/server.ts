// The coordinator's gRPC server. It only translates: wire messages in,
// Cluster calls out. Any error a handler throws becomes a gRPC status in one
// place (`toStatus`) and ends that worker's session; the job goes on with the
// others (see round.ts).
import * as grpc from '@grpc/grpc-js';
import { JobFailed, WireInvalid, WorkerRefused } from '../core/errors';
import { logger } from '../core/log';
import { authorized, serverCredentials, ServerTls } from '../core/security';
import { MAX_MESSAGE_BYTES } from '../core/wire-tensors';
import { CoordinatorService, WorkerMessage } from '../proto/gen/tunefleet/v1/tunefleet';
import { Cluster } from './cluster';
import { SessionCall, WorkerSession } from './session';

const log = logger('server');

export function toStatus(err: unknown): Partial<grpc.StatusObject> {
  if (err instanceof WireInvalid) return { code: grpc.status.INVALID_ARGUMENT, details: `${err.reason}: ${err.message}` };
  if (err instanceof WorkerRefused) return { code: grpc.status.PERMISSION_DENIED, details: err.message };
  if (err instanceof JobFailed) return { code: grpc.status.FAILED_PRECONDITION, details: err.message };
  return { code: grpc.status.INTERNAL, details: err instanceof Error ? err.message : String(err) };
}

function handleSession(cluster: Cluster, token: string | null, call: SessionCall): void {
  if (!authorized(token, call.metadata)) {
    cluster.metrics.rejected('auth');
    log.warn('session refused', { reason: 'missing or wrong token' });
    call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: 'missing or wrong worker token (--token-file or TUNEFLEET_TOKEN)' });
    return;
  }
  // Messages are matched to this stream's own session, so a reconnected
  // worker's new session is never touched by its old stream's late messages.
  let session: WorkerSession | null = null;
  const fail = (err: unknown) => {
    const status = toStatus(err);
    const reason = err instanceof WireInvalid ? err.reason : err instanceof WorkerRefused ? 'refused' : 'internal';
    if (session) return cluster.drop(session.id, status, reason);
    log.warn('session rejected', { details: status.details });
    cluster.metrics.rejected(reason);
    call.emit('error', status);
  };
  call.on('data', (msg: WorkerMessage) => {
    try {
      const kind = msg.kind;
      if (!session) {
        if (kind?.$case !== 'join') throw new WireInvalid('the first message must be Join', 'no-join');
        session = cluster.join(call, kind.value);
        return;
      }
      if (!session.alive) return; // dropped: the stream is closing
      switch (kind?.$case) {
        case 'gradient': return cluster.onGradient(session.id, kind.value);
        case 'stepDone': return cluster.onStepDone(session.id, kind.value);
        case 'evalDone': return cluster.onEvalDone(session.id, kind.value);
        default: throw new WireInvalid(`unexpected ${kind?.$case ?? 'empty'} message`, 'unexpected');
      }
    } catch (err) {
      fail(err);
    }
  });
  const gone = (reason: string) => () => { if (session?.alive) cluster.leave(session.id, reason); };
  call.on('end', gone('stream ended'));
  call.on('cancelled', gone('cancelled'));
  call.on('close', gone('stream closed'));
  call.on('error', gone('stream error'));
}

export interface ServerSecurity extends ServerTls {
  token: string | null;
}

/**
 * Rejections that happen inside gRPC, before a handler sees a message, are
 * counted too: bytes that do not decode as a WorkerMessage ('undecodable'),
 * and messages over MAX_MESSAGE_BYTES, which gRPC refuses from their length
 * prefix without buffering them ('oversized', status RESOURCE_EXHAUSTED).
 */
function countedService(cluster: Cluster): typeof CoordinatorService {
  const session = CoordinatorService.session;
  const requestDeserialize = (bytes: Buffer): WorkerMessage => {
    try {
      return session.requestDeserialize(bytes);
    } catch (err) {
      cluster.metrics.rejected('undecodable');
      throw err;
    }
  };
  return { ...CoordinatorService, session: { ...session, requestDeserialize } };
}

const countOversized = (cluster: Cluster): grpc.ServerInterceptor => (_method, call) => new grpc.ServerInterceptingCall(call, {
  sendStatus: (status, next) => {
    if (status.code === grpc.status.RESOURCE_EXHAUSTED) cluster.metrics.rejected('oversized');
    next(status);
  },
});

export async function startServer(cluster: Cluster, host: string, port: number, security: ServerSecurity): Promise<{ server: grpc.Server; port: number }> {
  const server = new grpc.Server({
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES, 'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    interceptors: [countOversized(cluster)],
  });
  server.addService(countedService(cluster), {
    session: (call: SessionCall) => handleSession(cluster, security.token, call),
    getLedger: (call: grpc.ServerUnaryCall<{ epoch: number }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      if (!authorized(security.token, call.metadata)) return cb({ code: grpc.status.UNAUTHENTICATED, details: 'missing or wrong token' });
      cb(null, cluster.ledger.report(call.request.epoch));
    },
  });
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${port}`, serverCredentials(security), (err, p) => (err ? reject(err) : resolve(p))));
  log.info('listening', { address: `${host}:${bound}`, tls: security.cert ? (security.clientCa ? 'mutual' : 'server') : 'off', token: security.token ? 'required' : 'off' });
  return { server, port: bound };
}
