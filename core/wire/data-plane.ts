// A data plane (cluster.dataPlane: tcp), the coordinator's or a parameter
// shard's: a TCP server — TLS, with the same certificates, whenever the gRPC
// server is — where each worker session opens one connection for its tensors. Parameters go out as PARAM
// frames written from views of the master copy; gradient frames are read
// straight into the session's upload buffers (core/wire/frames.ts).
//
// No side door: a connection is anonymous until its first frame, a HELLO
// carrying the single-use ticket the session's Welcome gave (256 random
// bits, over the authenticated gRPC stream). A bad, spent or late ticket, or
// anything else first (random bytes, a partial HELLO), closes it, counted as
// `bad-ticket`. After that every
// frame gets the checks a gRPC gradient chunk gets, with the same reasons,
// and a bad one ends the session (cluster.drop). A connection that closes
// ends its session too, so the worker's slice is reassigned; one cut in the
// middle of a frame is also counted, as `truncated`.
import { randomBytes } from 'node:crypto';
import { AddressInfo, createServer, Server, Socket } from 'node:net';
import * as tls from 'node:tls';
import { ConfigInvalid, ConnectionLost, DeadlineExceeded, WireInvalid } from '../errors';
import { logger, logRefusal } from '../observe/log';
import { Metrics } from '../observe/metrics';
import { FrameWriter, readFrames } from './data-socket';
import { FrameHandler, FrameHeader, FrameKind, FrameReader, TICKET_BYTES } from './frames';
import { dataPlaneTls, ServerTls } from './security';
import { DType } from '../../proto/gen/tunefleet/v1/tunefleet';

const log = logger('data-plane');

/** What the data plane needs of the cluster. */
export interface DataPlaneHost {
  readonly tickets: Tickets;
  readonly metrics: Metrics;
  /** A worker that takes none of the parameter bytes written to it for this long is cut off and dropped (cluster.stallSeconds). */
  readonly stallSeconds: number;
  /** Where the payload of gradient frame `h` from worker `w` goes (checked like a gRPC chunk). */
  gradientTarget(w: string, h: FrameHeader): Uint8Array;
  gradientLanded(w: string, h: FrameHeader): void;
  drop(w: string, err: Error): void;
}

/** A session's data connection: parameters out as frames. */
export interface TensorLink {
  /** Send bytes [offset, offset + bytes.length) of variable `tensor` (its index in the model's variables) at `version`. */
  sendParam(tensor: number, version: number, offset: number, bytes: Uint8Array): Promise<void>;
  /** Every parameter of `version` the worker lacked has been sent. */
  paramsDone(version: number): Promise<void>;
  /** Resolves once everything sent so far has left this process (the arrays sent from may change after). */
  flushed(): Promise<void>;
  close(): void;
}

/** Whom a ticket admits: a worker's session (the coordinator's data plane) or a worker as a parameter shard knows it (shard/shard.ts, Peer). */
export interface TicketHolder {
  readonly id: string;
  readonly alive: boolean;
  attach(link: TensorLink): void;
}

/** Single-use tickets, each bound to the session it was issued to. */
export class Tickets {
  // Keyed by the ticket's hex: a Map lookup is not constant-time, but a
  // 256-bit random value cannot be guessed a byte at a time from timing.
  private readonly open = new Map<string, TicketHolder>();
  private readonly bySession = new WeakMap<TicketHolder, string>();

  issue(session: TicketHolder): Uint8Array {
    const ticket = randomBytes(TICKET_BYTES);
    this.admit(session, ticket);
    return ticket;
  }

  /** Admit `session` with a ticket issued elsewhere (a shard gets its workers' tickets from the coordinator). */
  admit(session: TicketHolder, ticket: Uint8Array): void {
    const key = Buffer.from(ticket).toString('hex');
    this.open.set(key, session);
    this.bySession.set(session, key);
  }

  /** The live session `ticket` was issued to; null for any other ticket. Spent either way. */
  redeem(ticket: Uint8Array): TicketHolder | null {
    const key = Buffer.from(ticket).toString('hex');
    const session = this.open.get(key);
    this.open.delete(key);
    return session?.alive ? session : null;
  }

  /** The session ended: its unused ticket goes too, so the map holds only live sessions'. */
  forget(session: TicketHolder): void {
    const key = this.bySession.get(session);
    if (key) this.open.delete(key);
  }

  get size(): number {
    return this.open.size;
  }
}

/** One worker's data connection: its TensorLink out, its gradient frames in. */
class DataConnection implements FrameHandler, TensorLink {
  private session: TicketHolder | null = null;
  private readonly ticket = Buffer.alloc(TICKET_BYTES);
  private writer: FrameWriter | null = null;
  private socket: Socket;
  /** Refused or failed: its close is already accounted for. */
  private over = false;
  private readonly reader = new FrameReader(this);
  private readonly helloTimer: NodeJS.Timeout;
  private error: Error | null = null;

  constructor(private readonly host: DataPlaneHost, accepted: Socket, helloSeconds: number) {
    this.socket = readFrames(accepted, this.reader, (err) => this.fail(err));
    this.socket.setNoDelay(true);
    this.socket.on('error', (err) => { this.error = err; }); // 'close' follows; a stalled write's DeadlineExceeded is why
    this.socket.on('close', () => this.closed());
    this.helloTimer = setTimeout(() => this.fail(new WireInvalid(`no HELLO within ${helloSeconds} s`, 'bad-ticket')), helloSeconds * 1000);
  }

