// When a worker's session ends without Finish, should it join again, and
// when? Transient trouble (coordinator restarting or unreachable, our stream
// dropped for a missed deadline or a bad message) is retried with capped
// exponential backoff and jitter, so a restarted coordinator is not hit by
// every worker at once. A refusal that retrying cannot fix (wrong token,
// refused worker id, job finished, a data port it cannot reach) ends the
// worker with that error.
import * as grpc from '@grpc/grpc-js';
import { JobFailed } from '../core/errors';

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
