// A child process's output, line by line, prefixed with who wrote it (`[worker-1] `),
// like torchrun's `[rankN]:` — so the lines of `tunefleet local` and of
// `worker --gpus N`, which share one terminal, can be told apart. With
// TUNEFLEET_LOG=json the lines go through untouched: each already carries its
// role and id as fields, and a prefix would break the JSON.
import { ChildProcess, spawn, SpawnOptions } from 'node:child_process';
import { createInterface } from 'node:readline';
import { Readable, Writable } from 'node:stream';
import { jsonLogs } from '../core/observe/log';

/** spawn(), with the child's stdout and stderr copied to ours, each line prefixed with `[tag] `. */
export function spawnTagged(tag: string, command: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  if (jsonLogs()) return spawn(command, args, { ...opts, stdio: ['ignore', 'inherit', 'inherit'] });
  const child = spawn(command, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
  copyLines(child.stdout!, process.stdout, tag);
  copyLines(child.stderr!, process.stderr, tag);
  return child;
}

function copyLines(from: Readable, to: Writable, tag: string): void {
  createInterface({ input: from, crlfDelay: Infinity }).on('line', (line) => to.write(`[${tag}] ${line}\n`));
}
