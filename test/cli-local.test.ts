// cli-local – `tunefleet local` end to end with a pretrain stage (reused on
// the second run), Ctrl-C stopping every worker, and the generated wire code
// matching proto/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { tempDir, writeIdxSet } from './fixtures';
import { CLI } from './cluster-helpers';
import { missing } from './needs';

const run = promisify(execFile);
const root = join(__dirname, '..', '..');

function jobFile(dir: string, iterations = 6): string {
  const data = join(dir, 'data');
  execFileSync('mkdir', ['-p', data]);
  writeIdxSet(data, 120, 30);
  const file = join(dir, 'job.yaml');
  writeFileSync(file, `name: t
backend: wasm
data: { path: ${data}, download: false, classes: [5, 6, 7, 8, 9] }
train: { iterations: ${iterations}, batchSize: 16, evalEvery: 3, logEvery: 3, checkpointEvery: 3, outDir: ${join(dir, 'out')} }
optimizer: { layers: [{ match: "head/*", lrMult: 10 }, { match: "*", lrMult: 0.1 }] }
pretrain: { data: { classes: [0, 1, 2, 3, 4] }, train: { iterations: 4 } }
`);
  return file;
}

test('cli-local – pretrains, fine-tunes with 2 worker processes, and reuses the pretrained stage', async () => {
  const dir = tempDir();
  const file = jobFile(dir);
  const first = await run('node', [CLI, 'local', '--workers', '2', '--config', file]);
  assert.match(first.stderr, /stage stage="pretrain"/);
  assert.match(first.stderr, /stage stage="fine-tune"/);
  // Like torchrun's [rankN]: each child's lines say which process wrote them; the coordinator's own are untagged.
  for (const w of ['worker-0', 'worker-1']) assert.match(first.stderr, new RegExp(`^\\[${w}\\] \\d{4}-\\S+ info worker: joined worker="${w}"`, 'm'));
  assert.doesNotMatch(first.stderr, /looks like you are running TensorFlow\.js/, 'no tfjs banner');
  const out = JSON.parse(first.stdout);
  assert.equal(out.final.iteration, 6);
  assert.ok(existsSync(join(dir, 'out', 'pretrain', 'model', 'model.json')));
  const head = JSON.parse(readFileSync(join(dir, 'out', 'model', 'model.json'), 'utf8')).weightsManifest[0].weights.find((w: { name: string }) => w.name === 'head/kernel');
  assert.deepEqual(head.shape, [64, 5]);
  const second = await run('node', [CLI, 'local', '--workers', '2', '--config', file]);
  assert.match(second.stderr, /reusing pretrained model/);
  assert.doesNotMatch(second.stderr, /stage stage="pretrain"/);
});

test('cli-local – TUNEFLEET_LOG=json: every line the coordinator and its workers write is JSON with role and id, the final error too', async () => {
  const dir = tempDir();
  const env = { ...process.env, TUNEFLEET_LOG: 'json' };
  const ok = await run('node', [CLI, 'local', '--workers', '1', '--config', jobFile(dir)], { env });
  const lines = ok.stderr.trim().split('\n').map((l) => JSON.parse(l) as { role?: string; id?: string; module: string; event: string });
  assert.ok(lines.some((l) => l.role === 'local' && l.module === 'trainer'), 'the coordinator side');
  assert.ok(lines.some((l) => l.role === 'worker' && l.id === 'worker-0' && l.event === 'joined'), 'the worker, with its id');
  const failed = await run('node', [CLI, 'worker', '--coordinator', '127.0.0.1:1', '--backend', 'wasm', '--reconnect-for', '0', '--metrics-port', 'off'], { env }).catch((e) => e);
  const last = JSON.parse(failed.stderr.trim().split('\n').at(-1));
  assert.deepEqual([last.level, last.role, last.error], ['error', 'worker', 'JobFailed']);
  assert.match(last.message, /could not join the coordinator at 127\.0\.0\.1:1/);
});

test('cli-local – Ctrl-C stops the coordinator and every worker', { skip: missing('pgrep') }, async () => {
  const dir = tempDir();
  const child = spawn('node', [CLI, 'local', '--workers', '2', '--config', jobFile(dir, 100000)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  await new Promise<void>((resolve) => child.stderr.on('data', (d) => { log += d; if (/progress iteration=3 /.test(log)) resolve(); }));
  const workerPids = execFileSync('pgrep', ['-P', String(child.pid)]).toString().trim().split('\n').map(Number);
  assert.equal(workerPids.length, 2);
  child.kill('SIGINT');
  const code = await new Promise((r) => child.on('exit', r));
  assert.equal(code, 130);
  for (const pid of workerPids) assert.throws(() => process.kill(pid, 0), 'worker process still running');
});

test('proto – generated code is up to date with proto/ (run npm run proto)', { skip: missing('protoc') }, () => {
  const out = tempDir();
  execFileSync('bash', [join(root, 'proto', 'generate.sh'), out]);
  const fresh = readFileSync(join(out, 'tunefleet', 'v1', 'tunefleet.ts'), 'utf8');
  const committed = readFileSync(join(root, 'proto', 'gen', 'tunefleet', 'v1', 'tunefleet.ts'), 'utf8');
  assert.ok(fresh === committed, 'proto/gen is stale: run npm run proto and commit the result');
});
