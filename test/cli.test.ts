// cli – errors are one line with the right exit code, never a stack trace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { tempDir, writeIdxSet } from './fixtures';
import { missing } from './needs';

const run = promisify(execFile);
const CLI = join(__dirname, '..', 'cli', 'main.js');

test('cli – a bad config or a missing dataset is one clear line and a non-zero exit', async () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'bad.yaml'), 'optimizer:\n  momentum: 3\n');
  const bad = await run('node', [CLI, 'train', '--config', join(dir, 'bad.yaml')]).catch((e) => e);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^ConfigInvalid: .*bad\.yaml: optimizer\.momentum: Number must be less than or equal to 1\n$/);
  writeFileSync(join(dir, 'nodata.yaml'), `data:\n  path: ${join(dir, 'nowhere')}\n`);
  const missing = await run('node', [CLI, 'train', '--config', join(dir, 'nodata.yaml'), '--backend', 'wasm']).catch((e) => e);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /DatasetNotFound: fashion-mnist not in .*nowhere/);
  assert.doesNotMatch(missing.stderr, /\n\s+at /, 'no stack trace');
});

test('cli – every command answers --help and -h with its usage, naming every flag it accepts; --version', async () => {
  const { FLAGS } = await import('../cli/main');
  for (const [command, flags] of Object.entries(FLAGS)) {
    for (const help of ['--help', '-h']) {
      const { stdout } = await run('node', [CLI, command, help]);
      assert.match(stdout, new RegExp(`^Usage:\\n  tunefleet ${command} `), `${command} ${help}`);
      for (const flag of Object.keys(flags)) assert.ok(stdout.includes(`--${flag}`), `${command} --help names --${flag}`);
    }
  }
  const { stdout } = await run('node', [CLI, '--version']);
  assert.equal(stdout, `tunefleet ${JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')).version}\n`);
});

test('cli – train on a terminal shows one live progress line (iteration, accuracy, examples/s, ETA); elsewhere the log lines', { skip: missing('script') }, async () => {
  const dir = tempDir();
  writeIdxSet(dir, 100, 20);
  const job = join(dir, 'job.yaml');
  writeFileSync(job, JSON.stringify({ name: 'live', backend: 'wasm', data: { path: dir, download: false }, train: { iterations: 6, batchSize: 16, evalEvery: 3, logEvery: 1, checkpointEvery: 6, outDir: join(dir, 'out') } }));
  const command = `node ${CLI} train --config ${job}`;
  const onTerminal = (await run('script', ['-qfec', command, '/dev/null'])).stdout; // a pseudo-terminal
  assert.match(onTerminal, /\r\x1b\[2Klive {2}it 6\/6 {2}acc \d+\.\d% {2}\d+ ex\/s {2}ETA \d+:\d\d/);
  assert.doesNotMatch(onTerminal, /info trainer: progress/, 'info lines are hidden behind the live line');
  const plain = await run('node', [CLI, 'train', '--config', job]);
  assert.match(plain.stderr, /info trainer: progress iteration=6/);
  assert.doesNotMatch(plain.stderr, /\x1b\[2K/);
});
