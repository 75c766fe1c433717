// cli – errors are one line with the right exit code, never a stack trace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { tempDir } from './fixtures';

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
