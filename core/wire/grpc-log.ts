// grpc-js writes its own lines to stderr ("E No address added out of total 1
// resolved" beside our one-line error, in another format than ours). The CLI
// sends them into our log instead, as module `grpc` at debug:
// TUNEFLEET_DEBUG=grpc shows them when a connection problem needs its
// transport's detail.
import * as grpc from '@grpc/grpc-js';
import { logger } from '../observe/log';

export function routeGrpcLogs(): void {
  const log = logger('grpc');
  grpc.setLogger({ error: (...args: unknown[]) => log.debug('grpc-js', { message: args.map(String).join(' ') }) });
  grpc.setLogVerbosity(grpc.logVerbosity.ERROR);
}
