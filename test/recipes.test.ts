// recipes – the fine-tuning rules fail loudly where a user errs, on real runs:
// a mistyped glob and an all-frozen model are configuration errors before any
// step; `config --explain` shows every variable's multipliers; far too large
// steps end with JobDiverged (or a warning, if asked); layer decay trains.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseJob } from '../core/job/config';
import { train } from '../core/train/trainer';
import { loadCheckpoint } from '../core/model/checkpoint';
import { readParams } from '../core/model/params';
import { tempDir, wasmWithIdxSet } from './fixtures';

const run = promisify(execFile);
const CLI = join(__dirname, '..', 'cli', 'main.js');
let dataDir = '';

before(async () => { dataDir = await wasmWithIdxSet(200, 50); });

function job(optimizer: Record<string, unknown>, train: Record<string, unknown> = {}) {
  return parseJob({
    name: 'recipe', backend: 'wasm', data: { path: dataDir, download: false }, optimizer,
    train: { iterations: 30, batchSize: 16, evalEvery: 3, logEvery: 30, checkpointEvery: 30, outDir: tempDir(), ...train },
  });
}

test('recipes – a glob that matches nothing, or every variable frozen, is a ConfigInvalid before the first step', async () => {
  await assert.rejects(train(job({ layers: [{ match: 'heda/*', lrMult: 10 }] })), { name: 'ConfigInvalid', message: /optimizer\.layers\[0\] match "heda\/\*" matches no variable of the model; nearest: head\/\*/ });
  await assert.rejects(train(job({ layers: [{ match: '*', lrMult: 0 }] })), { name: 'ConfigInvalid', message: /every variable is frozen \(lrMult 0\), so nothing would train/ });
  await assert.rejects(train(job({ unfreeze: [{ match: '*', at: 5 }] })), { name: 'ConfigInvalid', message: /every variable is frozen until iteration 5 \(optimizer\.unfreeze\)/ });
  await assert.rejects(train(job({ unfreeze: [{ match: 'backbone/*', at: 5 }] })), { name: 'ConfigInvalid', message: /optimizer\.unfreeze\[0\] \(match "backbone\/\*"\) names no variable/ });
});

test('recipes – config --explain prints each variable\'s rule, depth, lr_mult and rate; exit 2 when a rule decides none', async () => {
  const dir = tempDir();
  const yaml = (layers: string) => `name: x\nbackend: wasm\ndata: { path: ${dataDir}, download: false }\noptimizer: { lr: 0.1, layerDecay: 0.5, layers: ${layers} }\n`;
  writeFileSync(join(dir, 'ok.yaml'), yaml('[{ match: "head/*", lrMult: 10 }]'));
  const ok = await run('node', [CLI, 'config', '--explain', join(dir, 'ok.yaml')]);
  assert.match(ok.stdout, /^\| variable \| rule \| depth \| lr_mult \| rate at lr 0\.1 \| decay_mult \| frozen \|$/m);
  assert.match(ok.stdout, /^\| head\/kernel \| \[0\] head\/\* \| 0 \| 10 \| 1 \| 1 \|  \|$/m);
  assert.match(ok.stdout, /^\| conv1\/kernel \| \(none: ×1\) \| 3 \| 0\.125 \| 0\.0125 \| 1 \|  \|$/m);
  writeFileSync(join(dir, 'typo.yaml'), yaml('[{ match: "heda/*", lrMult: 10 }]'));
  const typo = await run('node', [CLI, 'config', '--explain', join(dir, 'typo.yaml')]).catch((e) => e);
  assert.equal(typo.code, 2);
  assert.match(typo.stdout, /^\| head\/bias \|/m, 'the table still shows the names to pick from');
  assert.match(typo.stderr, /^ConfigInvalid: optimizer\.layers\[0\] match "heda\/\*" matches no variable/m);
  // An experiment file: one table per arm, a bad rule named with its arm.
  writeFileSync(join(dir, 'exp.yaml'), `name: e\nbackend: wasm\ndata: { path: ${dataDir}, download: false }\npretrain: {}\ncompare:\n  arms:\n`
    + '    - { name: warm, init: pretrained, headWarmup: 20 }\n    - { name: scratch, init: scratch, layers: [{ match: "fc2/*", lrMult: 2 }] }\n');
  const exp = await run('node', [CLI, 'config', '--explain', join(dir, 'exp.yaml')]).catch((e) => e);
  assert.equal(exp.code, 2);
  assert.match(exp.stdout, /^arm warm:\n/m);
  assert.match(exp.stdout, /^\| conv1\/kernel \| \(none: ×1\) \| 3 \| 1 \| 0\.01 \| 1 \| until 20 \|$/m);
  assert.match(exp.stdout, /^arm scratch:\n/m);
  assert.match(exp.stderr, /^ConfigInvalid: compare\.arms scratch: optimizer\.layers\[0\] match "fc2\/\*" matches no variable of the model; nearest: fc1\/\*/m);
});

test('recipes – optimizer.lr far too large: training at chance ends with JobDiverged naming what to lower; action warn goes on', async () => {
  const diverges = job({ lr: 50 }, { divergence: { evaluations: 3 } });
  await assert.rejects(train(diverges), { name: 'JobDiverged', message: /validation accuracy stayed at chance .* for 3 evaluations, iterations 3–9, .*lower optimizer\.lr \(now 50\)/ });
  const warned = await train(job({ lr: 50 }, { divergence: { evaluations: 3, action: 'warn' } }));
  assert.equal(warned.curve[warned.curve.length - 1].iteration, 30, 'warn: the run goes to its end');
});

test('recipes – a head warm-up: the rest frozen until its release, then trained; resumed in the middle of the schedule the run ends bit-identical', async () => {
  const outDir = tempDir();
  const warm = (train: Record<string, unknown>) => job({ lr: 0.05, headWarmup: 10 }, { checkpointEvery: 5, keepCheckpoints: 10, outDir, ...train });
  const whole = await train(warm({ outDir: tempDir() }));
  assert.deepEqual(whole.curve.map((p) => p.iteration), [3, 6, 9, 12, 15, 18, 21, 24, 27, 30], 'one curve across the two stages');
  await train(warm({ iterations: 15 })); // stops at 15: past the release at 10
  const resumed = await train(warm({}), { resume: true });
  assert.deepEqual(await readParams(resumed.model), await readParams(whole.model), 'bit-identical');
  const conv = async (it: number) => (await readParams((await loadCheckpoint(join(outDir, `ckpt-${String(it).padStart(8, '0')}`))).model)).get('conv1/kernel');
  assert.deepEqual(await conv(10), await conv(5), 'frozen during the warm-up');
  assert.notDeepEqual(await conv(15), await conv(10), 'trained after it');
});

test('recipes – a task not learned yet (random labels, with layer decay) does not trip the chance check: the run goes to its end', async () => {
  const result = await train(job({ lr: 0.05, layerDecay: 0.5, layers: [{ match: 'head/*', lrMult: 2 }] }, { divergence: { evaluations: 3 } }));
  assert.equal(result.curve.length, 10);
});
