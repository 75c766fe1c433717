#!/usr/bin/env node
// The `tunefleet` command. Each subcommand parses its flags, loads the job
// config and hands off to core/; errors are printed as one line
// (`Name: what to do`) and exit non-zero, never as a stack trace.
import { loadJobFile, parseJob, JobConfig } from '../core/config';
import { defaultsYaml } from '../core/config-docs';
import { describeError, ConfigInvalid, TunefleetError } from '../core/errors';
import { train } from '../core/trainer';
import { parseArgs } from './args';

const HELP = `tunefleet — distributed fine-tuning with per-layer learning rates

Usage:
  tunefleet train --config job.yaml [--backend B] [--data DIR] [--resume]
      Train in this process: pretrain, or fine-tune from model.from.
  tunefleet config
      Print every job-config field with its default and meaning.
  tunefleet help

Backends (--backend or TUNEFLEET_BACKEND): auto, tensorflow-gpu, tensorflow, wasm, cpu.
Docs: README.md, docs/config.md.`;

function jobFrom(args: Record<string, string | boolean | undefined>): JobConfig {
  const cfg = args.config ? loadJobFile(String(args.config)) : parseJob({});
  if (args.backend) cfg.backend = parseJob({ backend: args.backend }, '--backend').backend;
  if (args.data) cfg.data.path = String(args.data);
  return cfg;
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'train': {
      const args = parseArgs(rest, { config: 'string', backend: 'string', data: 'string', resume: 'boolean' });
      const result = await train(jobFrom(args), { resume: Boolean(args.resume) });
      const last = result.curve[result.curve.length - 1];
      process.stdout.write(JSON.stringify({ backend: result.backend, outDir: result.outDir, final: last }) + '\n');
      return;
    }
    case 'config':
      process.stdout.write(defaultsYaml());
      return;
    case undefined: case 'help': case '--help': case '-h':
      process.stdout.write(HELP + '\n');
      return;
    default:
      throw new ConfigInvalid(`unknown command '${command}'; run tunefleet help`);
  }
}

main(process.argv.slice(2)).catch((err) => {
  process.stderr.write(describeError(err) + '\n');
  if (!(err instanceof TunefleetError) && process.env.TUNEFLEET_DEBUG) console.error(err);
  process.exit(err instanceof ConfigInvalid ? 2 : 1);
});
