// Outside clients for the coordinator's gRPC service, as a test (or an
// attacker) would write them from the .proto alone.
import * as grpc from '@grpc/grpc-js';
import { AUTH_HEADER } from '../core/wire/security';

export function auth(token: string | null): grpc.Metadata {
  const md = new grpc.Metadata();
  if (token) md.set(AUTH_HEADER, `Bearer ${token}`);
  return md;
}

/** How a call ended: its gRPC status (code and details). */
export function statusOf<A, B>(call: grpc.ClientDuplexStream<A, B>): Promise<{ code: number; details: string }> {
  return new Promise((resolve) => {
    call.on('data', () => {});
    call.on('error', (e: grpc.ServiceError) => resolve({ code: e.code, details: e.details }));
    call.on('status', (s: grpc.StatusObject) => resolve({ code: s.code, details: s.details }));
  });
}

/** How a call ended: its gRPC status code. */
export function ended<A, B>(call: grpc.ClientDuplexStream<A, B>): Promise<number> {
  return statusOf(call).then((s) => s.code);
}
