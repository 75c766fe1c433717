// compare – a tiny real experiment (pretrain, two arms, two seeds, a worker
// process per run): the results schema, thresholds and speed-up arithmetic,
// the report, and the plot being a valid image with one series per arm.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadExperiment, parseExperiment } from '../core/job/experiment';
import { resolveDatasetDir } from '../core/data/resolve';
import { firstReached } from '../core/job/results';
import { runCompare } from '../cli/compare';
import { Results } from '../cli/compare-report';
import { DatasetNotFound } from '../core/errors';
import { tempDir, writeIdxSet } from './fixtures';

const examples = join(__dirname, '..', '..', 'examples');

test('compare – a tiny experiment writes results.json, report.md and a plot with one line per arm', async () => {
  const data = tempDir();
  writeIdxSet(data, 150, 40);
  const out = tempDir();
  const exp = parseExperiment({
    name: 'tiny', backend: 'wasm', data: { path: data, download: false, classes: [5, 6, 7, 8, 9] },
    train: { iterations: 6, batchSize: 16, evalEvery: 2, logEvery: 2, checkpointEvery: 6 },
    pretrain: { data: { classes: [0, 1, 2, 3, 4] }, train: { iterations: 4 } },
    compare: { seeds: [1, 2], thresholds: [0.01, 0.999] },
  }, 'tiny.yaml');
  await runCompare(exp, { workers: 2, out });
  const r: Results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
  assert.deepEqual(r.arms.map((a) => a.name), ['fine-tune', 'scratch']);
  assert.equal(r.baseline, 'scratch');
  assert.equal(r.workers, 2);
  assert.match(r.commit, /^([0-9a-f]{7,}|unknown)$/);
  assert.ok(r.sourceAccuracy !== null && r.sourceAccuracy > 0 && r.sourceAccuracy <= 1, 'the source task\'s accuracy');
  assert.equal(r.backend, 'wasm');
  for (const arm of r.arms) {
    assert.deepEqual(arm.runs.map((run) => run.seed), [1, 2]);
    for (const run of arm.runs) {
      assert.deepEqual(run.curve.map((p) => p.iteration), [0, 2, 4, 6], 'the curve starts before the first step');
      for (const p of run.curve) for (const k of ['valAccuracy', 'valLoss', 'trainLoss', 'wallSeconds'] as const) assert.equal(typeof p[k], k === 'trainLoss' && p.iteration === 0 ? 'object' : 'number', `${k} at ${p.iteration}`); // no training loss before a step: null
      assert.deepEqual(run.firstReached, firstReached(run.curve, [0.01, 0.999]));
      assert.equal(run.firstReached['0.01'], 2);
      assert.equal(run.finalAccuracy, run.curve[3].valAccuracy);
    }
    assert.equal(arm.config.optimizer.layers.length, arm.name === 'fine-tune' ? 2 : 0);
  }
  assert.equal(r.arms[0].config.model.from, join(out, 'pretrain', 'model'));
  assert.deepEqual(r.speedups, { 'fine-tune': { '0.01': 1, '0.999': null } });
  const report = readFileSync(join(out, 'report.md'), 'utf8');
  assert.match(report, /\| fine-tune \(head\/\* ×10, \* ×0\.1\) \| 1\.00× \| arm never reached \|/, 'arms named with their multipliers');
  assert.match(report, /backend wasm, 2 worker process/);
  assert.match(report, /\(tunefleet ([0-9a-f]{7,}|unknown)\)/, 'the commit');
  assert.match(report, /validation accuracy on the source task: [\d.]+%/);
  assert.match(report, /\| scratch \| 2 \| 2 \| never \| [\d.]+% \| [\d.]+ s \|/, 'wall time per run');
  assert.match(report, /^ {2}workers: 2$/m, 'the configuration as the runs used it');
  const svg = readFileSync(join(out, 'accuracy.svg'), 'utf8');
  assert.match(svg, /^<svg/);
  assert.equal(svg.match(/class="mark-line role-mark median_marks"/g)?.length, 2, 'one median line per arm');
  assert.equal(svg.match(/class="mark-line role-mark seeds_marks"/g)?.length, 4, 'one thin line per arm and seed');
  assert.equal(svg.match(/class="mark-rule role-mark targets_marks"/g)?.length, 1, 'the thresholds drawn');
  assert.match(svg, />fine-tune \(head\/\* ×10, \* ×0\.1\)</, 'the legend names the multipliers');
  assert.match(svg, />\d+%</, 'the axis in %');
  const png = readFileSync(join(out, 'accuracy.png'));
  assert.deepEqual([...png.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10], 'PNG signature');
  assert.ok(png.readUInt32BE(16) >= 600 && png.readUInt32BE(20) >= 300, 'PNG size');
});

test('compare – experiment errors name what is wrong', () => {
  assert.throws(() => parseExperiment({}, 'e.yaml'), /needs a pretrain section/);
  assert.throws(() => parseExperiment({ pretrain: {}, compare: { seeds: [] } }, 'e.yaml'), /e\.yaml: compare\.seeds: Array must contain at least 1/);
  assert.throws(() => parseExperiment({ pretrain: {}, compare: { arms: [{ name: 'a', init: 'pretrained' }] } }, 'e.yaml'), /needs one 'scratch' arm/);
});

test('compare – the presets parse; CIFAR offline without a copy says how to get it', async () => {
  assert.equal(loadExperiment(join(examples, 'fashion-transfer.yaml')).compare.seeds.length, 3);
  const cifar = loadExperiment(join(examples, 'cifar100-to-cifar10.yaml'));
  assert.equal(cifar.job.model.arch, 'cifar-cnn');
  process.env.TUNEFLEET_CACHE = tempDir();
  await assert.rejects(resolveDatasetDir('cifar100', { download: false }), (e: unknown) =>
    e instanceof DatasetNotFound && /cifar100 not in \.\/data\/cifar100/.test(e.message) && /pass --data/.test(e.message));
});
