// worker – what a worker keeps across sessions: joining again frees the
// previous session's model (tfjs tensors are not garbage collected).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../core/backend/backends';
import { buildModel } from '../core/model/zoo';
import { DType, Welcome } from '../proto/gen/tunefleet/v1/tunefleet';
import { hostOf, WorkerJob } from '../worker/worker';

before(async () => {
  await initBackend('wasm');
});

test('worker – five Welcomes in a row hold one model\'s tensors, not five', async () => {
  const model = buildModel('seed-cnn', [28, 28, 1], 10, 1);
  const welcome: Welcome = {
    workerId: 'w', job: 'j', modelTopologyJson: JSON.stringify(model.toJSON(null, false)), trainable: [], exampleShape: [28, 28, 1],
    normMean: [0], normStd: [1], trainSize: 4, valSize: 4, localData: false, jobConfigJson: '{}', gradientDtype: DType.FLOAT32, dataPort: 0, dataTicket: new Uint8Array(0), shards: [], partitionBytes: 0, frozenStatistics: [],
  };
  model.dispose();
  const before = tf.memory().numTensors;
  let job: WorkerJob | null = null;
  const counts: number[] = [];
  for (let i = 0; i < 5; i++) {
    job = await WorkerJob.replace(job, welcome); // what a session does with its Welcome
    counts.push(tf.memory().numTensors - before);
  }
  assert.ok(counts[0] > 0);
  assert.deepEqual(counts, Array(5).fill(counts[0]), `tensors held after each Welcome: ${counts}`);
  job!.dispose();
  assert.equal(tf.memory().numTensors, before);
});

test('worker – the data connection dials the host of --coordinator (names, IPv4, bracketed IPv6)', () => {
  assert.equal(hostOf('tunefleet-coordinator:7070'), 'tunefleet-coordinator');
  assert.equal(hostOf('10.0.0.7:7070'), '10.0.0.7');
  assert.equal(hostOf('[::1]:7070'), '::1');
});
