// A tiny argument parser: `--flag value`, `--flag=value` and boolean
// `--flag`. Unknown flags are errors, so a typo is never silently ignored.
import { ConfigInvalid } from '../core/errors';

export interface FlagSpec {
  [name: string]: 'string' | 'boolean';
}

export function parseArgs(argv: string[], spec: FlagSpec): Record<string, string | boolean | undefined> {
  const out: Record<string, string | boolean | undefined> = {};
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(argv[i]);
    if (!m || !(m[1] in spec)) throw new ConfigInvalid(`unknown argument '${argv[i]}'; flags: ${Object.keys(spec).map((f) => `--${f}`).join(' ')}`);
    const [, name, inline] = m;
    if (spec[name] === 'boolean') { out[name] = true; continue; }
    const value = inline ?? argv[++i];
    if (value === undefined) throw new ConfigInvalid(`--${name} needs a value`);
    out[name] = value;
  }
  return out;
}