  target(h: FrameHeader): Uint8Array {
    if (!this.session) {
      if (h.kind !== FrameKind.HELLO || h.length !== TICKET_BYTES) throw new WireInvalid(`the first frame must be a HELLO with a ${TICKET_BYTES}-byte ticket`, 'bad-ticket');
      return this.ticket;
    }
    if (h.kind !== FrameKind.GRADIENT) throw new WireInvalid(`unexpected ${FrameKind[h.kind]} frame from a worker`, 'unexpected');
    return this.host.gradientTarget(this.session.id, h);
  }

  landed(h: FrameHeader): void {
    if (this.session) return this.host.gradientLanded(this.session.id, h);
    const session = this.host.tickets.redeem(this.ticket);
    if (!session) throw new WireInvalid('the ticket is unknown, already used, or its session has ended', 'bad-ticket');
    clearTimeout(this.helloTimer);
    this.session = session;
    this.writer = new FrameWriter(this.socket, this.host.stallSeconds);
    session.attach(this);
  }

  sendParam(tensor: number, version: number, offset: number, bytes: Uint8Array): Promise<void> {
    return this.writer!.send({ kind: FrameKind.PARAM, dtype: DType.FLOAT32, tensor, version, offset }, bytes);
  }

  paramsDone(version: number): Promise<void> {
    return this.writer!.send({ kind: FrameKind.PARAMS_END, version });
  }

  flushed(): Promise<void> {
    return this.writer?.written ?? Promise.resolve();
  }

  /** Closed by this side (the session is over): whatever frame was arriving is not the peer's truncation. */
  close(): void {
    this.over = true;
    this.socket.destroy();
  }

  /** A frame broke the contract: before a valid HELLO the connection is refused (as `bad-ticket`, whatever was wrong); after, the session ends. */
  private fail(err: unknown): void {
    const error = err instanceof Error ? err : new Error(String(err));
    this.over = true;
    this.socket.destroy();
    if (this.session) return this.host.drop(this.session.id, error);
    this.refuse(error.message);
  }

  private refuse(details: string): void {
    clearTimeout(this.helloTimer);
    this.host.metrics.rejected('bad-ticket');
    logRefusal(log, 'bad-ticket', details, 'data connection refused');
  }

  private closed(): void {
    clearTimeout(this.helloTimer);
    if (this.over) return;
    const midFrame = !this.reader.idle;
    if (!this.session) {
      // One that closes before sending a byte (a port probe) is not a refusal.
      if (midFrame) this.refuse('closed before a complete HELLO');
      return;
    }
    // Counted even when the session already ended (its gRPC stream may close first): the frame was cut either way.
    if (midFrame) this.host.metrics.rejected('truncated');
    if (!this.session.alive) return;
    const stalled = this.error instanceof DeadlineExceeded ? this.error : null;
    this.host.drop(this.session.id, stalled ?? new ConnectionLost(`the data connection closed${midFrame ? ' in the middle of a frame' : ''}`));
  }
}

export interface DataPlaneOptions extends ServerTls {
  host: string;
  port: number;
  /** A connection must send its HELLO within this long (cluster.joinTimeoutSeconds). */
  helloSeconds: number;
  /** Where the user sets `port`, for the error when it cannot be bound (absent: cluster.dataPort). */
  portSetting?: string;
}

/** A port that cannot be bound, as one line naming the setting that chose it. */
export function portProblem(err: NodeJS.ErrnoException, host: string, port: number, setting: string): Error {
  const why = err.code === 'EADDRINUSE' ? 'is in use: stop what holds it, or' : err.code === 'EACCES' ? 'needs privileges this process lacks:' : `cannot be bound (${err.code ?? err.message}):`;
  return new ConfigInvalid(`${host}:${port} ${why} choose another port with ${setting}`, { cause: err });
}

/** Listen for data connections; resolves with the bound port. */
export async function startDataPlane(host: DataPlaneHost, opts: DataPlaneOptions): Promise<{ server: Server; port: number }> {
  const accept = (socket: Socket) => new DataConnection(host, socket, opts.helloSeconds);
  const secure = dataPlaneTls(opts);
  const server = secure
    ? tls.createServer(secure, accept)
    : createServer({ pauseOnConnect: true }, accept); // paused, so readFrames can take the connection over
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(portProblem(err as NodeJS.ErrnoException, opts.host, opts.port, opts.portSetting ?? 'cluster.dataPort (default: cluster.port + 1)')));
    server.listen(opts.port, opts.host, () => { server.removeAllListeners('error'); resolve(); });
  });
  server.on('error', (err) => log.warn('data plane server error', { error: err.message })); // e.g. out of file descriptors: sessions fail, the job goes on
  const port = (server.address() as AddressInfo).port;
  log.info('data plane listening', { address: `${opts.host}:${port}`, tls: opts.cert ? (opts.clientCa ? 'mutual' : 'server') : 'off' });
  return { server, port };
}
