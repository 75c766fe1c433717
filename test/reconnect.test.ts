// reconnect – a worker's backoff and which refusals are final.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { backoffSeconds, isRetryable } from '../core/wire/reconnect';

test('reconnect – backoff doubles from 0.5 s to a 10 s cap with jitter; refusals are final', () => {
  const policy = { baseSeconds: 0.5, maxSeconds: 10 };
  assert.deepEqual([0, 1, 2, 3, 10].map((a) => backoffSeconds(policy, a, () => 0.999999).toFixed(2)), ['0.50', '1.00', '2.00', '4.00', '10.00']);
  assert.equal(backoffSeconds(policy, 1, () => 0), 0.5, 'jitter takes up to half off');
  for (const code of [grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.INVALID_ARGUMENT, grpc.status.CANCELLED]) assert.equal(isRetryable({ code }), true);
  for (const code of [grpc.status.UNAUTHENTICATED, grpc.status.PERMISSION_DENIED, grpc.status.FAILED_PRECONDITION]) assert.equal(isRetryable({ code }), false);
  assert.equal(isRetryable(new Error('stream closed')), true);
});
