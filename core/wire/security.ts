// Who may talk to the coordinator. Two independent layers:
// - a shared token: the coordinator's comes from cluster.tokenFile or
//   TUNEFLEET_TOKEN; a worker's from --token-file or TUNEFLEET_TOKEN. Workers
//   send it as `authorization: Bearer <token>` metadata; it is compared in
//   constant time and never logged, put in metrics or events, or sent to
//   workers (only the file's path is in the job config);
// - TLS for gRPC and the data plane (cluster.tlsCert/tlsKey), and mutual
//   TLS when cluster.tlsClientCa is set: a worker without a client
//   certificate signed by that CA is refused in the handshake.
import * as grpc from '@grpc/grpc-js';
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type * as tls from 'node:tls';
import { ConfigInvalid } from '../errors';

export const AUTH_HEADER = 'authorization';

export function readToken(file: string | null | undefined): string | null {
  if (file) {
    try {
      const token = readFileSync(file, 'utf8').trim();
      if (token) return token;
    } catch (err) {
      throw new ConfigInvalid(`cannot read the token file ${file}: ${(err as Error).message}`, { cause: err });
    }
    throw new ConfigInvalid(`the token file ${file} is empty: put the shared worker token in it`);
  }
  const env = process.env.TUNEFLEET_TOKEN;
  if (env === undefined) return null;
  // Set but empty is an empty Secret or a typo, never a wish to run open: say so instead of running without a token.
  if (!env.trim()) throw new ConfigInvalid('TUNEFLEET_TOKEN is set but empty (an empty Secret?): put the shared token in it, e.g. kubectl create secret generic tunefleet-token --from-literal=token=$(openssl rand -hex 32), or unset it to run without one');
  return env.trim();
}

/** Loopback addresses: nothing else can reach a coordinator bound there. */
export const isLoopback = (host: string) => host === 'localhost' || host === '::1' || host.startsWith('127.');

/**
 * Why a coordinator must not start open: no token while it listens beyond
 * loopback, without cluster.insecure (`--insecure`). Anyone who reaches the
 * port could join as a worker or a shard and train or serve what it likes.
 */
export function openAccessProblem(token: string | null, host: string, insecure: boolean): string | null {
  if (token || insecure || isLoopback(host)) return null;
  return `no token, and the coordinator listens on ${host}: anyone who reaches its ports could join as a worker or a shard. ` +
    'Give it one (cluster.tokenFile or TUNEFLEET_TOKEN; workers and shards the same), listen on 127.0.0.1, or pass --insecure (cluster.insecure: true) to run open on purpose';
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** True when no token is required, or the call carries the right one. */
export function authorized(expected: string | null, metadata: grpc.Metadata): boolean {
  if (expected === null) return true;
  const sent = String(metadata.get(AUTH_HEADER)[0] ?? '').replace(/^Bearer /, '');
  return timingSafeEqual(digest(sent), digest(expected));
}

/** The warning to log loudly when a token is required or sent without TLS (anyone on the path can read it); null when there is none. */
export function cleartextTokenWarning(token: string | null, tls: boolean, side: 'coordinator' | 'worker' | 'shard'): string | null {
  if (!token || tls) return null;
  return side === 'coordinator'
    ? 'the worker token travels in cleartext: anyone who can see the network can read it and join as a worker; set cluster.tlsCert and cluster.tlsKey'
    : side === 'worker'
      ? 'this worker sends its token in cleartext: anyone who can see the network can read it; pass --tls-ca (the coordinator must serve TLS)'
      : 'this shard sends its token in cleartext: anyone who can see the network can read it; pass --tls-ca (and --tls-cert/--tls-key: its data port then serves TLS too)';
}

export function tokenMetadata(token: string | null): grpc.Metadata {
  const md = new grpc.Metadata();
  if (token) md.set(AUTH_HEADER, `Bearer ${token}`);
  return md;
}

function readPem(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ConfigInvalid(`cannot read the ${what} ${file}: ${(err as Error).message}`, { cause: err });
  }
}

export interface ServerTls { cert: string | null; key: string | null; clientCa: string | null }

/** The PEM files of `t`, read and checked once for both planes; null: plaintext. */
function serverPems(t: ServerTls): { cert: Buffer; key: Buffer; ca: Buffer | null } | null {
  if (!t.cert && !t.key) {
    if (t.clientCa) throw new ConfigInvalid('cluster.tlsClientCa needs cluster.tlsCert and cluster.tlsKey');
    return null;
  }
  if (!t.cert || !t.key) throw new ConfigInvalid('TLS needs both cluster.tlsCert and cluster.tlsKey');
  return { cert: readPem(t.cert, 'TLS certificate'), key: readPem(t.key, 'TLS key'), ca: t.clientCa ? readPem(t.clientCa, 'client CA') : null };
}

export function serverCredentials(t: ServerTls): grpc.ServerCredentials {
  const pems = serverPems(t);
  if (!pems) return grpc.ServerCredentials.createInsecure();
  return grpc.ServerCredentials.createSsl(pems.ca, [{ cert_chain: pems.cert, private_key: pems.key }], Boolean(pems.ca));
}

/** The data plane's server TLS options (same files, same rule: a client CA means client certificates are required); null: plaintext. */
export function dataPlaneTls(t: ServerTls): tls.TlsOptions | null {
  const pems = serverPems(t);
  if (!pems) return null;
  return { cert: pems.cert, key: pems.key, ...(pems.ca ? { ca: pems.ca, requestCert: true, rejectUnauthorized: true } : {}) };
}

export interface ClientTls { ca?: string; cert?: string; key?: string }

/** The worker's PEM files, read and checked once for both planes; null: plaintext. */
function clientPems(t: ClientTls): { ca: Buffer | null; key: Buffer | null; cert: Buffer | null } | null {
  if (!t.ca && !t.cert) return null;
  if (Boolean(t.cert) !== Boolean(t.key)) throw new ConfigInvalid('--tls-cert and --tls-key go together');
  return { ca: t.ca ? readPem(t.ca, 'CA') : null, key: t.key ? readPem(t.key, 'TLS key') : null, cert: t.cert ? readPem(t.cert, 'TLS certificate') : null };
}

export function clientCredentials(t: ClientTls): grpc.ChannelCredentials {
  const pems = clientPems(t);
  return pems ? grpc.credentials.createSsl(pems.ca, pems.key, pems.cert) : grpc.credentials.createInsecure();
}

/** The worker's data connection TLS options (its --tls-* files), or null when it talks plaintext. */
export function dataPlaneClientTls(t: ClientTls, host: string): tls.ConnectionOptions | null {
  const pems = clientPems(t);
  if (!pems) return null;
  return {
    ...(pems.ca ? { ca: pems.ca } : {}),
    ...(pems.cert ? { cert: pems.cert, key: pems.key! } : {}),
    servername: isIP(host) ? undefined : host, // SNI takes names only; the certificate is checked against `host` either way
  };
}
