// The small HTTP server every tunefleet process runs for operators:
// /metrics (Prometheus text format), /livez (the process is up: Kubernetes'
// livenessProbe), /readyz (it can do its job: the coordinator serves gRPC, a
// worker or shard has joined) and /healthz (is the job making progress: on
// the coordinator 503 with the reason while it cannot — waiting for a shard,
// no live worker —, for alerts and `curl`; a restart would not help, so no
// probe restarts on it). A port that cannot be bound is logged, never fatal:
// training matters more than its dashboard.
import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { logger } from './log';
import { Metrics } from './metrics';

const log = logger('http');

export interface Probes {
  ready: () => boolean;
  /** null: healthy; else why not (the job cannot make progress). Absent: healthy while up. */
  unhealthy?: () => string | null;
}

const PATHS = '/metrics /livez /readyz /healthz';

export async function startHttpServer(metrics: Metrics, host: string, port: number, probes: Probes): Promise<Server | null> {
  const server = createServer(async (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      res.writeHead(200, { 'content-type': metrics.contentType });
      res.end(await metrics.text());
    } else if (path === '/livez') {
      res.writeHead(200).end('ok\n');
    } else if (path === '/healthz') {
      const why = probes.unhealthy?.() ?? null;
      res.writeHead(why ? 503 : 200).end(why ? `unhealthy: ${why}\n` : 'ok\n');
    } else if (path === '/readyz') {
      const ok = probes.ready();
      res.writeHead(ok ? 200 : 503).end(ok ? 'ready\n' : 'not ready\n');
    } else {
      res.writeHead(404).end(`not found: try ${PATHS}\n`);
    }
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, resolve);
    });
  } catch (err) {
    log.warn('metrics server not started', { host, port, error: (err as Error).message });
    return null;
  }
  server.unref();
  log.info('metrics listening', { host, port: (server.address() as AddressInfo).port, paths: PATHS });
  return server;
}
