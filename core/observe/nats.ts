// Publishing training events to NATS — the only module that imports the NATS
// client. Each event goes out as JSON on `tunefleet.<job>.events.<type>`
// (e.g. tunefleet.fashion.events.worker.joined).
//
// NATS is a side channel: it never blocks or fails training. We connect in
// the background and reconnect forever; while not connected, events are
// dropped and counted (tunefleet_events_dropped_total) rather than queued,
// so a long outage cannot grow memory or replay stale events later.
import { connect, JSONCodec, NatsConnection } from 'nats';
import { TrainingEvent } from './events';
import { logger } from './log';
import { redactUrl } from '../util/redact';
import { backoffSeconds } from '../wire/reconnect';

const log = logger('nats');
const CONNECTION_CHANGES = new Set(['disconnect', 'reconnect', 'staleConnection', 'error']);
const WATCH_BACKOFF = { baseSeconds: 1, maxSeconds: 15 };
const codec = JSONCodec<TrainingEvent>();

export function subjectFor(job: string, type: string): string {
  return `tunefleet.${job}.events.${type}`;
}

export class NatsPublisher {
  private nc: NatsConnection | null = null;
  private connected = false;
  private closed = false;

  constructor(private readonly url: string, private readonly onDrop: () => void) {
    void this.start();
  }

  private async start(): Promise<void> {
    try {
      this.nc = await connect({ servers: this.url, name: 'tunefleet-coordinator', waitOnFirstConnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 250, pingInterval: 2000 });
    } catch (err) {
      log.warn('cannot connect', { url: redactUrl(this.url), error: (err as Error).message });
      return;
    }
    if (this.closed) return void this.nc.close();
    this.connected = true;
    log.info('connected', { url: redactUrl(this.url) });
    for await (const s of this.nc.status()) {
      if (s.type === 'disconnect' || s.type === 'staleConnection') this.connected = false;
      if (s.type === 'reconnect') this.connected = true;
      // Pings and their timers are routine: only a change of connection is worth a line at info.
      if (CONNECTION_CHANGES.has(String(s.type))) log.info('status', { status: s.type });
      else log.debug('status', { status: s.type });
    }
  }

  readonly publish = (e: TrainingEvent): void => {
    if (!this.nc || !this.connected || this.nc.isClosed()) return this.onDrop();
    try {
      this.nc.publish(subjectFor(e.job, e.type), codec.encode(e));
    } catch {
      this.onDrop();
    }
  };

  /** Flush what is buffered (bounded wait) and close. */
  async close(): Promise<void> {
    this.closed = true;
    if (!this.nc || this.nc.isClosed()) return;
    if (this.connected) await Promise.race([this.nc.flush().catch(() => undefined), new Promise((r) => setTimeout(r, 1000))]);
    await this.nc.close();
  }
}

/** `tunefleet watch`: every event of one job (or all jobs), as it happens. */
/**
 * Deliver every event of `job` (all jobs when absent) to `onEvent`, forever.
 * A NATS server that cannot be reached, at the start or later, is tried
 * again with backoff; `onTrouble` hears each one-line reason.
 */
export async function watchEvents(url: string, job: string | undefined, onEvent: (e: TrainingEvent) => void, onTrouble: (line: string) => void = () => {}): Promise<void> {
  let nc: NatsConnection;
  for (let attempt = 0; ; attempt++) {
    try {
      nc = await connect({ servers: url, name: 'tunefleet-watch', maxReconnectAttempts: -1, reconnectTimeWait: 1000 });
      break;
    } catch (err) {
      const delay = backoffSeconds(WATCH_BACKOFF, attempt);
      onTrouble(`cannot reach NATS at ${redactUrl(url)} (${(err as { code?: string }).code ?? (err as Error).message}); trying again in ${delay.toFixed(0)} s`);
      await new Promise((r) => setTimeout(r, delay * 1000));
    }
  }
  void (async () => {
    for await (const s of nc.status()) if (s.type === 'disconnect' || s.type === 'reconnect') onTrouble(s.type === 'disconnect' ? `lost NATS at ${redactUrl(url)}; reconnecting` : 'reconnected to NATS');
  })();
  const sub = nc.subscribe(`tunefleet.${job ?? '*'}.events.>`);
  for await (const m of sub) {
    try {
      onEvent(codec.decode(m.data));
    } catch (err) {
      log.warn('undecodable event', { subject: m.subject, error: (err as Error).message });
    }
  }
}
