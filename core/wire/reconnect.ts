// When a worker's (or a parameter shard's) session ends without Finish,
// should it join again, and when? Transient trouble (coordinator restarting or unreachable, our stream
// dropped for a missed deadline or a bad message) is retried with capped
// exponential backoff and jitter, so a restarted coordinator is not hit by
// every worker at once. A refusal that retrying cannot fix (wrong token,
// refused worker id, job finished, a data port it cannot reach) ends the
// worker with that error.
import * as grpc from '@grpc/grpc-js';
import { JobFailed } from '../errors';
import { Logger } from '../observe/log';

const FINAL = new Set([grpc.status.UNAUTHENTICATED, grpc.status.PERMISSION_DENIED, grpc.status.FAILED_PRECONDITION, grpc.status.UNIMPLEMENTED]);

export function isRetryable(err: unknown): boolean {
  if (err instanceof JobFailed) return false; // the worker's own verdict (e.g. the data port cannot be reached)
  const code = (err as Partial<grpc.ServiceError>)?.code;
  return typeof code !== 'number' || !FINAL.has(code);
}

export interface BackoffPolicy {
  baseSeconds: number;
  maxSeconds: number;
}

/** Delay before reconnect attempt `attempt` (0-based): base·2^attempt capped at max, times a jitter in [0.5, 1). */
export function backoffSeconds(policy: BackoffPolicy, attempt: number, random = Math.random): number {
  return Math.min(policy.maxSeconds, policy.baseSeconds * 2 ** attempt) * (0.5 + random() / 2);
}

const BACKOFF: BackoffPolicy = { baseSeconds: 0.5, maxSeconds: 10 };

/**
 * Run sessions with the coordinator until one resolves (the job is over): a
 * worker's, or a parameter shard's. A session that throws is joined again
 * after backoff while its error is retryable, for up to `giveUpSeconds` since
 * the last session that got in (it calls `joined()`); then the error ends the
 * process, as a JobFailed naming the coordinator. `session` cleans up after
 * itself when it throws.
 */
export async function keepJoining(address: string, giveUpSeconds: number, log: Logger, session: (joined: () => void) => Promise<void>): Promise<void> {
  let attempt = 0, lostAt = Date.now(), everJoined = false;
  for (;;) {
    let joined = false;
    try {
      return await session(() => { joined = everJoined = true; });
    } catch (err) {
      if (joined) { attempt = 0; lostAt = Date.now(); }
      if (!isRetryable(err) || Date.now() - lostAt >= giveUpSeconds * 1000) throw asJobFailed(err, address, everJoined, giveUpSeconds);
      const delay = backoffSeconds(BACKOFF, attempt++);
      const what = everJoined ? 'lost the coordinator; joining again' : 'cannot reach the coordinator yet; trying again';
      log.warn(what, { coordinator: address, inSeconds: +delay.toFixed(2), error: (err as Error).message });
      await new Promise((r) => setTimeout(r, delay * 1000));
    }
  }
}

function asJobFailed(err: unknown, address: string, everJoined: boolean, giveUpSeconds: number): JobFailed {
  if (err instanceof JobFailed) return err;
  const what = everJoined ? `lost the coordinator at ${address}` : `could not join the coordinator at ${address} (is it running, and is HOST:PORT right?)`;
  return new JobFailed(`${what}: ${(err as Error).message}${isRetryable(err) ? ` (gave up after ${giveUpSeconds} s: --reconnect-for)` : ''}`, { cause: err });
}
