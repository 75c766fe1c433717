// reject reasons – one vocabulary (core/errors.ts) for the wire checks, the
// metric's label and the docs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DeadlineExceeded, JobFailed, REJECT_REASONS, rejectReason, Unauthenticated, WireInvalid, WorkerRefused } from '../core/errors';
import { toStatus } from '../coordinator/server';

test('reject reasons – docs/observability.md lists exactly the vocabulary', () => {
  const doc = readFileSync(join(__dirname, '..', '..', 'docs', 'observability.md'), 'utf8');
  const row = doc.split('\n').find((l) => l.startsWith('| `tunefleet_rejected_messages_total`'))!;
  const listed = [...row.split('|')[4].matchAll(/`([a-z-]+)`/g)].map((m) => m[1]);
  assert.deepEqual(listed, Object.keys(REJECT_REASONS));
});

test('reject reasons – each error is counted under one reason and ends the session with one status', () => {
  const cases: [Error, string | null, grpc.status][] = [
    [new WireInvalid('x', 'shape'), 'shape', grpc.status.INVALID_ARGUMENT],
    [new WireInvalid('x', 'oversized'), 'oversized', grpc.status.RESOURCE_EXHAUSTED],
    [new Unauthenticated('x'), 'auth', grpc.status.UNAUTHENTICATED],
    [new WorkerRefused('x'), 'refused', grpc.status.PERMISSION_DENIED],
    [new JobFailed('x'), 'job-finished', grpc.status.FAILED_PRECONDITION],
    [new DeadlineExceeded('x'), null, grpc.status.DEADLINE_EXCEEDED], // not a refused message: not counted
    [new TypeError('x'), 'internal', grpc.status.INTERNAL],
  ];
  for (const [err, reason, code] of cases) {
    assert.equal(rejectReason(err), reason, err.name);
    assert.equal(toStatus(err).code, code, err.name);
  }
  assert.equal(toStatus(new WireInvalid('bad shape', 'shape')).details, 'shape: bad shape', 'details start with the reason');
  assert.equal(toStatus(new DeadlineExceeded('no result in 3 s')).details, 'deadline: no result in 3 s');
});
