// config – the job schema: errors that name the field, defaults that match the docs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseJob, loadJobFile } from '../core/job/config';
import { defaultsYaml } from '../core/job/config-docs';
import { ConfigInvalid } from '../core/errors';
import { tempDir } from './fixtures';

test('config – errors name the field and what is wrong; typos are not ignored', () => {
  assert.throws(() => parseJob({ optimizer: { lr: 'fast' } }), (e: unknown) => e instanceof ConfigInvalid && /optimizer\.lr: Expected number, received string/.test(e.message));
  assert.throws(() => parseJob({ train: { iteration: 5 } }), /train: Unrecognized key\(s\) in object: 'iteration'/);
  assert.throws(() => parseJob({ optimizer: { policy: { type: 'step', gamma: 0.1 } } }), /optimizer\.policy\.stepSize: Required/);
  const dir = tempDir();
  writeFileSync(join(dir, 'j.yaml'), 'train: [1, 2\n');
  assert.throws(() => loadJobFile(join(dir, 'j.yaml')), /j\.yaml: not valid YAML/);
  assert.equal(parseJob({}).optimizer.momentum, 0.9);
  assert.throws(() => parseJob({ pretrain: { train: { iterations: -1 } } }), /\(pretrain stage\): train\.iterations: Number must be greater than 0/);
  assert.throws(() => parseJob({ pretrain: { cluster: {} } }), /pretrain: Unrecognized key\(s\) in object: 'cluster'/);
  assert.throws(() => parseJob({ cluster: { stepDeadline: { seconds: 5 } } }), /cluster: Unrecognized key\(s\) in object: 'stepDeadline'; it was renamed cluster\.sliceDeadline/);
});

test('config – docs/config.md shows exactly the defaults the schema has', () => {
  const doc = readFileSync(join(__dirname, '..', '..', 'docs', 'config.md'), 'utf8');
  assert.ok(doc.includes(defaultsYaml()), 'docs/config.md is stale: run npm run docs:config');
});
