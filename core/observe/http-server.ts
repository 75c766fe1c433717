// The small HTTP server every tunefleet process runs for operators:
// /metrics (Prometheus text format), /healthz (the process is up) and /readyz
// (it can do its job: the coordinator serves gRPC, a worker has joined). A
// port that cannot be bound is logged, never fatal: training matters more
// than its dashboard.
import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { logger } from './log';
import { Metrics } from './metrics';

const log = logger('http');

export async function startHttpServer(metrics: Metrics, host: string, port: number, ready: () => boolean): Promise<Server | null> {
  const server = createServer(async (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      res.writeHead(200, { 'content-type': metrics.contentType });
      res.end(await metrics.text());
    } else if (path === '/healthz') {
      res.writeHead(200).end('ok\n');
    } else if (path === '/readyz') {
      const ok = ready();
      res.writeHead(ok ? 200 : 503).end(ok ? 'ready\n' : 'not ready\n');
    } else {
      res.writeHead(404).end('not found: try /metrics, /healthz or /readyz\n');
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
  log.info('metrics listening', { host, port: (server.address() as AddressInfo).port, paths: '/metrics /healthz /readyz' });
  return server;
}
