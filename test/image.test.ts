// image – deploy/docker/Dockerfile's build stage, run on exactly the files it
// copies (no container builder runs here): a folder the code needs but the
// Dockerfile does not copy fails the build, as it would in `docker build`.
// The dependencies are the repository's node_modules, linked in, where the
// stage runs `npm ci` from the same lock file. Then the runtime stage's
// entrypoint on the built files prints the help every command is listed in.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './fixtures';

const root = join(__dirname, '..', '..');
const dockerfile = readFileSync(join(root, 'deploy', 'docker', 'Dockerfile'), 'utf8');

/** The instructions of stage `name` (`FROM … AS name`), continuation lines joined. */
function stage(name: string): string[] {
  const lines = dockerfile.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const start = lines.findIndex((l) => new RegExp(`^FROM \\S+ AS ${name}$`).test(l));
  assert.ok(start >= 0, `stage ${name}`);
  const end = lines.findIndex((l, i) => i > start && l.startsWith('FROM '));
  return lines.slice(start + 1, end < 0 ? undefined : end);
}

/** `COPY src dst` instructions (not --from another stage), as [src, dst] under WORKDIR /app. */
const copies = (instructions: string[]) => instructions.filter((l) => /^COPY (?!--from)/.test(l)).flatMap((l) => {
  const args = l.split(/\s+/).slice(1);
  const dst = args.pop()!;
  return args.map((src) => [src, dst === './' ? src : dst] as const);
});

test('image – the build stage compiles from exactly the files the Dockerfile copies, and the entrypoint runs on its output', { timeout: 180_000 }, () => {
  const app = tempDir();
  const build = stage('build');
  for (const [src, dst] of copies(build)) cpSync(join(root, src), join(app, dst), { recursive: true });
  symlinkSync(join(root, 'node_modules'), join(app, 'node_modules'), 'dir');
  for (const run of build.filter((l) => l.startsWith('RUN ')).map((l) => l.slice(4))) {
    if (/^npm ci\b/.test(run)) continue; // the linked node_modules, from the same lock file
    execFileSync('bash', ['-c', run], { cwd: app, stdio: 'pipe' }); // throws with tsc's errors (e.g. TS2307 for a folder not copied)
  }
  // Runtime stage: the built dist and what it copies itself, then ENTRYPOINT + CMD.
  const runtime = stage('runtime');
  assert.ok(runtime.includes('COPY --from=build /app/dist dist'));
  const image = tempDir();
  cpSync(join(app, 'dist'), join(image, 'dist'), { recursive: true });
  for (const [src, dst] of copies(runtime)) if (src !== 'package.json' && src !== 'package-lock.json') cpSync(join(root, src), join(image, dst), { recursive: true });
  symlinkSync(join(root, 'node_modules'), join(image, 'node_modules'), 'dir');
  const entrypoint = JSON.parse(runtime.find((l) => l.startsWith('ENTRYPOINT '))!.slice(11)) as string[];
  const cmd = JSON.parse(runtime.find((l) => l.startsWith('CMD '))!.slice(4)) as string[];
  const [node, main] = entrypoint;
  const help = execFileSync(node === 'node' ? process.execPath : node, [main.replace('/app', image), ...cmd], { cwd: image, encoding: 'utf8' });
  for (const command of ['coordinator', 'worker', 'shard', 'local', 'compare', 'status', 'doctor']) assert.match(help, new RegExp(`tunefleet ${command}\\b`));
});
