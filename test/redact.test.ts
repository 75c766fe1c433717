// redact – credentials in a job config never reach workers or logs; a token
// without TLS is warned about on both sides.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseJob } from '../core/job/config';
import { redactJob, redactUrl } from '../core/util/redact';
import { cleartextTokenWarning } from '../core/wire/security';
import { fakeCluster, joinWorker } from './fleet-fakes';
import { FakeClock } from './fake-clock';

test('redact – user info and query values are masked; other text is left alone', () => {
  assert.equal(redactUrl('nats://alice:s3cret@nats:4222'), 'nats://***:***@nats:4222');
  assert.equal(redactUrl('https://bucket.example/m/model.json?X-Amz-Signature=abc&X-Amz-Expires=60'), 'https://bucket.example/m/model.json?X-Amz-Signature=***&X-Amz-Expires=***');
  assert.equal(redactUrl('nats://nats:4222'), 'nats://nats:4222');
  assert.equal(redactUrl('runs/pretrain/model/model.json'), 'runs/pretrain/model/model.json');
  const cfg = parseJob({ metrics: { nats: 'nats://alice:s3cret@nats:4222' }, model: { from: 'https://b/m.json?sig=abc' }, pretrain: { model: { from: 'https://u:p@b/m.json' } } });
  const text = JSON.stringify(redactJob(cfg));
  for (const secret of ['s3cret', 'alice', 'abc', 'u:p@']) assert.ok(!text.includes(secret), secret);
  assert.equal(cfg.metrics.nats, 'nats://alice:s3cret@nats:4222', 'the original is untouched');
});

test('redact – the Welcome a worker gets carries the job config without its credentials', async () => {
  const cluster = fakeCluster(new FakeClock(), 8, { metrics: { nats: 'nats://alice:s3cret@nats:4222' } });
  const w = joinWorker(cluster, 'w0');
  await new Promise((r) => setImmediate(r));
  const welcome = w.inbox.find((m) => m.kind?.$case === 'welcome');
  assert.ok(welcome?.kind?.$case === 'welcome');
  assert.ok(!welcome.kind.value.jobConfigJson.includes('s3cret'));
  assert.match(welcome.kind.value.jobConfigJson, /nats:\/\/\*\*\*:\*\*\*@nats:4222/);
});

test('security – a token without TLS is warned about on both sides; with TLS, or without a token, not', () => {
  assert.match(cleartextTokenWarning('t', false, 'coordinator')!, /cleartext.*set cluster\.tlsCert and cluster\.tlsKey/);
  assert.match(cleartextTokenWarning('t', false, 'worker')!, /cleartext.*--tls-ca/);
  assert.equal(cleartextTokenWarning('t', true, 'coordinator'), null);
  assert.equal(cleartextTokenWarning(null, false, 'worker'), null);
});
